"""Measurements that show a corpus has something to learn: lips that follow the speech, faces that
carry the emotion. Computed on aligned clips (what the landmark model measured, not the generator's truth)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from synthtext.data.clipfile import AlignedClip
from synthtext.data.geometry import expression_features, inner_lip_distance


def audio_rms_per_frame(clip: AlignedClip) -> np.ndarray:
    """RMS of the audio samples that each frame covers [T]."""
    chunks = (clip.audio_for_frame(t) for t in range(len(clip.video)))
    return np.array([np.sqrt(np.mean(np.square(chunk))) if chunk.size else 0.0 for chunk in chunks])


def lip_audio_correlation(clip: AlignedClip) -> float:
    """Pearson r between the measured inner-lip distance and the audio RMS envelope."""
    lips, rms = inner_lip_distance(clip.landmarks), audio_rms_per_frame(clip)
    if lips.std() == 0 or rms.std() == 0:
        return 0.0
    return float(np.corrcoef(lips, rms)[0, 1])


def emotion_accuracy_by_identity(clips: list[AlignedClip], speaker_normalise: bool = True) -> dict[str, float]:
    """Leave-one-identity-out accuracy of a logistic regression on landmark geometry.

    For each actor, train on all the others' clips and test on this actor's. With
    ``speaker_normalise`` each actor's mean geometry is subtracted first (standard speaker
    normalisation: it removes face shape, which is not emotion, and needs no labels).
    """
    features = np.array([expression_features(c.landmarks) for c in clips])
    labels = np.array([c.attrs["emotion"] for c in clips])
    actors = np.array([str(c.attrs["actor"]) for c in clips])
    if speaker_normalise:
        for actor in set(actors):
            features[actors == actor] -= features[actors == actor].mean(0)
    scores = {}
    for actor in sorted(set(actors)):
        held = actors == actor
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        model.fit(features[~held], labels[~held])
        scores[actor] = float((model.predict(features[held]) == labels[held]).mean())
    return scores
