"""Measuring videos: image, landmark and sync metrics on arrays, the landmarks of a video, and the pieces
of the independent evaluator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

from synthtext import EMOTIONS
from synthtext.data.geometry import INNER_LIP_PAIRS
from synthtext.data.template import LEFT_EYE, RIGHT_EYE
from synthtext.evaluation.evaluator import Measurer, measured_features

MOUTH = slice(48, 68)
MAX_OFFSET = 5


# ---------------------------------------------------------------- metrics on arrays


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of uint8-range arrays (100 for identical arrays)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else float(10 * np.log10(peak ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004; 7x7 windows) of two frames [H, W, 3] in 0..255."""
    side = min(a.shape[0], a.shape[1])
    window = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, data_range=255, channel_axis=-1, win_size=window))


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres per frame [T]."""
    return np.linalg.norm(landmarks[:, LEFT_EYE].mean(1) - landmarks[:, RIGHT_EYE].mean(1), axis=-1)


def landmark_distance(pred: np.ndarray, real: np.ndarray, points: slice | np.ndarray = slice(None)) -> float:
    """Mean point distance over frames where both have landmarks, in units of the real IOD."""
    dist = np.linalg.norm(pred[:, points] - real[:, points], axis=-1).mean(1) / interocular(real)
    return float(np.nanmean(dist)) if np.isfinite(dist).any() else float("nan")


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap per frame in IOD units [T] (NaN where no face)."""
    gap = np.mean([np.linalg.norm(landmarks[:, a] - landmarks[:, b], axis=-1) for a, b in INNER_LIP_PAIRS], axis=0)
    return gap / interocular(landmarks)


def speech_envelope(audio: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """RMS of the audio under each video frame [frames]."""
    hop = sample_rate / fps
    out = np.zeros(frames)
    for t in range(frames):
        chunk = audio[int(round(t * hop)):int(round((t + 1) * hop))]
        out[t] = np.sqrt(np.mean(np.square(chunk, dtype=np.float64))) if chunk.size else 0.0
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return 0.0
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def best_offset_correlation(motion: np.ndarray, envelope: np.ndarray,
                            max_offset: int = MAX_OFFSET) -> tuple[float, int]:
    """(r, offset) maximising corr(motion[t], envelope[t - offset]) for |offset| <= max_offset."""
    best = (-2.0, 0)
    for offset in range(-max_offset, max_offset + 1):
        if offset >= 0:
            a, b = motion[offset:], envelope[:len(envelope) - offset]
        else:
            a, b = motion[:offset], envelope[-offset:]
        r = _corr(a, b)
        if r > best[0]:
            best = (r, offset)
    return best


# ---------------------------------------------------------------- measuring videos


def mouth_box(landmarks: np.ndarray, size: int, scale: float, pad: float = 0.25) -> tuple[slice, slice]:
    """The mouth region (from real landmarks, times ``scale`` into the frame) in a ``size`` frame, padded."""
    mouth = landmarks[:, MOUTH].reshape(-1, 2) * scale
    mouth = mouth[np.isfinite(mouth).all(1)]
    if not len(mouth):
        return slice(size // 2, size), slice(size // 4, 3 * size // 4)
    (x0, y0), (x1, y1) = mouth.min(0), mouth.max(0)
    px, py = (x1 - x0) * pad, (y1 - y0) * pad
    clamp = lambda v: int(min(max(v, 0), size))  # noqa: E731
    return slice(clamp(y0 - py), clamp(y1 + py + 1)), slice(clamp(x0 - px), clamp(x1 + px + 1))


@dataclass
class Measured:
    landmarks: np.ndarray
    features: np.ndarray  # expression geometry for the evaluator
    size: int | None  # the frame size the landmarks' pixels belong to (None: the frames' own)


def measure(frames: np.ndarray, measurer: Measurer, aligned: bool = True) -> Measured:
    points = measurer.landmarks(frames, aligned)
    return Measured(landmarks=points, features=measured_features(points), size=measurer.size if aligned else None)


def video_metrics(frames: np.ndarray, real: np.ndarray, measured: Measured, real_measured: Measured,
                  audio: np.ndarray, sample_rate: int, fps: float) -> dict:
    """Image, motion and sync metrics of one video against the real clip (same length, aligned faces)."""
    size = frames.shape[1]
    rows, cols = mouth_box(real_measured.landmarks, size, size / (real_measured.size or size))
    metrics = {
        "psnr": float(np.mean([psnr(f, r) for f, r in zip(frames, real, strict=True)])),
        "ssim": float(np.mean([ssim(f, r) for f, r in zip(frames, real, strict=True)])),
        "psnr_mouth": float(np.mean([psnr(f[rows, cols], r[rows, cols]) for f, r in zip(frames, real, strict=True)])),
        "ssim_mouth": float(np.mean([ssim(f[rows, cols], r[rows, cols]) for f, r in zip(frames, real, strict=True)])),
        "m_lmd": landmark_distance(measured.landmarks, real_measured.landmarks, MOUTH),
        "f_lmd": landmark_distance(measured.landmarks, real_measured.landmarks),
    }
    metrics.update(sync_metrics(measured.landmarks, audio, sample_rate, fps))
    metrics["face_found"] = float(np.isfinite(measured.landmarks[:, 0, 0]).mean())
    return metrics


def sync_metrics(landmarks: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float) -> dict:
    opening = mouth_opening(landmarks)
    envelope = speech_envelope(audio, sample_rate, fps, len(landmarks))
    r, offset = best_offset_correlation(opening, envelope)
    return {"sync_r": r, "sync_offset": float(offset)}


# ---------------------------------------------------------------- the independent evaluator


def confusion(actual: list[str], predicted: list[str]) -> np.ndarray:
    matrix = np.zeros((len(EMOTIONS), len(EMOTIONS)), int)
    for a, p in zip(actual, predicted, strict=True):
        matrix[EMOTIONS.index(a), EMOTIONS.index(p)] += 1
    return matrix


def ground_truth_opening(sidecar: Path, frames: int, fps: float) -> np.ndarray | None:
    """The sample corpus's true mouth opening, resampled to the clip's frame times."""
    if not sidecar.is_file():
        return None
    data = json.loads(sidecar.read_text())
    opening = np.asarray(data.get("per_frame", {}).get("mouth_opening", []), float)
    if not opening.size:
        return None
    times = np.arange(frames) / fps
    return np.interp(times, np.arange(opening.size) / float(data["fps"]), opening)


