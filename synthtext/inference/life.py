"""A living face at inference: blinks and a head that moves with the speech.

The generator learns expression and speech with the head held still (``still_head``), and blinks in
the corpus come at random, so nothing in its inputs says when to blink: both are rendered here, on
top of its motion field, at the output's own resolution (``render.move_pixels``).

- ``life_track`` schedules them from the speech and a seed: the same inputs give the same video.
  Blinks come every 1-6 s (about 20 a minute, as real talkers blink), more often where the speech
  pauses (phrase boundaries), each 160-320 ms: the lid comes down fast and opens more slowly.
  The head drifts slowly between phrases (a sum of slow sines), nods with the stressed syllables
  (onsets of loudness) and rolls a little; every track is smooth, so nothing shakes frame to frame.
- ``HeadField`` turns (roll, yaw, pitch) into a displacement of the face: roll turns the face in the
  image, yaw and pitch move each point by its depth on a generic head (an ellipsoid with a nose), so
  the nose moves more than the cheeks, as a real head turning. It fades to nothing outside the head,
  so pasted back into a photo the face region moves without a seam at its edge.
- ``Lids`` draws each upper lid down over its eye: the thin band of lid skin above the margin stretches
  down over the eye (covered, not squashed), lit like the skin around it; nothing above the band
  moves (brows, a glasses rim).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from synthtext.ops.errors import SynthTextError

BLINK_MEAN_S = 2.5  # mean interval: 24 blinks a minute (real talkers: ~10-40, median 22-28)
BLINK_MIN_S = 1.0
BLINK_S = (0.22, 0.40)  # each blink's length, s (real: 100-400 ms as dlib's EAR dips 30%)
PAUSE_S = 0.16  # a quieter run at least this long is a phrase boundary
PAUSE_BLINK = 0.7  # chance of a blink at a phrase boundary
# Head motion at head_motion = 1, degrees: standard deviation of the slow drift of (roll, yaw, pitch),
# and the depth of a nod on a stressed syllable. Real talkers: roll std 0.3-0.9 in lab recordings,
# 1.4-7 in interviews; the drift here sits between them.
DRIFT_DEG = (0.9, 1.6, 1.0)
NOD_DEG = 1.6


@dataclass(frozen=True)
class Life:
    """What the face does besides speaking: ``blinks`` on or off, ``head_motion`` 0 (still) .. 1."""

    blinks: bool = True
    head_motion: float = 1.0

    def __post_init__(self):
        if not 0.0 <= float(self.head_motion) <= 1.0:
            raise SynthTextError(f"head motion must be 0..1 (0: still), not {self.head_motion}")

    @property
    def still(self) -> bool:
        return not self.blinks and self.head_motion == 0


def loudness(audio: np.ndarray, sample_rate: int, frames: int, fps: float) -> np.ndarray:
    """Per-frame RMS of the speech, 0..1 of its loud level (95th percentile)."""
    hop = sample_rate / fps
    rms = np.zeros(frames)
    for t in range(frames):
        chunk = audio[int(round(t * hop)):int(round((t + 1) * hop))]
        if chunk.size:
            rms[t] = np.sqrt(np.mean(np.square(chunk, dtype=np.float64)))
    loud = np.percentile(rms, 95) if rms.any() else 1.0
    return np.clip(rms / max(loud, 1e-9), 0, 1)


def blink_closure(duration: float, fps: float) -> np.ndarray:
    """Lid closure 0..1 at the frame centres of one blink of ``duration`` s: down in 30% of the time,
    shut for 20%, up in the rest (a real blink opens more slowly than it closes)."""
    n = max(2, int(np.ceil(duration * fps)))
    u = (np.arange(n) + 0.5) / (duration * fps)
    down = np.sin(np.clip(u / 0.3, 0, 1) * np.pi / 2)
    up = np.cos(np.clip((u - 0.5) / 0.5, 0, 1) * np.pi / 2)
    return np.where(u < 0.3, down, np.where(u < 0.5, 1.0, up)).clip(0, 1)


def blink_track(level: np.ndarray, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame lid closure: intervals drawn around ``BLINK_MEAN_S``, and a blink at most pauses."""
    frames = len(level)
    quiet = gaussian_filter1d(level, 1.0) < 0.08
    run = int(round(PAUSE_S * fps))
    pauses = [t for t in range(run, frames) if quiet[t - run:t].all() and not quiet[t - run - 1:t - run].all()]
    closure = np.zeros(frames)
    t = rng.uniform(0.3, 1.5) * fps
    last = -np.inf
    while t < frames:
        start = int(t)
        # a phrase boundary before the next scheduled blink takes it, most of the time
        boundary = [p - run for p in pauses if last + BLINK_MIN_S * fps <= p - run < start]
        if boundary and rng.random() < PAUSE_BLINK:
            start = boundary[0]
        shape = blink_closure(rng.uniform(*BLINK_S), fps)
        end = min(frames, start + len(shape))
        closure[start:end] = np.maximum(closure[start:end], shape[:end - start])
        last = start
        t = start + max(BLINK_MIN_S, rng.gamma(2.5, BLINK_MEAN_S / 2.5)) * fps
    return closure


