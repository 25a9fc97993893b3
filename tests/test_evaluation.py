"""Evaluation metrics against hand-computed values, the independent evaluator, the promotion gate,
lineage hashing and the retraining schedule."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from synthtext import EMOTIONS
from synthtext.errors import SynthTextError
from tests.conftest import REPO

# ---------------------------------------------------------------- metrics


def test_psnr_by_hand():
    from synthtext.evaluation import psnr

    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a + 10) == pytest.approx(10 * np.log10(255 ** 2 / 100))  # mse 100 -> 28.13 dB
    b = a.copy()
    b[0, 0, 0] = 48  # one of 48 values off by 48: mse 48
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / 48))
    assert psnr(a, a) == 100.0


def test_ssim_by_hand():
    """Constant images: no variance, so SSIM is the luminance term (2 m1 m2 + C1) / (m1^2 + m2^2 + C1)."""
    from synthtext.evaluation import ssim

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
    from synthtext.evaluation import MOUTH, landmark_distance, mouth_opening

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
    from synthtext.evaluation import best_offset_correlation, speech_envelope

    envelope = np.random.default_rng(1).random(80)
    late = np.r_[np.zeros(3), envelope[:-3]]  # the mouth moves 3 frames after the sound
    r, offset = best_offset_correlation(late, envelope)
    assert offset == 3 and r == pytest.approx(1.0)
    assert best_offset_correlation(np.r_[envelope[2:], np.zeros(2)], envelope)[1] == -2
    assert best_offset_correlation(np.ones(80), envelope) == (0.0, -5)  # a still mouth: no correlation
    audio = np.r_[np.zeros(640), np.full(640, 0.5), np.zeros(320)].astype(np.float32)
    np.testing.assert_allclose(speech_envelope(audio, 16000, 25, 3), [0.0, 0.5, 0.0])


def test_confusion_and_ground_truth_resampling(tmp_path):
    from synthtext.evaluation import confusion, ground_truth_opening

    matrix = confusion(["ANG", "ANG", "SAD"], ["ANG", "HAP", "SAD"])
    assert matrix.sum() == 3 and matrix[0, 0] == 1 and matrix[0, 3] == 1 and matrix[5, 5] == 1
    (tmp_path / "c.json").write_text(json.dumps({"fps": 10.0, "per_frame": {"mouth_opening": [0, 1, 2, 3]}}))
    np.testing.assert_allclose(ground_truth_opening(tmp_path / "c.json", 3, 5.0), [0, 2, 3])
    assert ground_truth_opening(tmp_path / "none.json", 3, 5.0) is None


# ---------------------------------------------------------------- the independent evaluator


def test_evaluator_is_trained_on_real_clips_only(aligned_corpus):
    """Trained from real aligned clips (train speakers) through the same measuring path as generated
    videos; it recognises held-out speakers' real clips; it shares nothing with the GAN."""
    from flows.evaluate import train_evaluator
    from synthtext.clipfile import read_attrs
    from synthtext.evaluation import EmotionEvaluator, Measurer, measure
    from synthtext.infer import resize_frames
    from synthtext.landmarks import make_backend

    work, _ = aligned_corpus
    files = sorted(str(p) for p in (work / "clips").glob("*.h5"))
    actors = sorted({str(read_attrs(f)["actor"]) for f in files})
    train = [f for f in files if str(read_attrs(f)["actor"]) != actors[-1]]
    held = [f for f in files if f not in train]
    measurer = Measurer(make_backend("dlib"), 128)
    evaluator = train_evaluator.fn(train, measurer, 64, 3.0, 0)
    assert isinstance(evaluator, EmotionEvaluator) and evaluator.coef.shape == (len(EMOTIONS), 136)
    from synthtext.clipfile import read_clip

    hits = []
    for path in held:
        clip = read_clip(path)
        hits.append(evaluator.predict(measure(resize_frames(clip.video[:75], 64), measurer).features)[0]
                    == clip.attrs["emotion"])
    assert np.mean(hits) > 2 / len(EMOTIONS)  # chance is 1/6
    saved = work / "evaluator.json"
    evaluator.save(saved)
    again = EmotionEvaluator.load(saved)
    np.testing.assert_array_equal(again.coef, evaluator.coef)
    for module in ("synthtext/evaluation.py", "flows/evaluate.py"):  # never the GAN's emotion discriminator
        assert "EmotionDiscriminator" not in (REPO / module).read_text() and "models/emotion" not in \
            (REPO / module).read_text()


