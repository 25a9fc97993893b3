"""A living face at inference: blinks and a head that moves with the speech.

The generator learns expression and speech with the head held still (``still_head``), and blinks in
the corpus come at random, so nothing in its inputs says when to blink: both are rendered here, on
top of its motion field, at the output's own resolution (``infer.move_pixels``).

- ``life_track`` schedules them from the speech and a seed: the same inputs give the same video.
  Blinks come every 1-6 s (about 20 a minute, as real talkers blink), more often where the speech
  pauses (phrase boundaries), each 160-320 ms: the lid comes down fast and opens more slowly.
  The head drifts slowly between phrases (a sum of slow sines), nods with the stressed syllables
  (onsets of loudness) and rolls a little; every track is smooth, so nothing shakes frame to frame.
- ``HeadField`` turns (roll, yaw, pitch) into a displacement of the face: roll turns the face in the
  image, yaw and pitch move each point by its depth on a generic head (an ellipsoid with a nose), so
  the nose moves more than the cheeks, as a real head turning. It fades to nothing outside the head,
  so pasted back into a photo the face region moves without a seam at its edge.
- ``close_eyes`` moves each upper lid down over its eye: pixels between the lids sample the lid's
  own skin above them (the eye is covered, not squashed), the skin up to the crease stretches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from synthtext.errors import SynthTextError

BLINK_MEAN_S = 3.0  # mean interval: 20 blinks a minute (real talkers: ~10-40)
BLINK_MIN_S = 1.0
BLINK_S = (0.16, 0.32)  # each blink's length, s
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
    shut for 15%, up in the rest (a real blink opens more slowly than it closes)."""
    n = max(2, int(np.ceil(duration * fps)))
    u = (np.arange(n) + 0.5) / (duration * fps)
    down = np.sin(np.clip(u / 0.3, 0, 1) * np.pi / 2)
    up = np.cos(np.clip((u - 0.45) / 0.55, 0, 1) * np.pi / 2)
    return np.where(u < 0.3, down, np.where(u < 0.45, 1.0, up)).clip(0, 1)


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
    of side ``side`` (the template's frame, ``synthtext.template``): ``displacement(roll, yaw, pitch)``
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


def close_eyes(map_x: np.ndarray, map_y: np.ndarray, points: np.ndarray, closure: float) -> None:
    """Move the upper lids down by ``closure`` (0..1) in sampling maps (in place): where a pixel samples
    an eye at (x, y), it samples the lid above instead. ``points``: the 68 landmarks of the image the
    maps sample, in its pixels."""
    if closure <= 0:
        return
    for corner_a, upper, corner_b, lower in ((36, (37, 38), 39, (41, 40)), (42, (43, 44), 45, (47, 46))):
        a, b = points[corner_a], points[corner_b]
        length = float(np.linalg.norm(b - a))
        if length < 1:
            continue
        axis = (b - a) / length
        normal = np.array([-axis[1], axis[0]])  # down the face
        knots = np.array([0, 1 / 3, 2 / 3, 1])
        top = np.array([0, (points[upper[0]] - a) @ normal, (points[upper[1]] - a) @ normal, (b - a) @ normal])
        bottom = np.array([0, (points[lower[0]] - a) @ normal, (points[lower[1]] - a) @ normal, (b - a) @ normal])
        height = float((bottom - top).max())
        if height < 0.5:
            continue
        crease = 1.4 * height  # the skin from the crease to the lid margin stretches as the lid comes down
        travel = 1.2  # the lid comes down a little past dlib's lower-lid points, which sit inside the lashes
        # only pixels near this eye can sample it
        lo = np.minimum(a, b) - [0.2 * length, crease + height + 2]
        hi = np.maximum(a, b) + [0.2 * length, height + 2]
        rows = np.flatnonzero(((map_y >= lo[1]) & (map_y <= hi[1])).any(1))
        if not len(rows):
            continue
        r0, r1 = rows[0], rows[-1] + 1
        mx, my = map_x[r0:r1], map_y[r0:r1]
        u = ((mx - a[0]) * axis[0] + (my - a[1]) * axis[1]) / length
        v = (mx - a[0]) * normal[0] + (my - a[1]) * normal[1]
        inside = (u > 0) & (u < 1)
        up, down = np.interp(u, knots, top), np.interp(u, knots, bottom)
        gap = np.clip(down - up, 0, None)
        margin = 0.08 * height + 0.3
        weight = np.where(v < up, np.clip((v - (up - crease)) / crease, 0, 1),
                          np.where(v <= down, 1.0, np.clip(1 - (v - down) / margin, 0, 1)))
        shift = np.where(inside, closure * (travel * gap + 0.5) * weight, 0).astype(np.float32)
        mx -= shift * normal[0]
        my -= shift * normal[1]
