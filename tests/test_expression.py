"""The emotion's expression drawn on the photo from action units (``synthtext.inference.expression``)."""

from __future__ import annotations

import numpy as np
import pytest

from synthtext import EMOTIONS
from synthtext.data.corpus.motion import expression_offsets


def _weights(emotion: str, amount: float = 1.0) -> np.ndarray:
    row = np.zeros(len(EMOTIONS))
    row[EMOTIONS.index("NEU")] = 1 - amount
    row[EMOTIONS.index(emotion)] += amount
    return row


@pytest.fixture(scope="module")
def face(photo):
    from synthtext.inference.infer import DEFAULT_PREPROCESS, prepare_face

    return prepare_face(photo, {**DEFAULT_PREPROCESS, "size": 256})


@pytest.fixture(scope="module")
def rig(face):
    from synthtext.inference.expression import ExpressionRig

    return ExpressionRig(face.landmarks, face.crop.shape[:2], EMOTIONS)


@pytest.mark.parametrize("emotion", ["ANG", "DIS", "FEA", "HAP", "SAD"])
def test_a_landmark_moved_by_the_expression_shows_the_photo_at_its_rest_place(rig, face, emotion):
    """Backward maps: where the expression moved a landmark to, the frame samples that landmark's rest place."""
    moved = face.landmarks + expression_offsets(face.landmarks, emotion, 1.0)[:68]
    assert np.allclose(rig.landmark_moves(_weights(emotion)), moved - face.landmarks)
    map_x = moved[None, :, 0].astype(np.float32)
    map_y = moved[None, :, 1].astype(np.float32)
    pulled_x, pulled_y = rig.pull(map_x, map_y, _weights(emotion))
    error = np.hypot(pulled_x[0] - face.landmarks[:, 0], pulled_y[0] - face.landmarks[:, 1])
    moves = np.linalg.norm(moved - face.landmarks, axis=1)
    assert moves.max() > 5  # the expression moves points by pixels at 256 px
    assert np.median(error) < 0.2 and np.percentile(error, 90) < 1.0, np.round(error, 2)


def test_neutral_moves_nothing_and_strength_scales_the_field(rig):
    maps = np.mgrid[0:8, 0:8].astype(np.float32)
    assert rig.field(_weights("NEU")) is None
    same_x, same_y = rig.pull(maps[1], maps[0], _weights("NEU"))
    assert np.array_equal(same_x, maps[1]) and np.array_equal(same_y, maps[0])
    assert np.allclose(rig.field(_weights("HAP", 0.5)), 0.5 * rig.field(_weights("HAP")), atol=1e-5)
    assert np.allclose(rig.field(_weights("FEA", 1.5)), 1.5 * rig.field(_weights("FEA")), atol=1e-5)


def test_the_rendered_expression_is_what_the_landmark_fit_reads(face):
    """A still generator (no moves of its own): the frames' expression comes from the rig alone. dlib
    reads the smile's lip corners higher and wider, and anger's brows lower, than in the neutral video."""
    import torch

    from synthtext.data.landmarks import make_backend
    from synthtext.evaluation.evaluator import Measurer
    from synthtext.inference.infer import animate
    from synthtext.inference.render import face_frames
    from synthtext.model import Generator
    from synthtext.model.config import profile

    torch.manual_seed(0)
    generator = Generator(profile("tiny")).eval()
    audio = np.zeros(16000, np.float32)
    measurer = Measurer(make_backend("dlib"), 256)

    def shown(emotion: str) -> np.ndarray:
        animation = animate(generator, audio, 16000, face.crop, emotion, landmarks=face.landmarks)
        assert "emotion" in animation.parts
        return np.nanmean(measurer.landmarks(face_frames(animation, face, 256)), 0)

    neutral, happy, angry = shown("NEU"), shown("HAP"), shown("ANG")
    iod = np.linalg.norm(neutral[42:48].mean(0) - neutral[36:42].mean(0))
    lift = (neutral[[48, 54], 1] - happy[[48, 54], 1]).mean() / iod
    wider = ((happy[54, 0] - happy[48, 0]) - (neutral[54, 0] - neutral[48, 0])) / iod
    lower = (angry[19:25, 1] - neutral[19:25, 1]).mean() / iod
    assert lift > 0.08 and wider > 0.1 and lower > 0.04, (lift, wider, lower)
