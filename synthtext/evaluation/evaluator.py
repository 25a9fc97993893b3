"""The independent emotion evaluator: a logistic regression on landmark geometry, trained by the
``evaluate`` stage on real clips only (never the GAN's emotion discriminator). ``evaluate`` scores
the candidate with it and stores it with the model version in the registry; inference reads each
segment of every video it makes with it (``synthtext.inference.selfcheck``)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from synthtext import EMOTIONS
from synthtext.data.align import FaceTracker
from synthtext.data.geometry import EXPRESSION_POINTS, expression_features
from synthtext.ops.config import AlignParams
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_json_atomic


class Measurer:
    """Landmarks of any video the same way: aligned faces scaled to the crop size, detect once, track."""

    def __init__(self, backend, crop_size: int):
        self.backend = backend
        self.params = AlignParams(size=crop_size, min_frames=1)
        self.size = crop_size

    def landmarks(self, frames: np.ndarray, aligned: bool = True, tracker: FaceTracker | None = None) -> np.ndarray:
        """[T, 68, 2], NaN where no face was found: in crop-size pixels for aligned faces, in the frames'
        own pixels otherwise (a photo with the face pasted back). Each call tracks the face from its
        first frame, unless ``tracker`` (``self.tracker()``) carries the track on from an earlier call:
        the tracker starts each frame from the last one's face, so where a track starts matters."""
        if aligned:
            frames = (cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_CUBIC)
                      if f.shape[0] != self.size else f for f in frames)
        return (tracker or self.tracker()).track(frames).landmarks

    def tracker(self) -> FaceTracker:
        return FaceTracker(self.backend, self.params)


def measured_features(landmarks: np.ndarray) -> np.ndarray:
    """The evaluator's features of a video's landmarks [T, 68, 2] (NaN where no face was found): the
    expression geometry of ``EXPRESSION_POINTS`` over the frames with a face (zeros if none)."""
    found = np.isfinite(landmarks[:, 0, 0])
    if not found.any():
        return np.zeros(2 * len(EXPRESSION_POINTS))
    return expression_features(landmarks[found], EXPRESSION_POINTS)


class EmotionEvaluator:
    """Logistic regression on landmark geometry (``geometry.EXPRESSION_POINTS``, relative to the
    face's neutral frame), trained on real clips only. Saved as plain JSON."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray):
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, intercept

    @classmethod
    def fit(cls, features: np.ndarray, labels: list[str], seed: int = 0) -> EmotionEvaluator:
        if len(set(labels)) < 2:
            raise SynthTextError("the training split has fewer than two emotions: the evaluator cannot be trained")
        # One scale for every feature: they share units (template widths), and scaling each by its own
        # spread would magnify the points the training clips barely move, so that a landmark
        # detector's noise on a new face would outvote the points that carry the expression.
        mean, scale = features.mean(0), np.full(features.shape[1], features.std() + 1e-8)
        # scikit-learn is imported here, not at the top: it takes over a second, and inference only
        # reads a fitted evaluator.
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=5000, C=1.0, random_state=seed)
        model.fit((features - mean) / scale, [EMOTIONS.index(x) for x in labels])
        coef = np.zeros((len(EMOTIONS), features.shape[1]))
        intercept = np.full(len(EMOTIONS), -1e9)
        coef[model.classes_] = model.coef_ if len(model.classes_) > 2 else np.vstack([-model.coef_, model.coef_])
        intercept[model.classes_] = model.intercept_ if len(model.classes_) > 2 else \
            np.array([-model.intercept_[0], model.intercept_[0]])
        return cls(mean, scale, coef, intercept)

    def scores(self, features: np.ndarray) -> np.ndarray:
        return ((np.atleast_2d(features) - self.mean) / self.scale) @ self.coef.T + self.intercept

    def predict(self, features: np.ndarray) -> list[str]:
        return [EMOTIONS[i] for i in self.scores(features).argmax(1)]

    def save(self, path: Path) -> None:
        write_json_atomic(path, {"kind": "logistic-regression on landmark geometry (real clips only)",
                                 "emotions": list(EMOTIONS), "mean": self.mean.tolist(),
                                 "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                                 "intercept": self.intercept.tolist()})

    @classmethod
    def load(cls, path: Path) -> EmotionEvaluator:
        try:
            data = json.loads(Path(path).read_text())
            evaluator = cls(*(np.array(data[k], float) for k in ("mean", "scale", "coef", "intercept")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SynthTextError(f"{path} is not an emotion evaluator this code can read: {exc}") from exc
        if data.get("emotions", list(EMOTIONS)) != list(EMOTIONS) or evaluator.coef.shape[0] != len(EMOTIONS) or \
                evaluator.coef.shape[1] != evaluator.mean.shape[0]:
            raise SynthTextError(f"{path}: the evaluator's emotions or feature sizes do not match this code")
        return evaluator

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """[N, 6] class probabilities (softmax of the scores), in ``EMOTIONS`` order."""
        scores = self.scores(features)
        scores = np.exp(scores - scores.max(1, keepdims=True))
        return scores / scores.sum(1, keepdims=True)
