"""Blinks, head motion and the mouth interior rendered at inference (synthtext.inference.life and .mouth)."""

import cv2
import numpy as np
import pytest

from synthtext.data.template import template
from synthtext.inference.life import HeadField, Lids, Life, blink_closure, life_track
from synthtext.inference.mouth import paint_mouth
from synthtext.ops.errors import SynthTextError

FPS, RATE = 25, 16000


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts of noise (4 a second) in phrases of 2 s with 0.5 s pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = (np.sin(2 * np.pi * 4 * t) > 0) * ((t % 2.5) < 2.0)
    return (rng.normal(size=t.size) * 0.2 * envelope).astype(np.float32)


def _blinks(closure: np.ndarray) -> list[tuple[int, int]]:
    shut = np.r_[0, (closure > 0.3).astype(int), 0]
    edges = np.diff(shut)
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def test_blinks_come_as_often_and_last_as_long_as_real_ones():
    audio = _speech(60.0)
    track = life_track(audio, RATE, 60 * FPS, FPS, seed=0, life=Life())
    blinks = _blinks(track[:, 0])
    assert 10 <= len(blinks) <= 40  # a minute of speech
    lengths = [(end - start) / FPS * 1000 for start, end in blinks]
    assert all(80 <= ms <= 400 for ms in lengths), lengths
    # seeded: the same inputs give the same track, another seed another one
    assert np.array_equal(track, life_track(audio, RATE, 60 * FPS, FPS, seed=0, life=Life()))
    assert not np.array_equal(track, life_track(audio, RATE, 60 * FPS, FPS, seed=1, life=Life()))


def test_a_blink_closes_fast_and_opens_slowly():
    closure = blink_closure(0.24, FPS)
    peak = int(np.argmax(closure))
    assert closure.max() == pytest.approx(1.0, abs=0.05) and peak < len(closure) - 1 - peak


def test_the_head_moves_within_what_real_talkers_do_and_does_not_shake():
    audio = _speech(30.0)
    track = life_track(audio, RATE, 30 * FPS, FPS, seed=0, life=Life(blinks=False))
    roll, yaw, pitch = track[:, 1], track[:, 2], track[:, 3]
    assert 0.5 <= roll.std() <= 3.0 and yaw.std() > 0.5 and pitch.std() > 0.5
    assert np.abs(np.diff(track[:, 1:], 2, axis=0)).max() < 0.2  # degrees a frame^2: smooth
    assert not track[:, 0].any()  # no blinks asked
    half = life_track(audio, RATE, 30 * FPS, FPS, seed=0, life=Life(blinks=False, head_motion=0.5))
    assert np.allclose(half[:, 1:], track[:, 1:] / 2, atol=1e-5)
    assert not life_track(audio, RATE, 30 * FPS, FPS, seed=0, life=Life(False, 0.0)).any()


def test_head_motion_outside_0_to_1_is_refused():
    with pytest.raises(SynthTextError, match="head motion must be 0..1"):
        Life(head_motion=1.5)


def test_the_head_moves_the_face_and_leaves_the_crop_edges_still():
    side = 128
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    field = HeadField(xs, ys, template(side), side)
    dx, dy = field.displacement(2.0, 2.0, 2.0)
    nose = template(side)[30].round().astype(int)
    assert np.hypot(dx, dy)[nose[1], nose[0]] > 1.0  # pixels at 128 px for 2 degrees
    edge = np.hypot(dx, dy)
    assert max(edge[0].max(), edge[-1].max(), edge[:, 0].max(), edge[:, -1].max()) == 0.0
    # yaw moves the nose further than the cheek beside it: depth, not a flat shift
    cheek = template(side)[2].round().astype(int) + (10, 0)
    dx, _ = field.displacement(0.0, 3.0, 0.0)
    assert dx[nose[1], nose[0]] > dx[cheek[1], cheek[0]] > 0


def test_a_blink_covers_the_eye_with_a_lit_lid_and_leaves_a_glasses_rim_still():
    side = 256
    points = template(side)
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    skin = np.array([200, 150, 120], np.float32)
    image = np.empty((side, side, 3), np.float32)
    image[:] = skin * 0.8  # the socket around the eyes in shadow, the cheeks lit
    image[int(points[41, 1] + 12):] = skin
    for eye in (points[36:42], points[42:48]):
        cv2.fillPoly(image, [eye.round().astype(np.int32)], (40, 30, 30))  # the open eye: dark
    eye = points[36:42].mean(0).round().astype(int)
    height = float(points[[40, 41], 1].mean() - points[[37, 38], 1].mean())
    rim = int(round(points[[37, 38], 1].mean() - 2.2 * height))
    image[rim] = 20  # a glasses rim above the eye
    image = image.astype(np.uint8)
    frame = image.astype(np.float32)
    lids = Lids(image, points)
    lids.draw(frame, xs, ys, 1.0)
    assert frame[eye[1], eye[0]].mean() > 130  # the eye's centre is lid skin, lit
    assert np.array_equal(frame[rim], image[rim].astype(np.float32))  # the rim did not move
    below = int(points[41, 1] + 0.5 * height + 3)
    assert np.array_equal(frame[below:], image[below:].astype(np.float32))  # under the lower lid nothing moves
    half = image.astype(np.float32)
    lids.draw(half, xs, ys, 0.5)
    lower = (eye[0], int(round(points[41, 1] - 1)))
    assert half[lower[1], lower[0]].mean() < 60  # half shut: the lower part of the eye still shows
    # ... the upper part is lid (its lash line, dark, sits just above the half-shut margin)
    assert half[eye[1] - int(round(0.4 * height)), eye[0]].mean() > 100
    untouched = image.astype(np.float32)
    lids.draw(untouched, xs, ys, 0.0)
    assert np.array_equal(untouched, image.astype(np.float32))


