"""What moves in a generated clip: expression offsets, speech-driven mouth, blinks and head pose.

Offsets are in units of the inter-ocular distance (IOD) in a face frame whose x axis runs along the
eye line and y axis points down; ``out`` moves a point away from the face's vertical midline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (points, out, down) triples per emotion, at full (HI) intensity. Each stays within what a real face
# does (brows and lip corners move at most ~0.12 IOD); the model learns these as the emotions' motion.
_BROWS, _INNER_BROWS = [*range(17, 27)], [20, 21, 22, 23]
_UPPER_LIDS, _LOWER_LIDS = [37, 38, 43, 44], [40, 41, 46, 47]
_CORNERS, _UPPER_LIP, _LOWER_LIP = [48, 54, 60, 64], [49, 50, 51, 52, 53], [55, 56, 57, 58, 59]
EXPRESSIONS: dict[str, list[tuple[list[int], float, float]]] = {
    "ANG": [(_BROWS, 0.0, 0.05), (_INNER_BROWS, -0.05, 0.05), (_UPPER_LIDS, 0.0, -0.02), (_LOWER_LIDS, 0.0, -0.04),
            ([50, 51, 52, 61, 62, 63], 0.0, 0.03), ([56, 57, 58, 65, 66, 67], 0.0, -0.03), (_CORNERS, -0.04, 0.0)],
    "DIS": [(_UPPER_LIP, 0.0, -0.09), ([61, 62, 63], 0.0, -0.05), ([31, 32, 33, 34, 35], 0.0, -0.04),
            ([31, 35], 0.03, 0.0), (_INNER_BROWS, -0.02, 0.06), (_LOWER_LIDS, 0.0, -0.04), (_CORNERS, -0.02, 0.06),
            ([56, 57, 58], 0.0, -0.03)],
    "FEA": [(_BROWS, 0.0, -0.09), (_INNER_BROWS, -0.03, -0.03), (_UPPER_LIDS, 0.0, -0.05), (_LOWER_LIDS, 0.0, 0.02),
            (_CORNERS, 0.07, 0.03), ([6, 7, 8, 9, 10], 0.0, 0.05), ([65, 66, 67, *_LOWER_LIP], 0.0, 0.04)],
    "HAP": [(_CORNERS, 0.08, -0.08), ([49, 53], 0.04, -0.04), ([55, 59], 0.03, -0.03), (_LOWER_LIDS, 0.0, -0.04),
            ([1, 2, 14, 15], 0.0, -0.03), ([61, 63], 0.02, -0.02)],
    "NEU": [],
    "SAD": [([21, 22], -0.02, -0.10), ([20, 23], 0.0, -0.05), ([17, 26], 0.0, 0.04), (_CORNERS, -0.03, 0.08),
            (_UPPER_LIDS, 0.0, 0.03), ([56, 57, 58], 0.0, -0.03), ([49, 53], 0.0, 0.03)],
}
MOUTH_OPEN_SCALE = {"ANG": 0.7}  # pressed lips open less

# Geometry of speech, in IOD units.
MAX_OPEN = 0.32  # inner-lip gap at the loudest frames
JAW_SHARE = 0.55  # how much of the opening the chin follows
MAX_SPREAD = 0.06  # lip-corner spread for bright (high-centroid) sounds, rounding for dark ones


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Midpoint between the eyes, unit x/y axes of the face [2, 2], and the IOD in pixels."""
    left, right = points[36:42].mean(0), points[42:48].mean(0)
    x_axis = (right - left) / np.linalg.norm(right - left)
    y_axis = np.array([-x_axis[1], x_axis[0]])
    return (left + right) / 2, np.stack([x_axis, y_axis]), float(np.linalg.norm(right - left))


