"""synthtext.data.ert reads dlib's model file and gives dlib's very landmarks (it replaces dlib's evaluation)."""

import cv2
import dlib
import numpy as np
import pytest

from synthtext.data import ert
from synthtext.data.landmarks import predictor_path
from synthtext.ops.errors import SynthTextError
from tests.conftest import REALDATA, needs_realdata


@pytest.fixture(scope="module")
def model():
    return ert.read_model(predictor_path())


@pytest.fixture(scope="module")
def dlib_predictor():
    return dlib.shape_predictor(str(predictor_path()))


def dlib_points(predictor, image, box):
    shape = predictor(image, dlib.rectangle(*box))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def test_the_68_point_model_is_read_whole(model):
    assert model.num_parts == 68
    assert model.leaves.shape == (15, 500, 16, 136) and model.leaves.dtype == np.float32
    assert model.splits.shape == (15, 500, 15, 2) and model.thresholds.shape == (15, 500, 15)
    assert model.anchors.shape == (15, 500) and model.deltas.shape == (15, 500, 2)
    # the mean shape fills the face box's unit square (the chin just below it); the leaves are small updates
    assert 0 < model.initial.min() and 1 < model.initial.max() < 1.2
    assert 0 < np.abs(model.leaves).max() < 0.5


def test_the_same_points_as_dlib_on_a_photo_and_boxes_off_every_edge(model, dlib_predictor):
    from skimage import data

    rng = np.random.default_rng(0)
    for image in (data.astronaut(), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)):
        height, width = image.shape[:2]
        boxes = [(175, 60, 290, 175)]
        for _ in range(40):
            size = int(rng.integers(20, 400))
            x, y = int(rng.integers(-size // 2, width - size // 2)), int(rng.integers(-size // 2, height - size // 2))
            boxes.append((x, y, x + size, y + size))
        for box in boxes:
            np.testing.assert_array_equal(ert.predict(model, image, box), dlib_points(dlib_predictor, image, box))


@needs_realdata
@pytest.mark.parametrize("clip", ["crema-d/1001_DFA_ANG_XX.flv", "grid/bbaf2n.mpg"])
def test_the_same_points_as_dlib_on_every_frame_of_a_real_clip(model, dlib_predictor, dlib_backend, clip):
    capture = cv2.VideoCapture(str(REALDATA / clip))
    frames = []
    while (read := capture.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    assert len(frames) > 30
    box = tuple(int(round(v)) for v in dlib_backend.detect(frames[0])[0])
    for frame in frames:
        np.testing.assert_array_equal(ert.predict(model, frame, box), dlib_points(dlib_predictor, frame, box))


def test_the_backend_uses_it(dlib_backend, model):
    from skimage import data

    photo = data.astronaut()
    box = dlib_backend.detect(photo)[0]
    np.testing.assert_array_equal(dlib_backend.landmarks(photo, box),
                                  ert.predict(model, photo, tuple(int(round(v)) for v in box)))


@pytest.mark.parametrize("content, message", [
    (None, "No such file"),
    ("folder", "not a file"),
    (b"", "no version 1 header"),
    (b"\0" * 64, "not dlib's serialized numbers"),
    (b"\x01\x01" + b"\x88" * 64, "not a dlib shape predictor"),
    ("half", "ends early"),
])
def test_a_bad_model_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "model.dat"
    if content == "folder":
        path.mkdir()
        content = None
    if content == "half":
        with open(predictor_path(), "rb") as real:
            content = real.read(20_000_000)
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SynthTextError, match=message):
        ert.read_model(path)


def test_an_image_that_is_not_uint8_rgb_or_grey(model):
    with pytest.raises(SynthTextError, match="RGB or grey uint8"):
        ert.predict(model, np.zeros((10, 10, 3), np.float32), (0, 0, 5, 5))
    with pytest.raises(SynthTextError, match="RGB or grey uint8"):
        ert.predict(model, np.zeros((10, 10, 4), np.uint8), (0, 0, 5, 5))


def dlib_ints(*values: int) -> bytes:
    """dlib's serialization of integers: a size byte (0x80 if negative), then the magnitude's bytes."""
    out = b""
    for value in values:
        magnitude = abs(value).to_bytes(8, "little").rstrip(b"\0") or b"\0"  # dlib writes 0 as one byte 0
        out += bytes([len(magnitude) | (0x80 if value < 0 else 0)]) + magnitude
    return out


def test_a_model_without_trees_is_refused(tmp_path):
    # version 1, a column of 2 floats (0.5 = 1 * 2**-1), one cascade of no trees
    path = tmp_path / "empty.dat"
    path.write_bytes(dlib_ints(1, -2, -1, 1, -1, 1, -1, 1, 0))
    with pytest.raises(SynthTextError, match="no trees"):
        ert.read_model(path)
