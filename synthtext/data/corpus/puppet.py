"""Identities made from real photos, and frames rendered by warping them along their 68 landmarks."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from synthtext.data.corpus.motion import face_frame, mouth_offsets
from synthtext.inference.mouth import paint_mouth

WIDTH, HEIGHT = 480, 360
FRAME_MARGIN = 40  # frame pixels beyond each edge that the head motion can bring into view


class PiecewiseAffine:
    """Triangulated piecewise-affine warp of an image from its rest landmarks to moved ones.

    The triangulation covers the landmarks plus a fixed ring of anchors around the face, so
    everything outside the ring stays put and the warp is continuous at its edge.
    """

    def __init__(self, rest: np.ndarray, image_shape: tuple[int, ...], margin: float = 0.7):
        _, _, iod = face_frame(rest)
        low, high = rest.min(0) - margin * iod, rest.max(0) + margin * iod
        low = np.maximum(low, 0)
        high = np.minimum(high, np.array(image_shape[1::-1]) - 1)
        xs, ys = np.linspace(low[0], high[0], 6), np.linspace(low[1], high[1], 6)
        ring = [(x, low[1]) for x in xs] + [(x, high[1]) for x in xs] + \
               [(low[0], y) for y in ys[1:-1]] + [(high[0], y) for y in ys[1:-1]]
        self.anchors = np.array(ring)
        self.rest = np.vstack([rest, self.anchors])
        # Triangulate with the inner lips a little apart: at rest they coincide, and Delaunay would drop
        # one point of each pair, so the lips would tear instead of parting when the mouth opens.
        self.triangles = Delaunay(np.vstack([part_lips(rest, 0.03 * iod), self.anchors])).simplices
        self.box = (int(low[0]), int(low[1]), int(np.ceil(high[0])) + 1, int(np.ceil(high[1])) + 1)
        self._grid: np.ndarray | None = None  # [2, h, w] pixel rows and columns of the box, made once
        self.canvas: np.ndarray | None = None  # puppet_frame's face image, written anew each frame

    def __call__(self, image: np.ndarray, moved: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The image with its face region warped so rest landmarks land on ``moved`` [68, 2] (written into
        ``out``, an array of the image's shape and type, where one is given)."""
        x0, y0, x1, y1 = self.box
        dst = (np.vstack([moved, self.anchors]) - (x0, y0))[self.triangles]  # [K, 3, 2]
        src = self.rest[self.triangles]
        edges = dst[:, 1:] - dst[:, :1]
        # A collapsed triangle (closed lips, shut eyelids) covers no pixels.
        drawn = np.abs(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]) >= 1e-6
        # Per triangle, the affine map from frame to rest pixels: [x, y, 1] @ solve(...) = source (x, y).
        corners = np.concatenate([dst, np.ones((len(dst), 3, 1))], axis=2)
        corners[~drawn] = np.eye(3)
        inverse = np.zeros((len(dst) + 1, 3, 2), np.float32)
        inverse[0] = [[1, 0], [0, 1], [x0, y0]]  # outside every triangle: identity
        inverse[1:] = np.linalg.solve(corners, src)
        index = np.zeros((y1 - y0, x1 - x0), np.int32)
        for k, polygon in zip(np.flatnonzero(drawn) + 1, np.round(dst[drawn] * 16).astype(np.int32), strict=True):
            cv2.fillConvexPoly(index, polygon, int(k), lineType=cv2.LINE_8, shift=4)
        if self._grid is None:
            self._grid = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
        ys, xs = self._grid
        # Each coefficient gathered on its own ([6, K+1] rows) rather than inverse[index] as [h, w, 3, 2]:
        # the same numbers in the same sums, 9.0 -> 8.0 ms a warp (median of 5 x 40 warps, load ~8).
        a, b, c, d, e, f = inverse.reshape(-1, 6).T.copy()
        map_x = a[index] * xs + c[index] * ys + e[index]
        map_y = b[index] * xs + d[index] * ys + f[index]
        if out is None:
            out = image.copy()
        else:
            np.copyto(out, image)
        out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out


