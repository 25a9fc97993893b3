"""Networks and training: shapes, the gradient penalty, learning, resume, DDP, VGG19 loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthtext.data.features import to_tensor_frames
from synthtext.model import PROFILES, EmotionDiscriminator, FrameDiscriminator, Generator, gradient_penalty, profile
from synthtext.model import io as model_io
from synthtext.model.train import loop
from synthtext.model.train.data import ClipWindows
from synthtext.model.train.losses import VGG19Features, reconstruction_loss, vgg19_features
from synthtext.ops.config import TrainParams
from synthtext.ops.errors import SynthTextError

TINY = {"profile": "tiny", "batch": 2, "workers": 0, "log_every": 1, "image_every": 1000, "checkpoint_every": 5}


@pytest.mark.parametrize("name", list(PROFILES))
def test_forward_backward_shapes(name):
    cfg = profile(name)
    batch = 1 if name == "paper" else 2
    gen, critic, emo = Generator(cfg), FrameDiscriminator(cfg), EmotionDiscriminator(cfg)
    mels = torch.randn(batch, cfg.frames, cfg.n_mels, cfg.mel_context)
    reference = torch.rand(batch, 3, cfg.image_size, cfg.image_size) * 2 - 1
    video, aux = gen(mels, reference, torch.zeros(batch, dtype=torch.long))
    assert video.shape == (batch, cfg.frames, 3, cfg.image_size, cfg.image_size) and aux.shape == (batch, 6)
    assert video.abs().max() <= 1
    scores = critic(video.flatten(0, 1), reference.repeat_interleave(cfg.frames, 0))
    logits = emo(video)
    assert scores.shape == (batch * cfg.frames,) and logits.shape == (batch, 7)
    (scores.mean() + logits.mean() + video.mean() + aux.mean()).backward()
    for module in (gen, critic, emo):
        assert all(p.grad is not None for p in module.parameters() if p.requires_grad)


class LinearCritic(torch.nn.Module):
    """critic(x) = <w, x>: its gradient is w everywhere, so the penalty is (|w| - 1)^2."""

    def __init__(self, shape):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(shape))

    def forward(self, frames, reference):
        return (frames * self.w).flatten(1).sum(1)


def test_gradient_penalty_is_exact_for_a_linear_critic():
    critic = LinearCritic((3, 8, 8))
    real, fake, ref = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    expected = (critic.w.detach().norm() - 1) ** 2
    assert torch.allclose(gradient_penalty(critic, real, fake, ref), expected, rtol=1e-5)
    with torch.no_grad():
        critic.w.mul_(1 / critic.w.norm())
    assert gradient_penalty(critic, real, fake, ref) < 1e-8


def test_landmark_flow_loss_is_zero_for_the_field_the_faces_define():
    """A frame whose landmarks are the reference's moved 3 px right: the field that samples 3 px to the
    left is exact (0), the opposite one is 6 px off, no motion 3 px."""
    from synthtext.data.features import normalised_points
    from synthtext.model.train.losses import landmark_flow_loss

    rng = np.random.default_rng(0)
    ref = rng.uniform(20, 44, (68, 2)).astype(np.float32)
    frame = ref + np.array([3.0, 0.0], np.float32)
    lm = torch.from_numpy(normalised_points(frame, 64))[None, None]
    ref_lm = torch.from_numpy(normalised_points(ref, 64))[None]
    flow = torch.zeros(1, 1, 2, 64, 64)
    assert landmark_flow_loss(flow, lm, ref_lm).item() == pytest.approx(1.5)  # |(-3, 0)| mean over x and y
    flow[:, :, 0] = -3 * 2 / 64
    assert landmark_flow_loss(flow, lm, ref_lm).item() == pytest.approx(0.0, abs=1e-5)
    assert landmark_flow_loss(-flow, lm, ref_lm).item() == pytest.approx(3.0, abs=1e-5)


def test_landmark_displacements_spread_into_a_field():
    """The motion head's kernels cover the face (weights sum to ~1 there) and nothing far from it; moving
    every landmark 2 px right makes a field that samples 2 px to the left over the face."""
    from synthtext.data.template import template
    from synthtext.model.generator import landmark_kernels

    kernels = landmark_kernels(64)
    total = kernels.sum(0)
    nose = template(64)[30].round().astype(int)
    assert total[nose[1], nose[0]] > 0.95 and total[0, 0] < 0.01 and total[0, 63] < 0.01
    cfg = profile("tiny", decoder="motion")
    gen = Generator(cfg)
    with torch.no_grad():
        gen.decoder.points.bias.view(68, 2)[:, 0] = torch.atanh(torch.tensor(2 * 2 / 32 / cfg.max_flow))
    parts, _ = gen.decode(torch.zeros(1, cfg.frames, cfg.n_mels, cfg.mel_context), torch.zeros(1, 3, 32, 32),
                          torch.tensor([0]))
    centre = template(32)[30].round().astype(int)
    assert parts["flow"][0, 0, 0, centre[1], centre[0]].item() * 16 == pytest.approx(-2.0, abs=0.15)
    assert parts["flow"][0, 0, :, 0, 0].abs().max().item() * 16 < 0.1


def test_still_head_moves_frames_into_the_reference_pose():
    """A frame whose head is shifted and turned keeps its expression (mouth points) but loses the head
    motion: its stable points land on the reference's, and the picture moves with them."""
    import cv2

    from synthtext.data.geometry import transform_points
    from synthtext.data.template import template
    from synthtext.model.train.data import STABLE_POINTS, stabilise

    pose = template(64).astype(np.float32)
    frame = pose.copy()
    frame[48:68, 1] += 2.0  # an expression: the mouth lower
    turn = cv2.getRotationMatrix2D((32, 32), 6.0, 1.05)
    turn[:, 2] += (3.0, -2.0)
    moved = transform_points(turn, frame).astype(np.float32)
    image = np.zeros((64, 64, 3), np.uint8)
    x, y = np.round(moved[30]).astype(int)  # the nose tip, marked
    image[y - 1:y + 2, x - 1:x + 2] = 255
    video, points = stabilise(image[None], moved[None], pose)
    assert np.abs(points[0, STABLE_POINTS] - pose[STABLE_POINTS]).max() < 0.05
    assert np.abs(points[0, 48:68] - frame[48:68]).max() < 0.05  # the expression stays
    found = np.argwhere(video[0, ..., 0] > 100).mean(0)[::-1]
    assert np.linalg.norm(found - pose[30]) < 1.0