def head_track(level: np.ndarray, fps: float, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame (roll, yaw, pitch) in degrees: a slow drift, nods with the stressed syllables."""
    frames = len(level)
    time = np.arange(frames) / fps
    pose = np.zeros((frames, 3))
    for axis, std in enumerate(DRIFT_DEG):
        freqs, phases = rng.uniform(0.08, 0.45, 3), rng.uniform(0, 2 * np.pi, 3)
        waves = np.sin(2 * np.pi * freqs[:, None] * time[None] + phases[:, None]).sum(0)
        pose[:, axis] = std * waves / np.sqrt(1.5)  # three unit sines: std sqrt(3/2)
    # Stress: where the loudness rises fast. Each onset dips the head (pitch down) and brings it back.
    onset = np.clip(np.diff(gaussian_filter1d(level, 1.5), prepend=level[0]), 0, None)
    onset = onset / max(np.percentile(onset[onset > 0], 90) if (onset > 0).any() else 1.0, 1e-9)
    nod = gaussian_filter1d(np.clip(onset, 0, 1.5), 0.12 * fps)
    pose[:, 2] += NOD_DEG * nod / max(nod.max(), 1e-9) * (1 if nod.max() > 0 else 0)
    pose[:, 0] += 0.3 * NOD_DEG * gaussian_filter1d(nod, 0.2 * fps) / max(nod.max(), 1e-9)
    return amount * gaussian_filter1d(pose, 1.0, axis=0)  # no frame-to-frame shake


def life_track(audio: np.ndarray, sample_rate: int, frames: int, fps: float, seed: int, life: Life) -> np.ndarray:
    """[frames, 4] float32: lid closure 0..1, then roll, yaw and pitch in degrees."""
    level = loudness(audio, sample_rate, frames, fps)
    track = np.zeros((frames, 4), np.float32)
    if life.blinks:
        track[:, 0] = blink_track(level, fps, np.random.default_rng([seed, 1]))
    if life.head_motion > 0:
        track[:, 1:] = head_track(level, fps, float(life.head_motion), np.random.default_rng([seed, 2]))
    return track


class HeadField:
    """Per-pixel bases of the head's displacement for a grid of points (x, y) in a face crop's pixels
    of side ``side`` (the template's frame, ``synthtext.data.template``): ``displacement(roll, yaw, pitch)``
    is then four products per pixel."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray, points: np.ndarray, side: int):
        iod = float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))
        centre = (points[27] + points[8]) / 2
        # Which pixels are the head: 1 on the face and hair, 0 beyond them and near the crop's edges
        # (where a pasted-back face fades into the photo: there the photo must not move).
        r = np.hypot((xs - centre[0]) / (1.5 * iod), (ys - centre[1] + 0.2 * iod) / (1.9 * iod))
        edge = np.minimum(np.minimum(xs, ys), np.minimum(side - 1 - xs, side - 1 - ys)) / side
        weight = np.clip((1.2 - r) / 0.4, 0, 1) * np.clip((edge - 0.12) / 0.12, 0, 1)
        weight = weight * weight * (3 - 2 * weight)
        # Depth towards the camera: the face an ellipsoid, the nose on it; the turn's axis behind it.
        bulge = np.sqrt(np.clip(1 - np.hypot((xs - centre[0]) / (1.2 * iod), (ys - centre[1]) / (1.6 * iod)) ** 2,
                                0, None))
        nose = np.exp(-(np.hypot(xs - points[30, 0], ys - points[30, 1]) / (0.3 * iod)) ** 2)
        depth = iod * (0.8 * bulge + 0.45 * nose + 1.0)
        pivot = np.array([centre[0], points[8, 1] + 0.4 * iod])  # roll about the neck
        self.a = (weight * (xs - pivot[0])).astype(np.float32)
        self.b = (weight * (ys - pivot[1])).astype(np.float32)
        self.c = (weight * depth).astype(np.float32)
        self.side = side

    def displacement(self, roll: float, yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray]:
        """(dx, dy) in the crop's pixels: where each point of the still face goes."""
        r, y, p = np.radians([roll, yaw, pitch])
        cos, sin = np.cos(r) - 1, np.sin(r)
        dx = cos * self.a - sin * self.b + np.sin(y) * self.c
        dy = sin * self.a + cos * self.b + np.sin(p) * self.c
        return dx, dy