# ---------------------------------------------------------------- the promotion gate


STATIC = {"sync_r": 0.0, "emotion_accuracy": 1 / 6, "m_lmd": 0.10}


def test_gate_promotes_a_better_candidate():
    from synthtext.promote import decide

    champion = {"sync_r": 0.30, "emotion_accuracy": 0.40, "m_lmd": 0.08}
    better = {"sync_r": 0.35, "emotion_accuracy": 0.45, "m_lmd": 0.07}
    decision = decide(better, STATIC, champion, ["sync_r", "emotion_accuracy", "m_lmd"], margin=0.01)
    assert decision.promote, decision.reasons
    assert decide(better, STATIC, None, ["sync_r"]).promote  # first model: only the baseline counts


def test_gate_refuses_a_worse_candidate():
    from synthtext.promote import decide

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


# ---------------------------------------------------------------- lineage hashes and the schedule


def test_directory_hash_is_dvcs(tmp_path):
    """The directory hash is the one DVC writes to dvc.lock, so records and locks can be compared."""
    from synthtext.lineage import dvc_hash

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
    from flows.retrain import changes

    now = {"raw_md5": "r1", "params_md5": "p1"}
    assert changes(now, {"raw_md5": "r1", "params_md5": "p1"}) == []
    assert changes(now, None) == ["there is no champion yet"]
    assert [c.split(" (")[0] for c in changes(now, {"raw_md5": "r0", "params_md5": "p0"})] == \
        ["raw data changed", "params changed"]


def test_params_hash_ignores_evaluation_and_scheduling():
    from synthtext.lineage import pipeline_params_hash

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    base = pipeline_params_hash(params)
    assert pipeline_params_hash({**params, "retrain": {"cron": "1 1 * * *"}, "promote": {}}) == base
    assert pipeline_params_hash({**params, "train_gan": {**params["train_gan"], "steps": 1}}) != base


def test_the_deployment_schedule_is_what_params_say():
    from flows.retrain import DEPLOYMENT, retrain, schedule

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    deployment = retrain.to_deployment(name=DEPLOYMENT, schedules=[schedule(params)])
    made = deployment.schedules[0].schedule
    assert (made.cron, made.timezone) == (params["retrain"]["cron"], params["retrain"]["timezone"])
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    declared = next(d for d in project["deployments"] if d["name"] == DEPLOYMENT)
    assert declared["entrypoint"] == "flows/retrain.py:retrain"
    assert declared["schedules"][0] == {"cron": params["retrain"]["cron"], "timezone": params["retrain"]["timezone"]}
    other = schedule({"retrain": {"cron": "15 2 * * *", "timezone": "Europe/Berlin"}})
    assert (other.cron, other.timezone) == ("15 2 * * *", "Europe/Berlin")


# ---------------------------------------------------------------- SyncNet and FID with user-given weights


def test_syncnet_weights_load_and_score(tmp_path):
    """A weights file of the published form (a state_dict without BatchNorm batch counters) loads
    through the real loading code and scores a video; other files are refused with a clear error."""
    import torch

    from synthtext.sync_metrics import VSHIFT, SyncNet, load_syncnet, lse

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
    from synthtext.sync_metrics import frechet_distance

    # 1-D: means 1 and 2, variances 2 and 2 -> (1 - 2)^2 + 2 + 2 - 2 sqrt(4) = 1
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[1.0], [3.0]])) == pytest.approx(1.0)
    features = np.random.default_rng(0).normal(size=(200, 4))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features, features + 1.0) == pytest.approx(4.0, rel=1e-6)  # shift 1 in 4 dims


def test_inception_torchscript_is_loaded_and_called(tmp_path):
    """The extractor is TorchScript, called as net(uint8 images, return_features=True)."""
    import torch

    from synthtext.sync_metrics import inception_features, load_inception

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