@pytest.mark.parametrize(("decoder", "factor"), [("pixels", 5), ("motion", 3)])
def test_generator_overfits_one_clip(aligned_corpus, decoder, factor):
    """Both decoders learn one clip: the pixel decoder from noise, the motion decoder from "copy the
    reference" (its start, already close, so a smaller factor)."""
    work, _ = aligned_corpus
    torch.manual_seed(0)
    cfg = profile("tiny", decoder=decoder)
    clip = sorted((work / "clips").glob("*.h5"))[0]
    item = ClipWindows([clip], cfg, windows=1, augment=False, reference="clip", still_head=False)[0]
    batch = {k: v[None] for k, v in item.items()}
    gen = Generator(cfg)
    optimizer = torch.optim.Adam(gen.parameters(), lr=2e-3)
    noise = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(300):
        fake, _ = gen(batch["mels"], batch["reference"], batch["emotion"], generator=noise.manual_seed(1))
        loss = reconstruction_loss(fake, batch["video"], batch["mouth"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] * factor <= losses[0], (losses[0], losses[-1])


def test_reference_frames_come_from_where_params_say(aligned_corpus):
    """neutral: a frame of the same actor's neutral clip; clip: a frame of the clip itself; mixed: both."""
    import h5py

    work, _ = aligned_corpus
    cfg = profile("tiny")
    files = sorted((work / "clips").glob("*.h5"))
    with h5py.File(files[0]) as f:
        actor = str(f.attrs["actor"])
    frames = {}
    for path in files:
        with h5py.File(path) as f:
            frames[path.stem] = to_tensor_frames(f["video"][()], cfg.image_size)
    neutral = [k for k in frames if k.startswith(actor) and "_NEU_" in k]
    own = files.index(next(p for p in files if p.stem.startswith(actor) and "_ANG_" in p.stem))

    def source(reference: str, item: int) -> str:
        ref = ClipWindows(files, cfg, windows=1, augment=False, seed=item, reference=reference)[own]["reference"]
        return next(k for k, v in frames.items() if (np.abs(v - ref.numpy()).max(axis=(1, 2, 3)) < 1e-6).any())

    assert all(source("clip", i) == files[own].stem for i in range(3))
    assert all(source("neutral", i) in neutral for i in range(3))
    mixed = {source("mixed", i) for i in range(12)}
    assert files[own].stem in mixed and mixed & set(neutral)
    with pytest.raises(ValueError, match="reference"):
        ClipWindows(files, cfg, reference="other")


def split_by_actor(work: Path) -> tuple[list[Path], list[Path]]:
    clips = sorted((work / "clips").glob("*.h5"))
    return [c for c in clips if c.name.startswith("1001")], [c for c in clips if c.name.startswith("1002")]


def test_emotion_discriminator_learns_the_emotions(aligned_corpus, tmp_path):
    """Scored on the person it trained on: the tiny 32 px network cannot generalise from one person to
    another with the corpus's natural-sized expressions (the demo's cpu profile is measured on new
    people by the pretrain_emotion stage)."""
    train, _ = split_by_actor(aligned_corpus[0])
    params = TrainParams(**{**TINY, "steps": 150, "batch": 8, "lr": 2e-3, "checkpoint_every": 1000,
                            "log_every": 50})
    metrics = loop.train_emotion(params, train, train, tmp_path / "emotion", tmp_path / "ckpt",
                                 lambda *a: None, {"test": 1})
    assert metrics["accuracy"] > 1 / 6 + 0.1, metrics
    assert (tmp_path / "emotion" / "model.pt").is_file() and (tmp_path / "emotion" / "config.json").is_file()
    model, cfg = model_io.load_model(tmp_path / "emotion", EmotionDiscriminator)
    assert cfg == profile("tiny")


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_checkpoint(aligned_corpus, tmp_path):
    train, val = split_by_actor(aligned_corpus[0])
    params = TrainParams(**{**TINY, "steps": 10, "checkpoint_every": 4})
    emotion_dir = tmp_path / "emotion"
    model_io.save_model(emotion_dir, EmotionDiscriminator(profile("tiny")), profile("tiny"))

    def crash_at_7(step, metrics, images):
        if step == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        loop.train_generator(params, train, val, emotion_dir, tmp_path / "gen", tmp_path / "ckpt", crash_at_7, {"a": 1})
    saved = torch.load(tmp_path / "ckpt" / "pretrain_generator.pt", weights_only=True)
    assert saved["step"] == 4
    steps = []
    metrics = loop.train_generator(params, train, val, emotion_dir, tmp_path / "gen", tmp_path / "ckpt",
                                   lambda step, m, i: steps.append(step), {"a": 1})
    assert steps[:10] == list(range(1, 11))  # the log gets the history up to the checkpoint, then steps 5..10
    final = torch.load(tmp_path / "ckpt" / "pretrain_generator.pt", weights_only=True)
    adam_steps = {int(s["step"]) for s in final["optimizers"]["generator"]["state"].values()}
    assert final["step"] == 10 and adam_steps == {10}  # optimizer state carried over: 4 + 6 updates
    assert [row["step"] for row in metrics["history"]] == list(range(1, 11))
    # the same run without the interruption: the same weights, bit for bit (same windows, same noise)
    loop.train_generator(params, train, val, emotion_dir, tmp_path / "full", tmp_path / "ckpt-full",
                         lambda *a: None, {"a": 1})
    assert (tmp_path / "full" / "model.pt").read_bytes() == (tmp_path / "gen" / "model.pt").read_bytes()


def test_changed_params_start_afresh(aligned_corpus, tmp_path):
    train, val = split_by_actor(aligned_corpus[0])
    params = TrainParams(**{**TINY, "steps": 4})
    loop.train_emotion(params, train, val, tmp_path / "e", tmp_path / "ckpt", lambda *a: None, {"lr": 1})
    steps = []
    loop.train_emotion(params, train, val, tmp_path / "e", tmp_path / "ckpt", lambda s, m, i: steps.append(s),
                       {"lr": 2})
    assert steps[0] == 1


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(aligned_corpus, tmp_path):
    train, val = split_by_actor(aligned_corpus[0])
    spec = {"stage": "pretrain_emotion", "params": {**TINY, "steps": 4, "device": "cpu"},
            "train": [str(p) for p in train], "val": [str(p) for p in val], "out_dir": str(tmp_path / "emotion"),
            "ckpt_dir": str(tmp_path / "ckpt"), "identity": {"ddp": 1}, "result": str(tmp_path / "result.json")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "synthtext.model.train.worker", str(tmp_path / "spec.json")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "result.json").read_text())["accuracy"] >= 0
    assert torch.load(tmp_path / "ckpt" / "pretrain_emotion.pt", weights_only=True)["step"] == 4


