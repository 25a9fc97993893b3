"""Liveliness measures: on a photo moved by known amounts, and on the real clips of ../shared/realdata."""

import cv2
import numpy as np
import pytest
from skimage import data

from synthtext.data.media import write_video
from synthtext.evaluation import liveliness
from tests.conftest import REALDATA, needs_realdata

FPS = 25.0


@pytest.fixture(scope="module")
def astronaut():
    """skimage's astronaut photo (a frontal smiling face, 512x512) and its 68 points."""
    image = data.astronaut()
    points = liveliness.frame_landmarks([image], liveliness.default_backend())[0]
    assert not np.isnan(points).any()
    return image, points


def rotated(image: np.ndarray, centre: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """The image turned about ``centre`` by each angle in turn (counter-clockwise, as OpenCV's)."""
    height, width = image.shape[:2]
    return np.stack([cv2.warpAffine(image, cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(a), 1),
                                    (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                     for a in degrees])


def test_find_blinks_on_a_known_eye_aspect_ratio():
    ear = np.full(125, 0.30)
    ear[20:25] = [0.24, 0.12, 0.10, 0.14, 0.24]  # a blink: 3 frames deep, 5 below the extent line
    ear[45] = 0.10  # one deep frame: noise, not a blink
    ear[60:70] = [0.20, 0.10, 0.10, 0.22, 0.24, 0.22, 0.10, 0.10, 0.12, 0.20]  # a double blink
    ear[115:] = 0.10  # the lids close as the video ends: a blink of unknown length
    ear[40] = np.nan  # a frame without a face changes nothing
    blinks = liveliness.find_blinks(ear, FPS)
    assert blinks == [(20, 25), (60, 64), (64, 70), (115, 125)]
    assert liveliness.blink_durations_ms(blinks, len(ear), FPS) == [200.0, 160.0, 240.0]


def test_still_photo_has_no_blinks_and_no_motion(astronaut):
    image, _ = astronaut
    noise = np.random.default_rng(0).normal(0, 2, (40, *image.shape))  # sensor noise: landmarks wobble a little
    frames = np.clip(image + noise, 0, 255).astype(np.uint8)
    result = liveliness.measure_video(frames, FPS)
    assert result["frames"] == 40 and result["seconds"] == 1.6 and result["face_frames"] == 40
    assert result["blinks"] == 0 and result["blinks_per_min"] == 0 and result["blink_ms_median"] is None
    assert result["roll_std_deg"] < 0.5 and result["yaw_std_deg"] < 1 and result["pitch_std_deg"] < 1
    assert result["jitter"] < 0.02
    assert result["open_mouth_frames"] == 0 and result["mouth_sharpness"] is None  # her smile is barely open


def test_the_speaker_is_followed_not_a_larger_face_like_badge(astronaut):
    image, points = astronaut
    noise = np.random.default_rng(1).normal(0, 2, (6, *image.shape))
    frames = np.clip(image + noise, 0, 255).astype(np.uint8)
    backend = liveliness.default_backend()
    face_width = np.ptp(points[:, 0])
    # the detector also finds the badge on her suit on some of these frames, as a box larger than the face
    assert any(len(backend.detect(frame)) == 2 for frame in frames)
    found = liveliness.frame_landmarks(frames, backend)
    assert np.abs(found[:, 30] - points[30]).max() < 0.05 * face_width  # every frame: her nose tip


def test_in_plane_rotation_is_read_as_roll(astronaut, tmp_path):
    image, points = astronaut
    angles = 2 * np.sin(2 * np.pi * np.arange(50) / 25)  # two whole periods: std = 2 / sqrt(2)
    video = tmp_path / "nodding.mp4"
    write_video(video, rotated(image, liveliness.eye_centres(points).mean(0), angles), FPS)
    result = liveliness.measure_file(video)  # through H.264 and the file's own frame rate
    assert result["frames"] == 50 and result["seconds"] == pytest.approx(2.0)
    assert result["roll_std_deg"] == pytest.approx(np.std(angles), rel=0.2)
    assert result["yaw_std_deg"] < 1 and result["pitch_std_deg"] < 1.5  # turning in the image plane only


def test_a_blurred_mouth_is_less_sharp(astronaut):
    image, points = astronaut
    x0, y0 = np.floor(points[48:60].min(0)).astype(int) - 3
    x1, y1 = np.ceil(points[48:60].max(0)).astype(int) + 3
    blurred = image.copy()
    blurred[y0:y1, x0:x1] = cv2.GaussianBlur(image, (0, 0), 2.0)[y0:y1, x0:x1]
    sharp, soft = liveliness.mouth_measures(image, points), liveliness.mouth_measures(blurred, points)
    assert soft["sharpness"] < 0.5 * sharp["sharpness"]
    assert soft["L"] == pytest.approx(sharp["L"], abs=10)  # blur keeps the colour


@pytest.fixture(scope="module")
def real_results():
    clips = [*sorted((REALDATA / "crema-d").glob("*.flv")), *sorted((REALDATA / "grid").glob("*.mpg"))]
    return {path.name: liveliness.measure_file(path) for path in clips}


@needs_realdata
def test_real_clips_blink_move_and_show_a_dark_red_mouth(real_results):
    assert len(real_results) == 8
    seconds = sum(r["seconds"] for r in real_results.values())
    blinks = sum(r["blinks"] for r in real_results.values())
    assert 5 <= blinks / seconds * 60 <= 45, blinks  # people blink about 10-30 times a minute
    durations = [ms for r in real_results.values() for ms in r["blink_ms"]]
    assert durations and all(60 <= ms <= 600 for ms in durations), durations
    mouths = [r for r in real_results.values() if r["open_mouth_frames"]]
    assert len(mouths) >= 2
    for result in real_results.values():
        assert result["face_frames"] == result["frames"]
        assert 0.05 < result["roll_std_deg"] < 3 and 0.2 < result["yaw_std_deg"] < 5
        assert 0.2 < result["pitch_std_deg"] < 5 and 0.001 < result["jitter"] < 0.05
    for result in mouths:
        assert result["mouth_L"] <= 55 and result["mouth_a"] > 0 and result["mouth_sharpness"] > 1
        assert 0 <= result["teeth_share"] < 0.5


@needs_realdata
def test_reference_clips_counts_each_recording_once(real_results):
    clips = liveliness.reference_clips(REALDATA)
    names = [path.name for path in clips]
    assert len(clips) == 11 and len(set(names)) == 11  # expressions/ repeats three crema-d/ files
    summary = liveliness.summarize(list(real_results.values()))
    assert summary["roll_std_deg"]["n"] == 8
    assert summary["roll_std_deg"]["min"] <= summary["roll_std_deg"]["median"] <= summary["roll_std_deg"]["max"]
    assert summary["mouth_L"]["n"] == sum(r["mouth_L"] is not None for r in real_results.values())