def test_the_open_mouth_is_dark_red_with_teeth_under_the_upper_lip():
    side = 256
    points = template(side).copy()
    iod = np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))
    points[65:68, 1] += 0.3 * iod
    points[55:60, 1] += 0.3 * iod
    image = np.full((side, side, 3), 170, np.uint8)
    paint_mouth(image, points, 0.3 * iod)
    inside = np.zeros((side, side), np.uint8)
    cv2.fillPoly(inside, [points[60:68].round().astype(np.int32)], 1)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[inside > 0].astype(float)
    lightness, red = lab[:, 0] * 100 / 255, lab[:, 1] - 128
    assert np.median(lightness) < 50 and 5 < np.median(red) < 30
    assert (lightness > 70).mean() > 0.1  # the teeth
    top = image[int(points[62, 1] + 2), int(points[62, 0])]
    assert top.mean() > 150  # right under the upper lip: a tooth
    closed = np.full((side, side, 3), 170, np.uint8)
    paint_mouth(closed, template(side), 0.0)
    assert (closed == 170).all()


def test_liveliness_targets_include_the_open_mouth():
    from synthtext.evaluation.outside import check_liveliness

    measures = {"blinks_per_min": 20.0, "blink_ms": [160.0, 200.0], "roll_std_deg": 1.0, "yaw_std_deg": 1.0,
                "pitch_std_deg": 1.0, "jitter": 0.005, "open_mouth_frames": 12, "mouth_sharpness": 1.5,
                "teeth_share": 0.3, "mouth_L": 42.0, "mouth_a": 18.0}
    checks = check_liveliness(measures, {"jitter": {"median": 0.008}})
    assert all(checks[k]["pass"] for k in ("blinks_per_min", "blink_ms", "roll_std_deg", "jitter", "teeth_share",
                                           "mouth_L", "mouth_a"))
    assert not checks["mouth_sharpness"]["pass"]  # 1.5 < 2
    assert "mouth_L" not in check_liveliness({**measures, "open_mouth_frames": 0}, None)


def test_only_a_photo_that_shows_its_teeth_keeps_its_own_mouth():
    from synthtext.inference.render import shows_teeth

    side = 256
    points = template(side).astype(np.float64)
    iod = float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))
    opened = points.copy()
    opened[[65, 66, 67], 1] += 0.3 * iod  # the lower inner lip down: an open mouth
    opened[[55, 56, 57], 1] += 0.3 * iod
    face = np.full((side, side, 3), (180, 135, 120), np.uint8)
    dark, white = face.copy(), face.copy()
    cv2.fillPoly(dark, [opened[60:68].round().astype(np.int32)], (60, 20, 25))
    cv2.fillPoly(white, [opened[60:68].round().astype(np.int32)], (240, 235, 225))
    assert not shows_teeth(face, points)  # closed: drawn
    assert not shows_teeth(dark, opened)  # open, dark inside: drawn over (GRID lrwp9a)
    assert shows_teeth(white, opened)  # teeth: kept


@pytest.mark.parametrize("photo", ["assets/heldout/grace_hopper.jpg", "../shared/photos/grid_lrwp9a.png"])
def test_a_shut_lid_reads_as_a_blink_to_the_landmark_fit(photo):
    """dlib's 68-point fit, the one the liveliness measures use, reads the drawn shut lid as a closed eye:
    its eye aspect ratio drops by at least the 30% that counts as a blink (a pale lid without a lash line
    read as an open eye)."""
    from pathlib import Path

    from PIL import Image

    from synthtext.evaluation import liveliness

    path = Path(__file__).resolve().parents[1] / photo
    if not path.exists():
        pytest.skip(f"{photo} is not here")
    image = np.asarray(Image.open(path).convert("RGB"))
    scale = 400 / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    backend = liveliness.default_backend()
    points = liveliness.frame_landmarks([image], backend)[0]
    height, width = image.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    shut = image.astype(np.float32)
    Lids(image, points).draw(shut, xs, ys, 1.0)
    shut = np.clip(shut + 0.5, 0, 255).astype(np.uint8)
    ear = liveliness.eye_aspect_ratio(liveliness.frame_landmarks([image, shut], backend))
    assert ear[1] <= 0.7 * ear[0], ear
