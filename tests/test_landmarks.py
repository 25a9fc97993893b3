"""Both landmark backends through the one interface, on a real photo."""

import numpy as np
import pytest
import torch

from synthtext.data.landmarks import FaceAlignmentBackend, make_backend, predictor_path
from synthtext.ops.errors import SynthTextError


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.astronaut()


def test_dlib_predictor_is_found_offline():
    assert predictor_path().stat().st_size > 50_000_000


def test_dlib_backend_on_a_real_face(photo, dlib_backend):
    boxes = dlib_backend.detect(photo)
    assert len(boxes) == 1
    left, top, right, bottom = boxes[0]
    points = dlib_backend.landmarks(photo, boxes[0])
    assert points.shape == (68, 2)
    # the eyes sit above the mouth, inside the detected box
    assert points[36:48, 1].mean() < points[48:68, 1].mean()
    assert left - 10 < points[:, 0].mean() < right + 10 and top - 10 < points[:, 1].mean() < bottom + 10


def test_unknown_backend():
    with pytest.raises(SynthTextError, match="unknown landmark backend"):
        make_backend("mediapipe")


@pytest.fixture
def fan_weights(tmp_path, monkeypatch):
    """A FAN state_dict of the real architecture (random weights), placed where face-alignment looks."""
    from face_alignment.models import FAN

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), checkpoints / "2DFAN4-11f355bf06.pth.tar")
    return checkpoints


def test_face_alignment_backend_loads_placed_weights(photo, fan_weights):
    backend = make_backend("face_alignment")
    assert isinstance(backend, FaceAlignmentBackend) and backend.name == "face_alignment"
    boxes = backend.detect(photo)
    assert len(boxes) == 1
    points = backend.landmarks(photo, boxes[0])
    assert points.shape == (68, 2) and np.isfinite(points).all()
    # FAN's heatmap decoding maps back into the face crop whatever the weights are
    left, top, right, bottom = boxes[0]
    width = right - left
    assert (points[:, 0] > left - width).all() and (points[:, 0] < right + width).all()
