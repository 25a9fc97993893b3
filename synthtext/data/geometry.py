"""Face geometry on 68-point landmarks: similarity transforms, lip gaps and expression features.
Shared by alignment, training, inference, evaluation and the corpus checks."""

from __future__ import annotations

import numpy as np

from synthtext.data.template import RIGID_POINTS, template


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst, as 2x3."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    dot = float((a * b).sum())
    cross = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum())
    scale = np.hypot(dot, cross) / float((a * a).sum())
    angle = np.arctan2(cross, dot)
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rot, (mu_d - rot @ mu_s)[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to points [..., 2]."""
    return points @ matrix[:, :2].T + matrix[:, 2]


INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def inner_lip_distance(landmarks: np.ndarray) -> np.ndarray:
    """Mean vertical gap between the inner lips per frame [T] (pixels)."""
    return np.mean([np.linalg.norm(landmarks[:, a] - landmarks[:, b], axis=-1) for a, b in INNER_LIP_PAIRS], axis=0)


# The points an expression reader looks at: brows, eyes, nose, the outer upper lip and the mouth
# corners. Left out: the jaw line (0-16) and the lower and inner lips (55-58, 60-67), which follow the
# speech more than the emotion and are where a landmark detector is least sure of a new face (a
# collar, a beard, glasses' shadows), so that they would decide the answer for the wrong reason.
EXPRESSION_POINTS = np.array([*range(17, 55), 59])


def expression_features(landmarks: np.ndarray, points: np.ndarray | slice = slice(None)) -> np.ndarray:
    """Landmark geometry of a clip, independent of where the face sits: each frame mapped onto the
    template by its rigid points, expressed relative to the template, averaged over the clip; only
    the landmarks ``points`` (all 68 by default; ``EXPRESSION_POINTS`` for emotion)."""
    target = template(1)[RIGID_POINTS]
    frames = [transform_points(similarity(points_[RIGID_POINTS], target), points_)[points] - template(1)[points]
              for points_ in landmarks.astype(np.float64)]
    return np.mean(frames, axis=0).ravel()
