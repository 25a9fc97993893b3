"""Evaluation metrics against hand-computed values, face identity / sharpness / re-detection on real
photos, the one metric table, the independent evaluator, a clip and a held-out photo measured and
reported, the promotion gate, lineage hashing and the retraining schedule."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from synthtext import EMOTIONS
from synthtext.data.geometry import EXPRESSION_POINTS
from synthtext.ops.errors import SynthTextError
from tests.conftest import REPO

# ---------------------------------------------------------------- metrics


def test_psnr_by_hand():
    from synthtext.evaluation.measures import psnr

    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a + 10) == pytest.approx(10 * np.log10(255 ** 2 / 100))  # mse 100 -> 28.13 dB
    b = a.copy()
    b[0, 0, 0] = 48  # one of 48 values off by 48: mse 48
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / 48))
    assert psnr(a, a) == 100.0


def test_ssim_by_hand():
    """Constant images: no variance, so SSIM is the luminance term (2 m1 m2 + C1) / (m1^2 + m2^2 + C1)."""
    from synthtext.evaluation.measures import ssim

    c1 = (0.01 * 255) ** 2
    a, b = np.full((8, 8, 3), 100, np.uint8), np.full((8, 8, 3), 110, np.uint8)
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1), rel=1e-6)
    noise = np.random.default_rng(0).integers(0, 255, (16, 16, 3)).astype(np.uint8)
    assert ssim(noise, noise) == pytest.approx(1.0)
    assert ssim(noise, 255 - noise) < 0


def _face(iod: float = 10.0) -> np.ndarray:
    """68 points with the eye centres ``iod`` apart and the inner lips 2 px apart."""
    points = np.zeros((68, 2))
    points[36:42] = (0.0, 0.0)
    points[42:48] = (iod, 0.0)
    points[[61, 62, 63], 1] = 20.0
    points[[67, 66, 65], 1] = 22.0
    return points


def test_landmark_distance_and_mouth_opening_by_hand():
    from synthtext.evaluation.measures import MOUTH, landmark_distance, mouth_opening

    real = np.stack([_face(10.0), _face(20.0)])
    moved = real + np.array([3.0, 4.0])  # every point 5 px away
    # frame 1: 5 / 10, frame 2: 5 / 20
    assert landmark_distance(moved, real) == pytest.approx((0.5 + 0.25) / 2)
    partly = real.copy()
    partly[:, MOUTH] += np.array([0.0, 2.0])
    assert landmark_distance(partly, real, MOUTH) == pytest.approx((0.2 + 0.1) / 2)
    assert landmark_distance(partly, real) == pytest.approx((0.2 + 0.1) / 2 * 20 / 68)
    np.testing.assert_allclose(mouth_opening(real), [2 / 10, 2 / 20])
    missing = real.copy()
    missing[0] = np.nan
    assert landmark_distance(missing + 1.0, real) == pytest.approx(np.sqrt(2) / 20)


def test_sync_finds_the_offset():
    from synthtext.evaluation.measures import best_offset_correlation, speech_envelope

    envelope = np.random.default_rng(1).random(80)
    late = np.r_[np.zeros(3), envelope[:-3]]  # the mouth moves 3 frames after the sound
    r, offset = best_offset_correlation(late, envelope)
    assert offset == 3 and r == pytest.approx(1.0)
    assert best_offset_correlation(np.r_[envelope[2:], np.zeros(2)], envelope)[1] == -2
    assert best_offset_correlation(np.ones(80), envelope) == (0.0, -5)  # a still mouth: no correlation
    audio = np.r_[np.zeros(640), np.full(640, 0.5), np.zeros(320)].astype(np.float32)
    np.testing.assert_allclose(speech_envelope(audio, 16000, 25, 3), [0.0, 0.5, 0.0])


def test_confusion_and_ground_truth_resampling(tmp_path):
    from synthtext.evaluation.measures import confusion, ground_truth_opening

    matrix = confusion(["ANG", "ANG", "SAD"], ["ANG", "HAP", "SAD"])
    assert matrix.sum() == 3 and matrix[0, 0] == 1 and matrix[0, 3] == 1 and matrix[5, 5] == 1
    (tmp_path / "c.json").write_text(json.dumps({"fps": 10.0, "per_frame": {"mouth_opening": [0, 1, 2, 3]}}))
    np.testing.assert_allclose(ground_truth_opening(tmp_path / "c.json", 3, 5.0), [0, 2, 3])
    assert ground_truth_opening(tmp_path / "none.json", 3, 5.0) is None


def test_the_mouth_box_follows_the_measured_size():
    """Landmarks measured at 64 px, frames at 128: the mouth box is scaled by 2 (not by 128 / 128)."""
    from synthtext.evaluation.measures import MOUTH, Measured, video_metrics

    points = np.tile(_face(20.0), (2, 1, 1)).astype(float)
    points[:, MOUTH] = np.array([[10.0, 30.0], [20.0, 34.0]] * 10)  # mouth: x 10..20, y 30..34 at 64 px
    measured = Measured(landmarks=points, features=np.zeros(2 * len(EXPRESSION_POINTS)), size=64)
    real = np.zeros((2, 128, 128, 3), np.uint8)
    inside, outside = real.copy(), real.copy()
    inside[:, 64:68, 24:36] = 200  # in the mouth at 128 px (x 20..40, y 60..68)
    outside[:, 30:34, 10:20] = 200  # where the mouth would be if the box were not scaled
    audio = np.zeros(16000 * 2 // 25, np.float32)
    assert video_metrics(inside, real, measured, measured, audio, 16000, 25)["psnr_mouth"] < 100
    assert video_metrics(outside, real, measured, measured, audio, 16000, 25)["psnr_mouth"] == 100.0


# ---------------------------------------------------------------- faces: identity, sharpness, re-detection


@pytest.fixture(scope="module")
def judge():
    from synthtext.evaluation.face_metrics import FaceJudge

    return FaceJudge()


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _grace_hopper() -> np.ndarray:
    """Another person: matplotlib's bundled portrait of Grace Hopper."""
    import matplotlib.cbook

    from synthtext.inference.infer import read_image

    return read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def test_identity_distance_on_real_photos(judge):
    """dlib's descriptors: a photo is 0 from itself, within 0.45 of a mildly shifted and scaled copy,
    and more than 0.6 from another person."""
    from synthtext.evaluation.face_metrics import IDENTITY_KEPT, SAME_PERSON, identity_distance

    photo = _astronaut()
    own = judge.describe(photo)
    assert own.shape == (128,)
    assert identity_distance(judge.describe(photo), own) == pytest.approx(0.0, abs=1e-6)
    height, width = photo.shape[:2]
    moved = cv2.warpAffine(photo, np.float32([[1.06, 0, -0.04 * width], [0, 1.06, 0.03 * height]]), (width, height),
                           borderMode=cv2.BORDER_REFLECT)
    assert identity_distance(judge.describe(moved), own) < IDENTITY_KEPT
    assert identity_distance(judge.describe(_grace_hopper()), own) > SAME_PERSON
    assert judge.describe(np.full((200, 200, 3), 128, np.uint8)) is None