EYES = ((36, (37, 38), 39, (41, 40)), (42, (43, 44), 45, (47, 46)))  # corner, upper lid, corner, lower lid


class Lids:
    """Blinks drawn over a photo: the upper lid comes down over the eye, as a lid, not a squashed eye.

    Built once per photo from its 68 ``points`` (in its pixels). Along each eye, the thin band of lid skin
    above the lid margin (``band`` eye heights) is stretched down to just past the lower lid (over the
    lower lashes), so the margin's lashes end where the lower lid is; nothing further above moves (a
    glasses rim or the brow stays where it is). The stretched lid is lit like the skin around the eye
    (its low frequencies pulled towards that skin's colour in the lid's middle, not at the lashes): a
    closed lid catches the light, where the crease above an open eye is in shadow, and a dlib
    landmark fit reads the lid as closed only then (on GRID lrwp9a it read a dark stretched crease as
    an open eye: EAR down 20%, not the 30% of a real blink).

    ``draw(frame, map_x, map_y, closure)``: at ``closure`` c the margin sits c of the way from the upper to
    the lower lid; pixels of the maps that sample the lid band or the eye above the margin sample the
    lid compressed into that span instead (c = 1: the closed eye; c -> 0: the photo itself)."""

    BAND = 0.6  # lid skin above the margin, in eye heights
    PAST = 0.15  # how far past dlib's lower-lid points (inside the lashes) the lid comes, eye heights
    LIFT = 0.3  # dlib's upper-lid points often sit inside the eye, below the margin: the lid starts this far above
    LASHES = 0.2  # the lid margin with its lashes, eye heights: moved, not stretched
    LIGHT = 0.85  # at most this share of the way to the skin's colour, in the lid's middle
    LASH = 0.8  # the shut lid's lash line: this share of the way to the eye's dark colour

    def __init__(self, image: np.ndarray, points: np.ndarray):
        self.eyes = []
        self.closed = image.astype(np.float32)
        self.light = np.zeros_like(self.closed)
        height_px, width_px = image.shape[:2]
        for corner_a, upper, corner_b, lower in EYES:
            a, b = points[corner_a].astype(np.float64), points[corner_b].astype(np.float64)
            length = float(np.linalg.norm(b - a))
            if length < 2:
                continue
            axis = (b - a) / length
            normal = np.array([-axis[1], axis[0]])  # down the face
            top = np.array([0, (points[upper[0]] - a) @ normal, (points[upper[1]] - a) @ normal, (b - a) @ normal])
            bottom = np.array([0, (points[lower[0]] - a) @ normal, (points[lower[1]] - a) @ normal, (b - a) @ normal])
            height = float((bottom - top).max())
            if height < 0.5:
                continue
            eye = {"a": a, "axis": axis, "normal": normal, "length": length, "top": top, "bottom": bottom,
                   "band": self.BAND * height + 1.0, "past": self.PAST * height + 0.5,
                   "lashes": self.LASHES * height + 0.5, "lift": self.LIFT * height}
            lo = np.floor(np.minimum(a, b) - [1, eye["band"] + height + 2]).astype(int).clip(0)
            hi = np.ceil(np.maximum(a, b) + [2, 3.5 * height + eye["past"] + 3]).astype(int)
            hi = np.minimum(hi, [width_px, height_px])
            if (hi <= lo).any():
                continue
            ys, xs = np.mgrid[lo[1]:hi[1], lo[0]:hi[0]].astype(np.float32)
            u, v, up, span_top, span_end = self._coordinates(eye, xs, ys)
            inside = (u > 0) & (u < 1) & (v >= span_top) & (v <= span_end)
            # the band [span_top, up] over [span_top, span_end]: its lowest part (the margin and its lashes)
            # moved down whole, the skin above it stretched (stretched lashes read as an open eye's slit)
            lashes = np.minimum(eye["lashes"], 0.5 * (up - span_top))
            source = np.where(v >= span_end - lashes, up - (span_end - v),
                              span_top + (v - span_top) * (up - lashes - span_top)
                              / np.maximum(span_end - lashes - span_top, 1e-3))
            shift = np.where(inside, source - v, 0).astype(np.float32)
            nx, ny = np.float32(normal[0]), np.float32(normal[1])
            patch = cv2.remap(image, xs + shift * nx, ys + shift * ny, cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            rows, cols = slice(lo[1], hi[1]), slice(lo[0], hi[0])
            self.closed[rows, cols] = np.where(inside[..., None], patch, self.closed[rows, cols])
            # the skin's colour: the brighter half of the upper cheek under the eye (the socket around the eye
            # is in shadow; a closed lid, rounded over the eye, catches the light as the cheek does)
            near = (u > 0.15) & (u < 0.85) & (v > span_end + 0.8 * height) & (v < span_end + 2.2 * height)
            skin = image[rows, cols][near].astype(np.float32)
            if len(skin) < 4:
                continue
            luma = skin.mean(1)
            tone = np.median(skin[luma >= np.median(luma)], axis=0)
            blurred = cv2.GaussianBlur(patch, (0, 0), max(0.5 * height, 0.8))
            middle = np.sin(np.pi * np.clip((v - span_top) / np.maximum(span_end - span_top, 1e-3), 0, 1)) ** 2
            low = np.clip((v - up) / np.maximum(span_end - up, 1e-3) - 0.6, 0, 1) / 0.4  # the lashes: kept dark
            weight = np.where(inside, self.LIGHT * middle * (1 - low), 0)
            weight = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), max(0.3 * height, 0.5)) * inside  # no edge
            # towards the skin's colour, and the stretched texture (streaks down the lid) halved there
            change = weight[..., None] * (tone - blurred - 0.5 * (patch - blurred))
            # the lash line where the lids meet: dark as the photo's lashes and iris, along the lid's lower
            # edge. Without it a shut lid is a pale oval that dlib's fit reads as an open eye: at closure 1
            # its EAR was 0.74-1.94 of the open eye's on 6 photos (held-out, GRID, CREMA-D, official
            # portraits), 0.38-0.66 with it (1.2 on CREMA-D 1001, whose eyes are half shut in the photo).
            eye_px = (u > 0.2) & (u < 0.8) & (v > up) & (v < np.maximum(np.interp(u, [0, 1 / 3, 2 / 3, 1],
                                                                                  bottom), up + 1))
            if eye_px.sum() >= 4:
                inner = image[rows, cols][eye_px].astype(np.float32)
                dark = np.percentile(inner, 10, axis=0)
                line = span_end - eye["past"] - 0.5 * eye["lashes"]
                width = 0.09 * height + 0.6
                taper = np.clip(np.minimum(u, 1 - u) * 5, 0, 1)
                lash = self.LASH * taper * np.exp(-0.5 * ((v - line) / width) ** 2) * inside
                change = change * (1 - lash[..., None]) + lash[..., None] * (dark - patch)
            self.light[rows, cols] = np.where(inside[..., None], change, self.light[rows, cols])
            self.eyes.append(eye)

    @staticmethod
    def _coordinates(eye: dict, xs: np.ndarray, ys: np.ndarray):
        """Along the eye (u 0..1 corner to corner), down the face from its first corner (v, pixels), the
        upper lid there, and the span the lid covers when shut (top of the band, past the lower lid)."""
        a, axis, normal, knots = eye["a"], eye["axis"], eye["normal"], np.array([0, 1 / 3, 2 / 3, 1])
        u = ((xs - a[0]) * axis[0] + (ys - a[1]) * axis[1]) / eye["length"]
        v = (xs - a[0]) * normal[0] + (ys - a[1]) * normal[1]
        up, down = np.interp(u, knots, eye["top"]), np.interp(u, knots, eye["bottom"])
        open_part = np.clip(np.minimum(u, 1 - u) * 6, 0, 1)  # the lid's extent tapers into the corners
        margin = up - eye["lift"] * open_part
        return u, v, margin, margin - eye["band"] * open_part, np.maximum(down, up) + eye["past"] * open_part

    def draw(self, frame: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, closure: float) -> None:
        """Draw the lids at ``closure`` over ``frame`` (float32 [H, W, 3], in place): the photo remapped by
        ``map_x``/``map_y`` (where each of its pixels samples the photo)."""
        if closure <= 0.01 or not self.eyes:
            return
        rows = np.zeros(len(map_y), bool)
        found = []
        for eye in self.eyes:
            u, v, up, span_top, span_end = self._coordinates(eye, map_x, map_y)
            margin = up + closure * (span_end - up)
            covered = (u > 0) & (u < 1) & (v >= span_top) & (v < margin + 0.5)
            if covered.any():
                found.append((eye, v, span_top, span_end, margin, covered))
                rows |= covered.any(1)
        if not found:
            return
        r0, r1 = np.flatnonzero(rows)[[0, -1]]
        r = slice(int(r0), int(r1) + 1)
        mx, my = map_x[r].copy(), map_y[r].copy()
        alpha = np.zeros(mx.shape, np.float32)
        for eye, v, span_top, span_end, margin, covered in found:
            v, span_top, span_end, margin, covered = v[r], span_top[r], span_end[r], margin[r], covered[r]
            source = span_top + (v - span_top) * (span_end - span_top) / np.maximum(margin - span_top, 1e-3)
            shift = np.where(covered, source - v, 0).astype(np.float32)
            mx += shift * np.float32(eye["normal"][0])
            my += shift * np.float32(eye["normal"][1])
            alpha = np.maximum(alpha, np.where(covered, np.clip(margin - v + 0.5, 0, 1), 0))
        lid = cv2.remap(self.closed, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lid += closure * cv2.remap(self.light, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lid -= frame[r]
        lid *= alpha[..., None]
        frame[r] += lid