def _in_face_frame(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Turn [68, 2] (out, down) offsets in IOD units into pixel displacements."""
    centre, axes, iod = face_frame(points)
    side = np.sign((points - centre) @ axes[0])
    side[np.abs((points - centre) @ axes[0]) < 0.05 * iod] = 0  # midline points don't move sideways
    local = np.stack([offsets[:, 0] * side, offsets[:, 1]], axis=1)
    return iod * local @ axes


EXPRESSION_GAIN = 1.0  # no caricature: a gain above 1 pushes the offsets beyond a real face


def expression_offsets(points: np.ndarray, emotion: str, amount: float) -> np.ndarray:
    """Pixel displacements [68, 2] of an emotion's expression at ``amount`` (0..1) of full intensity."""
    offsets = np.zeros((68, 2))
    for indices, out, down in EXPRESSIONS[emotion]:
        offsets[indices] += (out, down)
    return _in_face_frame(points, offsets * amount * EXPRESSION_GAIN)


def mouth_offsets(points: np.ndarray, opening: float, spread: float) -> np.ndarray:
    """Pixel displacements for a mouth ``opening`` (IOD units of inner-lip gap) and corner ``spread``."""
    offsets = np.zeros((68, 2))
    # The lips part most in the middle (lens-shaped opening); ``opening`` is the gap at the centre.
    offsets[[65, 66, 67], 1] += opening * np.array([0.65, 0.8, 0.65])
    offsets[[55, 56, 57, 58, 59], 1] += opening * np.array([0.5, 0.7, 0.8, 0.7, 0.5])
    offsets[[61, 62, 63], 1] -= opening * np.array([0.15, 0.2, 0.15])
    offsets[[49, 50, 51, 52, 53], 1] -= opening * 0.15
    offsets[[60, 64, 48, 54], 1] += opening * 0.35
    jaw = np.array([0.1, 0.25, 0.45, 0.7, 0.9, 1.0, 0.9, 0.7, 0.45, 0.25, 0.1])
    offsets[3:14, 1] += opening * JAW_SHARE * jaw
    offsets[[48, 54, 60, 64], 0] += spread
    offsets[[49, 53, 59, 55], 0] += spread * 0.5
    return _in_face_frame(points, offsets)


def blink_offsets(points: np.ndarray, closure: float) -> np.ndarray:
    """Upper eyelids move onto the lower ones by ``closure`` (0 open, 1 shut)."""
    out = np.zeros((68, 2))
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        out[upper] = (points[lower] - points[upper]) * closure * 0.9
    return out


@dataclass
class Motion:
    """Per-frame drivers of one clip (arrays of length T)."""

    opening: np.ndarray  # inner-lip gap, IOD units
    spread: np.ndarray  # lip-corner spread, IOD units
    blink: np.ndarray  # eyelid closure 0..1
    pose: np.ndarray  # [T, 4]: roll degrees, dx px, dy px, scale


def speech_drivers(audio: np.ndarray, sample_rate: int, frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame loudness (RMS, 0..1 of the clip's loud level) and brightness (spectral centroid z-score)."""
    hop = sample_rate / fps
    window = int(round(1.5 * hop))
    rms, centroid = np.zeros(frames), np.zeros(frames)
    freqs = np.fft.rfftfreq(window, 1 / sample_rate)
    taper = np.hanning(window)
    for t in range(frames):
        centre = int(round((t + 0.5) * hop))
        chunk = audio[max(0, centre - window // 2):centre + window // 2]
        if chunk.size < 16:
            continue
        rms[t] = np.sqrt(np.mean(chunk ** 2))
        spectrum = np.abs(np.fft.rfft(chunk * taper[:chunk.size], n=window))
        centroid[t] = (spectrum * freqs).sum() / max(spectrum.sum(), 1e-9)
    loud = np.percentile(rms, 95) if rms.any() else 1.0
    level = np.clip(rms / max(loud, 1e-9), 0, 1)
    voiced = level > 0.1
    bright = np.zeros(frames)
    if voiced.sum() > 2:
        z = (centroid - centroid[voiced].mean()) / max(centroid[voiced].std(), 1e-9)
        bright[voiced] = np.tanh(z[voiced])
    return level, bright


def make_motion(audio: np.ndarray, sample_rate: int, frames: int, fps: float, emotion: str,
                rng: np.random.Generator) -> Motion:
    """Mouth from the speech, blinks at random, and a slow smooth head motion."""
    level, bright = speech_drivers(audio, sample_rate, frames, fps)
    smooth = np.convolve(np.pad(level, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    opening = MAX_OPEN * MOUTH_OPEN_SCALE.get(emotion, 1.0) * smooth ** 0.8
    spread = MAX_SPREAD * bright * smooth
    blink = np.zeros(frames)
    t = int(rng.integers(int(0.5 * fps), int(2.0 * fps)))
    while t < frames:
        for i, closure in enumerate((0.5, 1.0, 1.0, 0.6, 0.25)):
            if t + i < frames:
                blink[t + i] = closure
        t += int(rng.integers(int(1.8 * fps), int(3.5 * fps)))
    time = np.arange(frames) / fps
    pose = np.zeros((frames, 4))
    for column, amplitude in enumerate((2.0, 5.0, 3.0, 0.02)):
        freqs, phases = rng.uniform(0.15, 0.6, 2), rng.uniform(0, 2 * np.pi, 2)
        pose[:, column] = amplitude * 0.5 * (np.sin(2 * np.pi * freqs[0] * time + phases[0])
                                             + np.sin(2 * np.pi * freqs[1] * time + phases[1]))
    pose[:, 2] += 2.0 * smooth  # a small nod with the stressed syllables
    pose[:, 3] += 1.0
    return Motion(opening=opening, spread=spread, blink=blink, pose=pose)
