"""dlib's 68-point shape predictor, read from dlib's own model file and evaluated by our compiled code.

The model is an ensemble of regression trees (Kazemi & Sullivan, CVPR 2014): 15 cascades of 500 trees of
depth 4, each leaf a 136-float shape update. This module computes exactly what ``dlib.shape_predictor``
computes: the same float32 operations in the same order and the same pixel rounding, so the landmarks are
bit-identical (tests compare both on real frames and on boxes hanging off every edge of the image).

Why it exists: speed. Aligning CREMA-D spends most of its time here, and the time is memory, not
arithmetic: a frame reads one leaf (544 bytes) from each of 7,500 trees scattered over 65 MB. dlib keeps each
leaf in its own heap block and adds them one after the other. Here the leaves are one array, a cascade first
finds the leaf of each of its 500 trees (a few KB of split tables), then adds them eight trees at a time, so
eight leaves' loads are in flight at once. Same sums, 2-4x less time a frame (0.5 against 1.1 ms
when the machine is fast; 0.9 against 3.4 ms when its memory is slow).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from synthtext.ops.errors import SynthTextError

Box = tuple[int, int, int, int]
"""dlib's rectangle: left, top, right, bottom in whole pixels (right and bottom inclusive)."""


@dataclass(frozen=True)
class ShapeModel:
    """A shape predictor's arrays (C cascades, T trees a cascade, S splits and L = S + 1 leaves a tree,
    F feature pixels a cascade, P points). Shapes are in the face box's unit square, x and y interleaved."""

    initial: np.ndarray  # [2P] float32, the mean shape every prediction starts from
    splits: np.ndarray  # [C, T, S, 2] int32, the two feature pixels each split compares
    thresholds: np.ndarray  # [C, T, S] float32, go left when pixel 1 - pixel 2 > threshold
    leaves: np.ndarray  # [C, T, L, 2P] float32, the shape update at each leaf
    anchors: np.ndarray  # [C, F] int32, the shape point each feature pixel is placed from
    deltas: np.ndarray  # [C, F, 2] float32, its offset from that point in the mean shape's frame

    @property
    def num_parts(self) -> int:
        return self.initial.size // 2