def test_vgg19_loading(tmp_path):
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg19_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a full torchvision-style file also has these
    torch.save(state, tmp_path / "vgg19.pth")
    features = VGG19Features(tmp_path / "vgg19.pth")
    out = features(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert [f.shape[1] for f in out] == [64, 128, 256, 512, 512]
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(SynthTextError, match="not a VGG19"):
        VGG19Features(tmp_path / "wrong.pth")
    with pytest.raises(SynthTextError, match="not found"):
        VGG19Features(tmp_path / "missing.pth")


def test_model_folder_round_trip_and_bad_folder(tmp_path):
    cfg = profile("tiny")
    gen = Generator(cfg)
    model_io.save_model(tmp_path / "g", gen, cfg)
    back, back_cfg = model_io.load_model(tmp_path / "g", Generator)
    assert back_cfg == cfg
    for a, b in zip(gen.state_dict().values(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(SynthTextError, match="not a model folder"):
        model_io.load_model(tmp_path, Generator)
    assert np.array_equal(json.loads((tmp_path / "g" / "config.json").read_text())["emotions"],
                          ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"])


def test_the_expression_table_learns_at_its_own_rate():
    """``expression_lr``: the table of each emotion's landmark moves is one Adam group at lr x expression_lr,
    every other parameter one group at lr; a model without the table has only the one group."""
    params = TrainParams(lr=1e-3, expression_lr=10.0)
    gen = Generator(profile("tiny"))
    groups = loop.generator_parameters(gen, params)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-2)]
    assert groups[1]["params"] == [gen.decoder.expressions]
    assert sum(len(g["params"]) for g in groups) == len(list(gen.parameters()))
    before = gen.decoder.expressions.detach().clone()
    optimizer = torch.optim.Adam(groups, betas=(0.5, 0.999))
    gen.decoder.expressions.grad = torch.ones_like(before)
    optimizer.step()  # Adam's first step moves each parameter by its group's lr
    assert torch.allclose(before - gen.decoder.expressions.detach(), torch.full_like(before, 1e-2), atol=1e-6)
    pixels = Generator(profile("tiny", decoder="pixels"))
    assert len(loop.generator_parameters(pixels, params)) == 1