def test_sharpness_ratio_of_a_blurred_copy(judge):
    from synthtext.evaluation.face_metrics import laplacian_variance, sharpness_ratio

    photo = _astronaut()
    reference = judge.reference(photo)
    assert reference.descriptor is not None and photo[reference.box].shape[0] < photo.shape[0]
    blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
    assert sharpness_ratio(photo[None], photo, reference.box) == pytest.approx(1.0)
    assert sharpness_ratio(blurred[None], photo, reference.box) < 0.5
    assert laplacian_variance(np.full((32, 32, 3), 7, np.uint8)) == 0.0


def test_redetection_with_and_without_a_face(judge):
    """A video that is the photo, and one that is grey: every sampled frame found / none; identity is
    measured only where a face was found, and the pooled summaries count a face-less frame as lost."""
    from synthtext.evaluation.table import Video, summarise

    photo = _astronaut()
    reference = judge.reference(photo)
    with_face = np.repeat(photo[None], 9, axis=0)
    without = np.full_like(with_face, 128)
    found = judge.measure(with_face, reference, 3)
    lost = judge.measure(without, reference, 3)
    assert found.frames.tolist() == [0, 4, 8] and found.found.all() and np.allclose(found.identity, 0, atol=1e-6)
    assert not lost.found.any() and np.isnan(lost.identity).all() and lost.sharpness == 0.0
    videos = [Video(values={"sharpness": m.sharpness}, per_frame={"identity": m.identity, "found": m.found},
                    predicted="NEU", hit=1.0) for m in (found, lost)]
    column = summarise(videos, "heldout")
    assert column["redetected"] == pytest.approx(0.5) and column["identity_kept"] == pytest.approx(0.5)
    assert column["identity_median"] == pytest.approx(0.0, abs=1e-6) and column["sharpness"] == pytest.approx(0.5)