@numba.njit(cache=True, nogil=True)
def _tokens(buf: np.ndarray) -> tuple[np.ndarray, int]:
    """dlib's serialized integers: a byte of size (and 0x80 for negative), then that many bytes, little-endian.
    Everything in a shape predictor file is such an integer (a float is two: mantissa and exponent).
    dlib writes at least one byte after the size byte (0 is ``01 00``), so there are at most len / 2 of them.
    Returns the integers and where they stop: ``len(buf)``, or -1 at a bad size byte (0 or over 8) or a
    number over 32 bits (a foreign file)."""
    out = np.empty(len(buf) // 2, np.int32)  # a float32 model's mantissas have 24 bits
    n = 0
    i = 0
    while i < len(buf):
        head = buf[i]
        size = head & 0x7F
        if size == 0 or size > 8:
            return out[:n], -1
        if i + 1 + size > len(buf):
            break
        value = np.int64(0)
        for k in range(size):
            value |= np.int64(buf[i + 1 + k]) << (8 * k)
        if value > 0x7FFFFFFF:
            return out[:n], -1
        out[n] = -value if head & 0x80 else value
        n += 1
        i += 1 + size
    return out[:n], i


class _Reader:
    """Walks the token stream in dlib's ``shape_predictor`` serialization order."""

    def __init__(self, tokens: np.ndarray, path: Path):
        self.tokens, self.path, self.at = tokens, path, 0

    def fail(self, what: str) -> SynthTextError:
        return SynthTextError(f"{self.path} is not a dlib shape predictor file ({what}): use a model saved "
                              f"by dlib.shape_predictor, e.g. face-recognition-models' 68-point one")

    def take(self, n: int) -> np.ndarray:
        if n < 0 or self.at + n > len(self.tokens):
            raise self.fail("it ends early")
        out = self.tokens[self.at:self.at + n]
        self.at += n
        return out

    def count(self, limit: int = 10_000_000) -> int:
        n = int(self.take(1)[0])
        if not 0 <= n <= limit:
            raise self.fail(f"a count of {n}")
        return n

    def floats(self, n: int) -> np.ndarray:
        pairs = self.take(2 * n)
        return _floats(pairs[0::2], pairs[1::2])

    def column(self) -> np.ndarray:
        """A ``matrix<float,0,1>``: -rows, -1 (dlib's current matrix format), then the values."""
        rows, cols = (int(v) for v in self.take(2))
        if rows > 0 or cols != -1:
            raise self.fail("a matrix that is not a column")
        return self.floats(-rows)


def _floats(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """dlib's portable floats (mantissa * 2**exponent), to float32: exact, a float32's mantissa has 24 bits."""
    with np.errstate(over="ignore"):
        return np.ldexp(mantissa.astype(np.float64), exponent.astype(np.int32)).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _leaf_values(tokens: np.ndarray, starts: np.ndarray, per_tree: int, size: int) -> np.ndarray:
    """Each tree's ``per_tree`` leaves from ``starts``: a column (-size, -1) of ``size`` floats each.
    Empty where a leaf is not such a column."""
    out = np.empty((len(starts) * per_tree, size), np.float32)
    for t in range(len(starts)):
        at = starts[t]
        for leaf in range(per_tree):
            if tokens[at] != -size or tokens[at + 1] != -1:
                return out[:0]
            row = out[t * per_tree + leaf]
            for q in range(size):
                row[q] = np.float32(np.float64(tokens[at + 2 + 2 * q]) * 2.0 ** np.float64(tokens[at + 3 + 2 * q]))
            at += 2 + 2 * size
    return out


@functools.lru_cache(maxsize=4)
def _read_cached(path: Path, mtime_ns: int, size: int) -> ShapeModel:
    tokens, end = _tokens(np.fromfile(path, np.uint8))
    r = _Reader(tokens, path)
    if end < 0:
        raise r.fail("bytes that are not dlib's serialized numbers")
    if end < size:
        raise r.fail("it ends early")
    if len(tokens) < 3 or r.take(1)[0] != 1:
        raise r.fail("no version 1 header")
    initial = r.column()
    cascades = r.count(1000)
    if cascades == 0 or initial.size == 0 or initial.size % 2:
        raise r.fail("no cascades or an odd shape")
    trees = n_splits = None
    tree_starts = []
    for _ in range(cascades):
        n_trees = r.count()
        if trees not in (None, n_trees):
            raise r.fail("cascades of different sizes")
        trees = n_trees
        for _ in range(n_trees):
            tree_starts.append(r.at)
            splits_here = r.count()
            r.take(4 * splits_here)  # idx1, idx2, threshold (2)
            if n_splits not in (None, splits_here) or r.count() != splits_here + 1 or (splits_here + 1) & splits_here:
                raise r.fail("a tree that is not full, or trees of different depths")
            n_splits = splits_here
            r.take((n_splits + 1) * (2 + 2 * initial.size))  # leaves: -rows, -1, values
    if not tree_starts:
        raise r.fail("no trees")
    # all trees have the same layout: gather the splits at once, decode the leaves compiled
    starts = np.asarray(tree_starts, dtype=np.int64)
    split_tokens = tokens[starts[:, None] + 1 + np.arange(4 * n_splits)].reshape(-1, 4)
    splits = split_tokens[:, :2]
    thresholds = _floats(split_tokens[:, 2], split_tokens[:, 3])
    leaves = _leaf_values(tokens, starts + 2 + 4 * n_splits, n_splits + 1, initial.size)
    if leaves.size == 0:
        raise r.fail("a leaf of the wrong size")
    leaves = leaves.reshape(cascades, trees, n_splits + 1, initial.size)
    anchors, deltas = [], []
    if r.count(1000) != cascades:
        raise r.fail("anchors for a different number of cascades")
    for _ in range(cascades):
        anchors.append(r.take(r.count()).astype(np.int32))
    if r.count(1000) != cascades:
        raise r.fail("offsets for a different number of cascades")
    for _ in range(cascades):
        deltas.append(r.floats(2 * r.count()).reshape(-1, 2))
    if r.at != len(tokens):
        raise r.fail("bytes after the model")
    splits = splits.astype(np.int32).reshape(cascades, trees, n_splits, 2)
    features = len(anchors[0])
    if features == 0:
        raise r.fail("no feature pixels")
    if any(len(a) != features or len(d) != features for a, d in zip(anchors, deltas, strict=True)) \
            or splits.min() < 0 or splits.max() >= features \
            or min(a.min() for a in anchors) < 0 or max(a.max() for a in anchors) >= initial.size // 2:
        raise r.fail("an index out of range")
    if not (np.isfinite(leaves).all() and np.isfinite(initial).all()):
        raise r.fail("a value that is not finite")
    return ShapeModel(initial=initial, splits=splits,
                      thresholds=thresholds.reshape(cascades, trees, n_splits),
                      leaves=np.ascontiguousarray(leaves), anchors=np.stack(anchors), deltas=np.stack(deltas))


def read_model(path: str | Path) -> ShapeModel:
    """Read a model file written by dlib (once a process: it is cached by path, size and time)."""
    path = Path(path)
    try:
        stat = path.stat()
        if not path.is_file():
            raise IsADirectoryError(21, "not a file")
        return _read_cached(path, stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise SynthTextError(f"cannot read the shape predictor {path}: {exc.strerror}") from exc


@numba.njit(cache=True, nogil=True)
def _centre(shape: np.ndarray) -> tuple[float, float]:
    """The mean point of a shape (x and y interleaved), summed in float64 as dlib does."""
    n = shape.shape[0] // 2
    x = 0.0
    y = 0.0
    for i in range(n):
        x += shape[2 * i]
        y += shape[2 * i + 1]
    return x / n, y / n


@numba.njit(cache=True, nogil=True)
def _predict(img, left, top, right, bottom, initial, splits, thresholds, leaves, anchors, deltas):
    cascades, trees, n_splits = thresholds.shape
    n = initial.shape[0] // 2
    height, width = img.shape[0], img.shape[1]
    width_box = np.float64(right - left)
    height_box = np.float64(bottom - top)
    shape = initial.copy()
    feature = np.empty(anchors.shape[1], np.float32)
    leaf_of = np.empty(trees, np.int64)
    from_x, from_y = _centre(initial)  # the similarity transform's "from" points: the mean shape
    for c in range(cascades):
        # least-squares similarity mean shape -> current shape; only its linear part is used
        to_x, to_y = _centre(shape)
        dot = 0.0
        cross = 0.0
        norm = 0.0
        for i in range(n):
            fx = initial[2 * i] - from_x
            fy = initial[2 * i + 1] - from_y
            tx = shape[2 * i] - to_x
            ty = shape[2 * i + 1] - to_y
            dot += fx * tx + fy * ty
            cross += fx * ty - fy * tx
            norm += fx * fx + fy * fy
        a = np.float32(dot / norm)
        b = np.float32(cross / norm)
        # the cascade's feature pixels, placed relative to the current shape; intensity (r + g + b) / 3
        for i in range(anchors.shape[1]):
            dx = deltas[c, i, 0]
            dy = deltas[c, i, 1]
            k = anchors[c, i]
            px = np.float32(a * dx - b * dy) + shape[2 * k]
            py = np.float32(b * dx + a * dy) + shape[2 * k + 1]
            x = np.int64(np.floor(left + np.float64(px) * width_box + 0.5))
            y = np.int64(np.floor(top + np.float64(py) * height_box + 0.5))
            if 0 <= x < width and 0 <= y < height:
                feature[i] = np.float32((np.int64(img[y, x, 0]) + np.int64(img[y, x, 1]) + np.int64(img[y, x, 2])) // 3)
            else:
                feature[i] = 0.0
        # first the leaf each tree ends in (small tables), then the leaves' updates (the 65 MB)
        for t in range(trees):
            j = 0
            while j < n_splits:  # left child 2j + 1 where pixel 1 - pixel 2 > threshold, else right (no branch)
                goes_left = feature[splits[c, t, j, 0]] - feature[splits[c, t, j, 1]] > thresholds[c, t, j]
                j = 2 * j + 2 - np.int64(goes_left)
            leaf_of[t] = j - n_splits
        t = 0
        while t + 8 <= trees:  # eight leaves' loads in flight; each value still sums tree by tree, in order
            l0 = leaves[c, t, leaf_of[t]]
            l1 = leaves[c, t + 1, leaf_of[t + 1]]
            l2 = leaves[c, t + 2, leaf_of[t + 2]]
            l3 = leaves[c, t + 3, leaf_of[t + 3]]
            l4 = leaves[c, t + 4, leaf_of[t + 4]]
            l5 = leaves[c, t + 5, leaf_of[t + 5]]
            l6 = leaves[c, t + 6, leaf_of[t + 6]]
            l7 = leaves[c, t + 7, leaf_of[t + 7]]
            for q in range(2 * n):
                shape[q] = (((((((shape[q] + l0[q]) + l1[q]) + l2[q]) + l3[q]) + l4[q]) + l5[q]) + l6[q]) + l7[q]
            t += 8
        while t < trees:
            leaf = leaves[c, t, leaf_of[t]]
            for q in range(2 * n):
                shape[q] += leaf[q]
            t += 1
    out = np.empty((n, 2))
    for i in range(n):
        out[i, 0] = np.floor(left + np.float64(shape[2 * i]) * width_box + 0.5)
        out[i, 1] = np.floor(top + np.float64(shape[2 * i + 1]) * height_box + 0.5)
    return out


def predict(model: ShapeModel, image: np.ndarray, box: Box) -> np.ndarray:
    """The model's points [P, 2] float64 (whole pixels, as dlib gives them) for the face in ``box`` of an
    RGB (or grey) uint8 image."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise SynthTextError(f"landmarks need an RGB or grey uint8 image, got {image.dtype} {image.shape}")
    if image.ndim == 2:  # (v + v + v) // 3 == v: grey goes through the RGB path unchanged
        image = np.repeat(image[:, :, None], 3, axis=2)
    left, top, right, bottom = (int(v) for v in box)
    return _predict(np.ascontiguousarray(image), left, top, right, bottom, model.initial, model.splits,
                    model.thresholds, model.leaves, model.anchors, model.deltas)