@dataclass
class Identity:
    """One speaker: an image, its rest landmarks (mouth closed), and where it sits in the frame."""

    name: str
    image: np.ndarray  # RGB uint8
    landmarks: np.ndarray  # [68, 2] rest pose in image pixels
    framing: np.ndarray  # 2x3 affine: identity image -> 480x360 frame
    params: dict


def part_lips(points: np.ndarray, gap: float) -> np.ndarray:
    """The landmarks with the inner lips moved ``gap`` pixels further apart along the face's vertical."""
    _, axes, _ = face_frame(points)
    parted = points.copy()
    parted[61:64] -= gap / 2 * axes[1]
    parted[65:68] += gap / 2 * axes[1]
    return parted


def close_mouth(points: np.ndarray) -> np.ndarray:
    """Rest landmarks of a photo: the jaw raised as in speech until the inner lips meet (they meet
    exactly halfway, so the photo's teeth fold away between them)."""
    _, _, iod = face_frame(points)
    gap = np.mean([np.linalg.norm(points[u] - points[w]) for u, w in ((61, 67), (62, 66), (63, 65))]) / iod
    rest = points + mouth_offsets(points, -gap, 0.0)
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        rest[upper] = rest[lower] = (rest[upper] + rest[lower]) / 2
    return rest


def make_identity(name: str, photo: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> Identity:
    """A speaker from a photo as it is: resampled to a chosen eye distance, eyes level, framed a little
    off-centre, and extended beyond its edges by a soft backdrop (see ``extend``) to fill the frame.

    The face keeps its own shape and colours; only its mouth is closed (the rest pose of every clip).
    """
    params = {"iod_px": float(rng.uniform(44, 56)),
              "offset_px": [float(rng.uniform(-20, 20)), float(rng.uniform(-12, 12))]}
    _, _, iod = face_frame(points)
    height, width = photo.shape[:2]
    size = (max(round(width * params["iod_px"] / iod), 1), max(round(height * params["iod_px"] / iod), 1))
    # Resample once here (area for shrinking, cubic for enlarging), so no frame warp scales the photo.
    image = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if size[0] < width else cv2.INTER_CUBIC)
    scaled = (points + 0.5) * np.array(size) / (width, height) - 0.5
    rest = close_mouth(scaled)
    image = PiecewiseAffine(scaled, image.shape)(image, rest)
    _, axes, _ = face_frame(rest)
    eye_mid = (rest[36:42].mean(0) + rest[42:48].mean(0)) / 2
    angle = float(np.degrees(np.arctan2(axes[0, 1], axes[0, 0])))
    framing = cv2.getRotationMatrix2D(tuple(map(float, eye_mid)), angle, 1.0)
    dx, dy = params["offset_px"]
    framing[:, 2] += (WIDTH / 2 + dx - eye_mid[0], HEIGHT * 0.4 + dy - eye_mid[1])
    # What the frame (plus room for the head motion) shows of the image, and how far that reaches past it.
    corners = np.array([[-FRAME_MARGIN, -FRAME_MARGIN], [WIDTH + FRAME_MARGIN, -FRAME_MARGIN],
                        [-FRAME_MARGIN, HEIGHT + FRAME_MARGIN], [WIDTH + FRAME_MARGIN, HEIGHT + FRAME_MARGIN]])
    seen = (corners - framing[:, 2]) @ np.linalg.inv(framing[:, :2]).T
    left, top = np.maximum(np.ceil(-seen.min(0)), 0).astype(int)
    right, bottom = np.maximum(np.ceil(seen.max(0) - (size[0] - 1, size[1] - 1)), 0).astype(int)
    image = extend(image, rest, top, bottom, left, right)
    framing[:, 2] -= framing[:, :2] @ (left, top)
    return Identity(name=name, image=image, landmarks=rest + (left, top), framing=framing, params=params)