# ---------------------------------------------------------------- the one metric table


def test_summaries_by_the_table():
    """own: the clips' own emotion and baselines only; mean: every video; median and share: pooled frames
    (NaN is a frame without a face); accuracy: answers against the conditions."""
    from synthtext.evaluation.table import Video, check_targets, summarise

    own = Video(values={"psnr": 20.0, "sync_r": 0.2}, per_frame={"identity": np.array([0.2, 0.5, np.nan])},
                predicted="ANG", hit=1.0, condition="ANG")
    other = Video(values={"psnr": 5.0, "sync_r": 0.4}, per_frame={"identity": np.array([0.3])}, predicted="ANG",
                  hit=0.0, condition="SAD", own=False)
    column = summarise([own, other])
    assert column["psnr"] == 20.0 and column["sync_r"] == pytest.approx(0.3)
    assert column["identity_median"] == pytest.approx(0.3) and column["identity_kept"] == pytest.approx(0.5)
    assert column["emotion_accuracy"] == 0.5 and "fid" not in column and "gt_opening_r" not in column
    assert "psnr" not in summarise([own, other], "heldout")  # a validation-only metric
    targets = check_targets({"generated": column, "static": {"psnr": 19.0}, "heldout_face": {"identity_kept": 0.96}})
    assert targets["generated"]["psnr"] == {"target": 19.0, "value": 20.0, "pass": True}
    assert targets["generated"]["sync_r"]["pass"] is False  # target 0.6
    assert targets["heldout_face"]["identity_kept"]["pass"] is True  # target 0.95


def test_a_new_table_entry_reaches_the_summary_the_gate_and_the_report(monkeypatch):
    from synthtext.evaluation import promote, report
    from synthtext.evaluation import table as metric_table
    from synthtext.evaluation.table import BOTH, METRICS, Metric, Video, check_targets, summarise

    entry = Metric("blink_gap", "seconds between blinks off the real ones", "lower", "mean",
                   BOTH, target=0.5)
    monkeypatch.setattr(metric_table, "METRICS", (*METRICS, entry))
    videos = [Video(values={"blink_gap": v}, per_frame={}, predicted="ANG", hit=1.0) for v in (0.2, 0.4)]
    column = summarise(videos)
    assert column["blink_gap"] == pytest.approx(0.3)
    assert promote.decide(column, {"blink_gap": 0.35}, None, ["blink_gap"]).promote  # lower is better
    refused = promote.decide(column, {"blink_gap": 0.1}, None, ["blink_gap"])
    assert not refused.promote and "blink_gap: candidate 0.3000 > static baseline 0.1000" in refused.reasons[0]
    table = {"generated": column, "static": {"blink_gap": 0.35}, "real": {}}
    page = report.metric_table(table, check_targets(table))
    assert "seconds between blinks off the real ones" in page and "&lt;= 0.5" in page and "class=pass" in page


