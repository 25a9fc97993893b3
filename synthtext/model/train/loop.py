"""The three training stages: emotion discriminator, generator pre-training, joint GAN training.

All share (``synthtext.model.train.setup``): device auto-detection (cuda, mps, cpu) with an override, AMP
on CUDA, fixed seeds, atomic checkpoints every N steps that a killed run resumes from (step, weights,
optimizer state, history), DDP when started by ``torchrun`` (gloo on CPU), and data from random HDF5
windows in worker processes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from synthtext import EMOTIONS, GENERATED_CLASS
from synthtext.model import EmotionDiscriminator, FrameDiscriminator, Generator, gradient_penalty
from synthtext.model.io import load_model, save_model, unwrap
from synthtext.model.train.data import ClipWindows
from synthtext.model.train.losses import (
    EmotionFeatures,
    VGG19Features,
    coarse_loss,
    flow_smoothness,
    landmark_flow_loss,
    landmark_points_loss,
    mask_prior,
    perceptual_loss,
    reconstruction_loss,
)
from synthtext.model.train.pictures import confusion_image, sample_grid
from synthtext.model.train.setup import Batches, Checkpoint, Log, Run, optimize, train_loop, wrap
from synthtext.ops.config import TrainParams
from synthtext.ops.errors import SynthTextError

# ---------------------------------------------------------------- the stages


def train_emotion(params: TrainParams, train: list[Path], val: list[Path], out_dir: Path, ckpt_dir: Path,
                  log: Log, identity: dict) -> dict:
    """Pretrain the emotion discriminator as a 6-way classifier on real clips; evaluate on val."""
    run = Run.start(params)
    net = EmotionDiscriminator(run.cfg).to(run.device)
    model = wrap(net, run.dist)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr, betas=(0.5, 0.999))
    scaler = torch.amp.GradScaler(enabled=run.amp)
    data = Batches(train, run)

    def step(number: int):
        batch = data(number)
        with run.autocast():
            loss = F.cross_entropy(model(batch["video"]), batch["emotion"])
        optimize(optimizer, scaler, loss)
        return {"loss": loss.item()}, {}

    history = train_loop(run, "pretrain_emotion", Checkpoint(ckpt_dir, "pretrain_emotion"), identity,
                    {"emotion": model}, {"emotion": optimizer}, step, log)
    metrics = {}
    if run.dist.main:
        metrics, confusion = evaluate_emotion(net, val or train, run)
        log(params.steps, {f"val_{k}": v for k, v in metrics.items() if not isinstance(v, list)},
            {"confusion_matrix": confusion_image(np.array(metrics["confusion"]), EMOTIONS)})
        save_model(out_dir, net, run.cfg)
    metrics["history"] = history
    return metrics


@torch.no_grad()
def evaluate_emotion(net: EmotionDiscriminator, files: list[Path], run: Run) -> tuple[dict, np.ndarray]:
    """Accuracy, per-class recall and the confusion matrix over 4 windows of every clip."""
    net.eval()
    dataset = ClipWindows(files, run.cfg, windows=4, augment=False, seed=run.params.seed + 1,
                          still_head=False)  # the clips' recorded head motion, whatever training used
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), np.int64)
    for batch in DataLoader(dataset, batch_size=8):
        logits = net(batch["video"].to(run.device))[:, :len(EMOTIONS)]
        for truth, guess in zip(batch["emotion"].tolist(), logits.argmax(1).tolist(), strict=True):
            confusion[truth, guess] += 1
    net.train()
    recall = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    metrics = {"accuracy": float(confusion.trace() / max(confusion.sum(), 1)),
               **{f"recall_{e}": float(r) for e, r in zip(EMOTIONS, recall, strict=True)},
               "confusion": confusion.tolist()}
    return metrics, confusion


def _perceptual_extractor(params: TrainParams, emotion_dir: Path, device: torch.device) -> nn.Module:
    if params.perceptual_net == "vgg19":
        if not params.vgg19_weights:
            raise SynthTextError("loss perceptual_net: vgg19 needs vgg19_weights: a VGG19 state_dict file")
        return VGG19Features(params.vgg19_weights).to(device)
    net, _ = load_model(emotion_dir, EmotionDiscriminator)
    return EmotionFeatures(net).to(device)


def _generator_losses(run: Run, gen: nn.Module, extractor: nn.Module, batch: dict):
    params = run.params
    fake, aux_logits, parts = gen(batch["mels"], batch["reference"], batch["emotion"], parts=True)
    rec = reconstruction_loss(fake, batch["video"], batch["mouth"])
    perc = perceptual_loss(extractor, fake.flatten(0, 1), batch["video"].flatten(0, 1))
    aux = F.cross_entropy(aux_logits, batch["emotion"])
    total = params.rec * rec + params.perceptual * perc + params.aux * aux
    metrics = {"rec": rec.item(), "perceptual": perc.item(), "aux": aux.item()}
    if "flow" in parts:
        terms = {"coarse": coarse_loss(fake, batch["video"]), "smooth": flow_smoothness(parts["flow"]),
                 "mask_prior": mask_prior(parts["mask"], batch["mouth"]),
                 "landmark_flow": landmark_flow_loss(parts["flow"], batch["landmarks"], batch["ref_landmarks"]),
                 "landmark_points": landmark_points_loss(parts["points"], batch["landmarks"], batch["ref_landmarks"],
                                                         fake.shape[-1])}
        total = total + sum(getattr(params, k) * v for k, v in terms.items())
        metrics.update({k: v.item() for k, v in terms.items()})
    return fake, total, metrics


def generator_parameters(gen: nn.Module, params: TrainParams) -> list[dict]:
    """The generator's parameter groups for Adam: the expression table (each emotion's landmark moves,
    the same on every face) learns ``expression_lr`` times faster than the rest. At one rate the
    speech/identity-conditioned landmark head, which also sees the emotion, learns the expressions
    first and the table ends up with about a third of them; a face the model never saw then gets a
    weaker, less reliable expression (held-out emotion 0.61 vs 0.67 at 256 px, ANG 2/3 vs 3/3)."""
    table, rest = [], []
    for name, parameter in gen.named_parameters():
        (table if name.endswith("decoder.expressions") else rest).append(parameter)
    return [{"params": rest, "lr": params.lr}] + ([{"params": table, "lr": params.lr * params.expression_lr}]
                                                  if table else [])


def train_generator(params: TrainParams, train: list[Path], val: list[Path], emotion_dir: Path, out_dir: Path,
                    ckpt_dir: Path, log: Log, identity: dict) -> dict:
    """Pretrain the generator: mouth-weighted reconstruction + perceptual + auxiliary emotion loss."""
    run = Run.start(params)
    net = Generator(run.cfg).to(run.device)
    gen = wrap(net, run.dist)
    extractor = _perceptual_extractor(params, emotion_dir, run.device)
    optimizer = torch.optim.Adam(generator_parameters(gen, params), lr=params.lr, betas=(0.5, 0.999))
    scaler = torch.amp.GradScaler(enabled=run.amp)
    data = Batches(train, run)

    def step(number: int):
        batch = data(number)
        with run.autocast():
            fake, loss, metrics = _generator_losses(run, gen, extractor, batch)
        optimize(optimizer, scaler, loss)
        images = {"samples": sample_grid(batch["video"], fake)} if number % params.image_every == 0 else {}
        return {"loss": loss.item(), **metrics}, images

    history = train_loop(run, "pretrain_generator", Checkpoint(ckpt_dir, "pretrain_generator"), identity,
                    {"generator": gen}, {"generator": optimizer}, step, log)
    metrics = {}
    if run.dist.main:
        metrics = evaluate_generator(net, val or train, run)
        log(params.steps, {f"val_{k}": v for k, v in metrics.items()}, {})
        save_model(out_dir, net, run.cfg)
    metrics["history"] = history
    return metrics


@torch.no_grad()
def evaluate_generator(net: Generator, files: list[Path], run: Run) -> dict:
    """L1 over whole frames and mouth-weighted L1 on 2 windows of every val clip (fixed noise)."""
    net.eval()
    dataset = ClipWindows(files, run.cfg, windows=2, augment=False, seed=run.params.seed + 1,
                          reference=run.params.reference, still_head=run.params.still_head)
    total, mouth, count = 0.0, 0.0, 0
    noise = torch.Generator(device=run.device).manual_seed(0)
    for batch in DataLoader(dataset, batch_size=4):
        batch = {k: v.to(run.device) for k, v in batch.items()}
        fake, _ = net(batch["mels"], batch["reference"], batch["emotion"], generator=noise)
        total += float((fake - batch["video"]).abs().mean()) * len(fake)
        mouth += float(reconstruction_loss(fake, batch["video"], batch["mouth"])) * len(fake)
        count += len(fake)
    net.train()
    return {"l1": total / max(count, 1), "mouth_l1": mouth / max(count, 1)}


def train_gan(params: TrainParams, train: list[Path], val: list[Path], generator_dir: Path, emotion_dir: Path,
              out_dir: Path, ckpt_dir: Path, log: Log, identity: dict) -> dict:
    """Joint training from the pretrained generator and emotion discriminator.

    Generator loss = reconstruction + perceptual + disc_frame * frame-adversarial + disc_emo *
    emotion-adversarial; the frame critic learns with WGAN-GP; the emotion discriminator keeps
    learning with real clips labelled by emotion and generated clips labelled "generated".
    """
    run = Run.start(params)
    gen_net, _ = load_model(generator_dir, Generator)
    emo_net, _ = load_model(emotion_dir, EmotionDiscriminator)
    frame_net = FrameDiscriminator(run.cfg)
    gen, emo, critic = (wrap(m.to(run.device), run.dist) for m in (gen_net, emo_net, frame_net))
    extractor = _perceptual_extractor(params, emotion_dir, run.device)  # a frozen copy, apart from `emo`
    opt_g = torch.optim.Adam(generator_parameters(gen, params), lr=params.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=params.lr_d, betas=(0.5, 0.999))
    opt_e = torch.optim.Adam(emo.parameters(), lr=params.lr_d, betas=(0.5, 0.999))
    data = Batches(train, run)
    generated = torch.full((params.batch,), GENERATED_CLASS, device=run.device)

    def step(number: int):
        batch = data(number)
        reference = batch["reference"][:, None].expand_as(batch["video"]).flatten(0, 1)
        real = batch["video"].flatten(0, 1)
        # Discriminator steps.
        with torch.no_grad():
            fake_video, _ = gen(batch["mels"], batch["reference"], batch["emotion"])
        fake = fake_video.flatten(0, 1)
        wasserstein = critic(fake, reference).mean() - critic(real, reference).mean()
        penalty = gradient_penalty(unwrap(critic), real, fake, reference)
        opt_d.zero_grad(set_to_none=True)
        (wasserstein + params.gp * penalty).backward()
        opt_d.step()
        emo_loss = F.cross_entropy(emo(batch["video"]), batch["emotion"]) + \
            F.cross_entropy(emo(fake_video), generated[:len(fake_video)])
        opt_e.zero_grad(set_to_none=True)
        emo_loss.backward()
        opt_e.step()
        # Generator step.
        fake_video, base, metrics = _generator_losses(run, gen, extractor, batch)
        adv_frame = -critic(fake_video.flatten(0, 1), reference).mean()
        adv_emo = F.cross_entropy(emo(fake_video), batch["emotion"])
        loss = base + params.disc_frame * adv_frame + params.disc_emo * adv_emo
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        images = {"samples": sample_grid(batch["video"], fake_video)} if number % params.image_every == 0 else {}
        return {"loss_g": loss.item(), **metrics, "adv_frame": adv_frame.item(), "adv_emo": adv_emo.item(),
                "wasserstein": -wasserstein.item(), "gp": penalty.item(), "loss_emo": emo_loss.item()}, images

    modules = {"generator": gen, "critic": critic, "emotion": emo}
    optimizers = {"generator": opt_g, "critic": opt_d, "emotion": opt_e}
    history = train_loop(run, "train_gan", Checkpoint(ckpt_dir, "train_gan"), identity, modules, optimizers, step, log)
    metrics = {}
    if run.dist.main:
        metrics = evaluate_generator(gen_net, val or train, run)
        log(params.steps, {f"val_{k}": v for k, v in metrics.items()}, {})
        save_model(out_dir, gen_net, run.cfg, {"frame_discriminator": frame_net, "emotion_discriminator": emo_net})
    metrics["history"] = history
    return metrics