def extend(image: np.ndarray, points: np.ndarray, top: int, bottom: int, left: int, right: int,
           feather: int = 8, reach: float = 12.0) -> np.ndarray:
    """The image padded by the given pixels with a plain backdrop, blended into it over ``feather`` pixels
    (no hard edge where the photo ends): above and beside the face the photo's background colour, below
    it its clothes; the photo's own edge fades into them over ``reach`` pixels."""
    if not top + bottom + left + right:
        return image
    height, width = image.shape[:2]
    strip = max(2, min(height, width) // 32)
    ys, xs = np.mgrid[0:height, 0:width]
    edge = (ys < strip) | (xs < strip) | (xs >= width - strip)
    beside = (xs < points[0:17, 0].min()) | (xs > points[0:17, 0].max())
    below = ys >= height - strip
    neck = (xs > points[6, 0]) & (xs < points[10, 0])
    background = _median_colour(image, edge & beside & (ys < points[8, 1]), edge)
    clothes = _median_colour(image, below & ~neck, below)
    py = np.arange(-top, height + bottom, dtype=np.float32)[:, None]
    px = np.arange(-left, width + right, dtype=np.float32)[None, :]
    zero = np.zeros((len(py), px.shape[1]), np.float32)
    beyond = np.stack([zero - py, zero + py - (height - 1), zero - px, zero + px - (width - 1)]).clip(0)
    sides = np.array([background, clothes, background, background], np.float32)
    field = np.einsum("khw,kc->hwc", beyond, sides) / np.maximum(beyond.sum(0), 1e-6)[..., None]
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REPLICATE).astype(np.float32)
    near = np.exp(-np.hypot(beyond[0] + beyond[1], beyond[2] + beyond[3]) / reach)[..., None]
    backdrop = cv2.GaussianBlur(cv2.GaussianBlur(padded, (0, 0), 6) * near + field * (1 - near), (0, 0), 4)
    weight = np.outer(_ramp(len(py), top, bottom, feather), _ramp(px.shape[1], left, right, feather))[..., None]
    return (padded * weight + backdrop * (1 - weight)).round().clip(0, 255).astype(np.uint8)


def _median_colour(image: np.ndarray, where: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Median RGB of the pixels in ``where`` (of ``fallback`` when ``where`` holds too few)."""
    return np.median(image[where if where.sum() >= 16 else fallback], axis=0)


def _ramp(n: int, before: int, after: int, feather: int) -> np.ndarray:
    """Weights along one axis of a padded image: 0 in the padding, rising to 1 inside a padded side."""
    position = np.arange(n) - before
    inside = n - before - after
    weight = np.ones(n)
    if before:
        weight = np.minimum(weight, np.clip(position / feather, 0, 1))
    if after:
        weight = np.minimum(weight, np.clip((inside - 1 - position) / feather, 0, 1))
    return weight


def pose_matrix(identity: Identity, pose: np.ndarray) -> np.ndarray:
    """Identity image -> frame transform with the head pose (roll degrees, dx, dy, scale) applied."""
    eye_mid = (identity.landmarks[36:42].mean(0) + identity.landmarks[42:48].mean(0)) / 2
    centre = identity.framing[:, :2] @ eye_mid + identity.framing[:, 2]
    head = cv2.getRotationMatrix2D(tuple(map(float, centre)), float(pose[0]), float(pose[3]))
    head[:, 2] += pose[1:3]
    return head[:, :2] @ identity.framing + np.hstack([np.zeros((2, 2)), head[:, 2:]])


def puppet_frame(identity: Identity, warp: PiecewiseAffine, moved: np.ndarray, opening_px: float,
                 pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One 480x360 RGB frame and its 68 landmarks in frame pixels."""
    if warp.canvas is None or warp.canvas.shape != identity.image.shape:
        warp.canvas = np.empty_like(identity.image)
    # Into one array a clip rather than a fresh copy of the photo a frame: the same pixels, the warp
    # 7.4 -> 4.5 ms (medians of 2 x 5 x 40 warps, load ~9 on 2 cores).
    face = warp(identity.image, moved, out=warp.canvas)
    paint_mouth(face, moved, opening_px)
    matrix = pose_matrix(identity, pose)
    frame = cv2.warpAffine(face, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return frame, moved @ matrix[:, :2].T + matrix[:, 2]