# ---------------------------------------------------------------- a clip and a held-out photo, end to end


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny-profile motion generator (random weights, fixed seed) loaded as inference loads one."""
    import torch

    from synthtext.inference.infer import load_generator
    from synthtext.model import Generator
    from synthtext.model.config import profile
    from synthtext.model.io import save_model

    torch.manual_seed(0)
    cfg = profile("tiny")
    folder = tmp_path_factory.mktemp("models") / "generator"
    generator = Generator(cfg)
    save_model(folder, generator, cfg)
    return load_generator(folder)


def test_spread_clips_covers_people_and_emotions(aligned_corpus):
    from synthtext.data.clipfile import read_attrs
    from synthtext.evaluation.runs import spread_clips

    files = sorted(str(p) for p in (aligned_corpus[0] / "clips").glob("*.h5"))
    picked = spread_clips(files, 4)
    attrs = [read_attrs(f) for f in picked]
    assert len(picked) == 4 and len({str(a["actor"]) for a in attrs}) == 2
    assert len({a["emotion"] for a in attrs}) == 4
    assert spread_clips(files, None) == files


def test_a_clip_and_a_held_out_photo_are_measured_and_reported(aligned_corpus, tiny_model, judge, tmp_path):
    """The real per-clip and per-photo code with a tiny generator: every video measured, the static
    baseline is the reference itself, the photo is rendered at both sizes, the report shows both."""
    from synthtext.data.landmarks import make_backend
    from synthtext.evaluation.evaluator import EmotionEvaluator, Measurer
    from synthtext.evaluation.report import heldout_sheet, heldout_video, write_index
    from synthtext.evaluation.runs import (
        Instruments,
        evaluate_clip,
        evaluate_photo,
        generated_confusion,
        heldout_breakdown,
        heldout_columns,
        per_emotion_accuracy,
        validation_columns,
    )
    from synthtext.evaluation.table import check_targets

    files = sorted(str(p) for p in (aligned_corpus[0] / "clips").glob("*.h5"))
    features = np.random.default_rng(0).normal(size=(12, 2 * len(EXPRESSION_POINTS)))
    evaluator = EmotionEvaluator.fit(features, list(EMOTIONS) * 2)
    tools = Instruments(Measurer(make_backend("dlib"), 128), evaluator, judge, face_frames=2)
    clip = evaluate_clip(files[0], files[0], tiny_model.generator, tools, 1.0,
                                    keep=("real", "static", *EMOTIONS))
    assert set(clip.videos) == {"real", "static", *EMOTIONS} and clip.frames["ANG"].shape == (25, 128, 128, 3)
    columns = validation_columns([clip])
    assert columns["static"]["identity_median"] == pytest.approx(0.0, abs=1e-6)
    assert columns["static"]["sharpness"] == pytest.approx(1.0) and columns["static"]["redetected"] == 1.0
    assert {"psnr", "ssim", "identity_median", "sharpness", "redetected"} <= columns["generated"].keys()

    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    from synthtext.evaluation import outside
    from synthtext.evaluation.judge import OutsideJudge
    from synthtext.inference.life import Life

    tools.life, tools.outside = Life(), OutsideJudge()
    photo = evaluate_photo(path, [clip.speech], tiny_model, tools, size=128, cell=64,
                                      long_speech=clip.speech)
    assert [len(photo.videos[k]) for k in ("face", "photo")] == [6, 6]
    # the outside judge read each emotion's video at both sizes; the long speech was measured at both
    assert set(photo.judged["face"]) == set(EMOTIONS) and photo.judged["photo"]["HAP"].sum() == pytest.approx(1.0)
    assert {"blinks_per_min", "roll_std_deg", "mouth_sharpness"} <= photo.lively["photo"].keys()
    assert photo.strip["vowel"].shape[0] == 9
    judged = outside.summarise_judge({photo.name: photo.judged["face"]})
    assert judged["emotions"]["NEU"]["lift"] == 0.0 and judged["emotions"]["HAP"]["photos"] == 1
    checks = outside.check_judge(judged, {"present": False})
    assert "accuracy" not in checks and {"HAP_hits", "ANG_hits", "SAD_lift"} <= checks.keys()
    assert photo.peaks["HAP"].shape == photo.region.shape and photo.clips["SAD"].shape[1] == 64
    table = {**columns, **heldout_columns([photo])}
    assert table["heldout_photo"]["redetected"] > 0.5 and table["heldout_face"]["identity_median"] < 0.6
    heldout_sheet(photo.region, photo.peaks, tmp_path / "heldout_astronaut.png")
    heldout_video(photo.clips, photo.speech.audio, photo.speech.sample_rate, photo.speech.fps,
                  tmp_path / "heldout_astronaut.mp4")
    sheet = cv2.imread(str(tmp_path / "heldout_astronaut.png"))
    assert sheet.shape[:2] == (photo.region.shape[0], 7 * photo.region.shape[1])
    write_index(tmp_path, table, {"promoted": False, "reasons": ["x"]}, per_emotion_accuracy([clip]),
                generated_confusion([clip]), {}, check_targets(table),
                heldout_breakdown([photo]))
    page = (tmp_path / "index.html").read_text()
    assert "heldout_astronaut.png" in page and "held-out, pasted back" in page and "identity_median" in page


# ---------------------------------------------------------------- the independent evaluator


def test_evaluator_is_trained_on_real_clips_only(aligned_corpus):
    """Trained from real aligned clips (train speakers, each relative to the actor's neutral frame)
    through the same measuring path as generated videos; it recognises a held-out person's real clips
    (read relative to that person's neutral frame); it shares nothing with the GAN."""
    from flows.evaluate import train_evaluator
    from synthtext.data.clipfile import read_attrs
    from synthtext.data.landmarks import make_backend
    from synthtext.evaluation.evaluator import EmotionEvaluator, Measurer
    from synthtext.evaluation.measures import measure
    from synthtext.evaluation.runs import first_frame, neutral_features, reference_clips

    work, _ = aligned_corpus
    files = sorted(str(p) for p in (work / "clips").glob("*.h5"))
    actors = sorted({str(read_attrs(f)["actor"]) for f in files})
    train = [f for f in files if str(read_attrs(f)["actor"]) != actors[-1]]
    held = [f for f in files if f not in train]
    measurer = Measurer(make_backend("dlib"), 128)
    evaluator = train_evaluator.fn(train, measurer, 3.0, 0)
    assert isinstance(evaluator, EmotionEvaluator)
    assert evaluator.coef.shape == (len(EMOTIONS), 2 * len(EXPRESSION_POINTS))
    from synthtext.data.clipfile import read_clip

    references = reference_clips(held, "neutral")
    hits = []
    for path in held:
        clip = read_clip(path)
        neutral = neutral_features(first_frame(references[path]), measurer)
        relative = measure(clip.video[:75], measurer).features - neutral
        hits.append(evaluator.predict(relative)[0] == clip.attrs["emotion"])
    assert np.mean(hits) > 2 / len(EMOTIONS)  # chance is 1/6
    saved = work / "evaluator.json"
    evaluator.save(saved)
    again = EmotionEvaluator.load(saved)
    np.testing.assert_array_equal(again.coef, evaluator.coef)
    for module in ("synthtext/evaluation/runs.py", "flows/evaluate.py"):  # never the GAN's emotion discriminator
        assert "EmotionDiscriminator" not in (REPO / module).read_text() and "models/emotion" not in \
            (REPO / module).read_text()


# ---------------------------------------------------------------- the promotion gate


STATIC = {"sync_r": 0.0, "emotion_accuracy": 1 / 6, "m_lmd": 0.10}


def test_gate_promotes_a_better_candidate():
    from synthtext.evaluation.promote import decide

    champion = {"sync_r": 0.30, "emotion_accuracy": 0.40, "m_lmd": 0.08}
    better = {"sync_r": 0.35, "emotion_accuracy": 0.45, "m_lmd": 0.07}
    decision = decide(better, STATIC, champion, ["sync_r", "emotion_accuracy", "m_lmd"], margin=0.01)
    assert decision.promote, decision.reasons
    assert decide(better, STATIC, None, ["sync_r"]).promote  # first model: only the baseline counts


def test_gate_refuses_a_worse_candidate():
    from synthtext.evaluation.promote import decide

    champion = {"sync_r": 0.30, "emotion_accuracy": 0.40, "m_lmd": 0.08}
    worse = {"sync_r": 0.32, "emotion_accuracy": 0.35, "m_lmd": 0.07}
    decision = decide(worse, STATIC, champion, ["sync_r", "emotion_accuracy"])
    assert not decision.promote and any("emotion_accuracy" in r and "does not beat" in r for r in decision.reasons)
    # Better than the champion by less than the margin: refused.
    assert not decide({**champion, "sync_r": 0.305}, STATIC, champion, ["sync_r"], margin=0.01).promote
    # Worse than the static baseline: refused even without a champion.
    still = {"sync_r": -0.1, "emotion_accuracy": 0.5, "m_lmd": 0.2}
    decision = decide(still, STATIC, None, ["sync_r", "m_lmd"])
    assert not decision.promote and sum("static baseline" in r for r in decision.reasons) == 2
    assert decide(still, STATIC, None, ["sync_r"], against_static=False).promote
    with pytest.raises(SynthTextError, match="promote.metrics"):
        decide(worse, STATIC, None, ["bleu"])


def test_gate_refuses_ssim_below_static_and_identity_above_the_limit():
    from synthtext.evaluation.promote import decide

    static = {"sync_r": 0.0, "emotion_accuracy": 1 / 6, "ssim": 0.68}
    candidate = {"sync_r": 0.5, "emotion_accuracy": 0.5, "ssim": 0.60}
    decision = decide(candidate, static, None, ["sync_r"], static_floor=["ssim"])
    assert not decision.promote and "ssim: candidate 0.6000 < static baseline 0.6800 (higher is better)" in \
        decision.reasons
    sharp = {**candidate, "ssim": 0.70}
    assert decide(sharp, static, None, ["sync_r"], static_floor=["ssim"]).promote
    assert decide(candidate, static, None, ["sync_r"], against_static=False, static_floor=["ssim"]).promote
    far = {"heldout_face": {"identity_median": 0.30}, "heldout_photo": {"identity_median": 0.52}}
    decision = decide(sharp, static, None, ["sync_r"], static_floor=["ssim"], heldout=far, max_identity=0.45)
    assert not decision.promote
    assert "identity_median (held-out, pasted back): 0.5200 > limit 0.4500 (promote.max_identity; lower is better)" \
        in decision.reasons
    near = {"heldout_face": {"identity_median": 0.30}, "heldout_photo": {"identity_median": 0.40}}
    assert decide(sharp, static, None, ["sync_r"], heldout=near, max_identity=0.45).promote
    faceless = {"heldout_face": {"identity_median": float("nan")}}
    assert not decide(sharp, static, None, ["sync_r"], heldout=faceless, max_identity=0.45).promote
    unchecked = decide(sharp, static, None, ["sync_r"], heldout={}, max_identity=0.45)
    assert unchecked.promote and any("not checked" in r for r in unchecked.reasons)
    with pytest.raises(SynthTextError, match="promote.metrics"):
        decide(sharp, static, None, ["sync_r"], static_floor=["sharpnes"])


def test_expressive_videos_may_be_as_far_as_real_expressions_and_the_face_at_rest_is_held_to_the_limit():
    from synthtext.evaluation.promote import decide

    static = {"sync_r": 0.0}
    candidate = {"sync_r": 0.5}
    expressive = {"heldout_face": {"identity_median": 0.47}, "heldout_photo": {"identity_median": 0.44}}
    rest = {"heldout_face": 0.22, "heldout_photo": 0.24}
    gate = {"max_identity": 0.45, "real_identity": 0.44, "over_real": 0.05}
    decision = decide(candidate, static, None, ["sync_r"], heldout=expressive, at_rest=rest, **gate)
    assert decision.promote, decision.reasons
    assert "identity_median (held-out, aligned face): 0.4700 <= limit 0.4900 (the real clips' 0.4400 + " \
        "promote.identity_over_real; lower is better)" in decision.reasons
    assert "identity_median at rest (NEU) (held-out, aligned face): 0.2200 <= limit 0.4500 (promote.max_identity; " \
        "lower is better)" in decision.reasons
    # further than real expressions are from their neutral face: refused
    too_far = {**expressive, "heldout_face": {"identity_median": 0.50}}
    assert not decide(candidate, static, None, ["sync_r"], heldout=too_far, at_rest=rest, **gate).promote
    # a face that is someone else even at rest: refused
    assert not decide(candidate, static, None, ["sync_r"], heldout=expressive,
                      at_rest={**rest, "heldout_photo": 0.46}, **gate).promote
    # without the real clips' figure (no real column) every video is held to max_identity
    assert not decide(candidate, static, None, ["sync_r"], heldout=expressive, at_rest=rest,
                      **{**gate, "real_identity": None}).promote


# ---------------------------------------------------------------- lineage hashes and the schedule


def test_directory_hash_is_dvcs(tmp_path):
    """The directory hash is the one DVC writes to dvc.lock, so records and locks can be compared."""
    from synthtext.ops.lineage import dvc_hash

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub" / "b.bin").write_bytes(bytes(range(256)))
    env = {"PATH": str(Path(subprocess.sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    for cmd in (["git", "init", "-q"], [subprocess.sys.executable, "-m", "dvc", "init", "-q"],
                [subprocess.sys.executable, "-m", "dvc", "add", "-q", "data"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    recorded = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]["md5"]
    assert dvc_hash(data) == recorded
    (data / "a.txt").write_text("changed\n")
    assert dvc_hash(data) != recorded


def test_retrain_sees_what_changed():
    from synthtext.ops.retraining import changes

    now = {"raw_md5": "r1", "params_md5": "p1"}
    assert changes(now, {"raw_md5": "r1", "params_md5": "p1"}) == []
    assert changes(now, None) == ["there is no champion yet"]
    assert [c.split(" (")[0] for c in changes(now, {"raw_md5": "r0", "params_md5": "p0"})] == \
        ["raw data changed", "params changed"]


def test_params_hash_ignores_evaluation_and_scheduling():
    from synthtext.ops.lineage import pipeline_params_hash

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    base = pipeline_params_hash(params)
    assert pipeline_params_hash({**params, "retrain": {"cron": "1 1 * * *"}, "promote": {}}) == base
    assert pipeline_params_hash({**params, "train_gan": {**params["train_gan"], "steps": 1}}) != base


def test_the_deployment_schedule_is_what_params_say():
    from flows.retrain import DEPLOYMENT, retrain, schedule
    from synthtext.ops.config import RetrainParams, load_params

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    deployment = retrain.to_deployment(name=DEPLOYMENT, schedules=[schedule(load_params(REPO / "params.yaml").retrain)])
    made = deployment.schedules[0].schedule
    assert (made.cron, made.timezone) == (params["retrain"]["cron"], params["retrain"]["timezone"])
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    declared = next(d for d in project["deployments"] if d["name"] == DEPLOYMENT)
    assert declared["entrypoint"] == "flows/retrain.py:retrain"
    assert declared["schedules"][0] == {"cron": params["retrain"]["cron"], "timezone": params["retrain"]["timezone"]}
    other = schedule(RetrainParams(cron="15 2 * * *", timezone="Europe/Berlin"))
    assert (other.cron, other.timezone) == ("15 2 * * *", "Europe/Berlin")


# ---------------------------------------------------------------- SyncNet and FID with user-given weights


def test_syncnet_weights_load_and_score(tmp_path):
    """A weights file of the published form (a state_dict without BatchNorm batch counters) loads
    through the real loading code and scores a video; other files are refused with a clear error."""
    import torch

    from synthtext.evaluation.sync_metrics import VSHIFT, SyncNet, load_syncnet, lse

    torch.manual_seed(0)
    state = {k: v for k, v in SyncNet().state_dict().items() if not k.endswith("num_batches_tracked")}
    assert {"netcnnaud.0.weight", "netcnnlip.0.weight", "netfcaud.3.weight", "netfclip.3.weight"} <= state.keys()
    assert state["netcnnlip.0.weight"].shape == (96, 3, 5, 7, 7) and state["netcnnaud.18.weight"].shape == \
        (512, 256, 5, 4)
    weights = tmp_path / "syncnet_v2.model"
    torch.save(state, weights)
    net = load_syncnet(weights)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (30, 64, 64, 3)).astype(np.uint8)
    audio = rng.normal(0, 0.1, 16000 * 30 // 25).astype(np.float32)
    scores = lse(net, frames, audio, 16000)
    assert np.isfinite(scores["lse_d"]) and scores["lse_c"] >= 0 and abs(scores["lse_offset"]) <= VSHIFT
    assert lse(net, frames[:4], audio, 16000) == {}  # shorter than one 5-frame window
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(SynthTextError, match="not SyncNet weights"):
        load_syncnet(tmp_path / "other.pt")
    with pytest.raises(SynthTextError, match="not found"):
        load_syncnet(tmp_path / "missing.model")


def test_frechet_distance_by_hand():
    from synthtext.evaluation.sync_metrics import frechet_distance

    # 1-D: means 1 and 2, variances 2 and 2 -> (1 - 2)^2 + 2 + 2 - 2 sqrt(4) = 1
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[1.0], [3.0]])) == pytest.approx(1.0)
    features = np.random.default_rng(0).normal(size=(200, 4))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features, features + 1.0) == pytest.approx(4.0, rel=1e-6)  # shift 1 in 4 dims


def test_inception_torchscript_is_loaded_and_called(tmp_path):
    """The extractor is TorchScript, called as net(uint8 images, return_features=True)."""
    import torch

    from synthtext.evaluation.sync_metrics import inception_features, load_inception

    class Tiny(torch.nn.Module):
        def forward(self, images: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            x = images.float() / 255.0
            pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
            return pooled if return_features else pooled.sum(1, keepdim=True)

    path = tmp_path / "inception.pt"
    torch.jit.script(Tiny()).save(str(path))
    net = load_inception(path)
    frames = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3)).astype(np.uint8)
    assert inception_features(net, frames).shape == (5, 48)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(SynthTextError, match="TorchScript"):
        load_inception(tmp_path / "junk.pt")


def test_evaluator_is_not_swayed_by_points_that_training_never_moved():
    """Landmarks the training clips barely move (a jaw line on a still chin) must not outvote the
    points that carry the expression when a new face's detector noise moves them a little."""
    from synthtext.evaluation.evaluator import EmotionEvaluator

    rng = np.random.default_rng(0)
    labels = ["HAP", "SAD"] * 20
    signal = np.array([[1.0, 0.0] if e == "HAP" else [-1.0, 0.0] for e in labels]) + rng.normal(0, 0.2, (40, 2))
    still = rng.normal(0, 1e-4, (40, 10)) + np.array([[1e-4] if e == "HAP" else [-1e-4] for e in labels])
    evaluator = EmotionEvaluator.fit(np.hstack([signal, still]), labels)
    happy_face = np.hstack([[0.8, 0.0], rng.normal(0, 0.01, 10) - 0.01])  # noise of 1% of a face width
    assert evaluator.predict(happy_face) == ["HAP"]
    assert evaluator.predict(np.hstack([[-0.8, 0.0], np.full(10, 0.01)])) == ["SAD"]


def test_the_retrain_deployment_runs_one_at_a_time(prefect_server):
    """Through the Prefect API: the deployment as served has a concurrency limit of 1; with one of its
    runs running, a second one cannot start (it waits for the slot); prefect.yaml declares the same."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.states import Pending, Running

    from flows.retrain import DEPLOYMENT, deployment
    from synthtext.ops.config import load_params

    served = deployment(load_params(REPO / "params.yaml"))  # made outside the event loop (sync API)

    async def check():
        deployment_id = await served.apply()
        async with get_client() as client:
            stored = await client.read_deployment(deployment_id)
            assert stored.global_concurrency_limit is not None and stored.global_concurrency_limit.limit == 1
            first = await client.create_flow_run_from_deployment(deployment_id)
            second = await client.create_flow_run_from_deployment(deployment_id)
            # a worker proposes Pending, then Running: the slot is taken at Pending
            assert (await client.set_flow_run_state(first.id, Pending())).state.is_pending()
            assert (await client.set_flow_run_state(first.id, Running())).state.is_running()
            refused = await client.set_flow_run_state(second.id, Pending())
            assert not refused.state.is_pending() and refused.state.name == "AwaitingConcurrencySlot"
            await client.delete_flow_run(first.id)
            await client.delete_flow_run(second.id)

    asyncio.run(check())
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    declared = next(d for d in project["deployments"] if d["name"] == DEPLOYMENT)
    assert declared["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}


def test_gate_refuses_an_emotion_the_outside_judge_cannot_see():
    from synthtext.evaluation import promote

    table, static = {"sync_r": 0.8, "emotion_accuracy": 0.9}, {"sync_r": 0.0, "emotion_accuracy": 1 / 6}
    seen = promote.decide(table, static, None, ["sync_r", "emotion_accuracy"], outside={"heldout_face": 0.5})
    blind = promote.decide(table, static, None, ["sync_r", "emotion_accuracy"],
                           outside={"heldout_face": 0.5, "heldout_photo": 1 / 6})
    assert seen.promote and not blind.promote
    assert any("outside judge (held-out, pasted back): accuracy 0.1667 <= chance" in r for r in blind.reasons)
