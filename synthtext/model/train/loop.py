"""The three training stages: emotion discriminator, generator pre-training, joint GAN training.

All share: device auto-detection (cuda, mps, cpu) with an override, AMP on CUDA, fixed seeds,
atomic checkpoints every N steps that a killed run resumes from (step, weights, optimizer state,
history), DDP when started by ``torchrun`` (gloo on CPU), and data from random HDF5 windows in
worker processes.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from synthtext import EMOTIONS, GENERATED_CLASS
from synthtext.model import EmotionDiscriminator, FrameDiscriminator, Generator, ModelConfig, gradient_penalty
from synthtext.model.config import profile
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
from synthtext.ops.config import TrainParams
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import atomic_path


def model_config(params: TrainParams) -> ModelConfig:
    """The network sizes of ``params.profile``, with ``params.decoder`` where it is set."""
    return profile(params.profile, **({"decoder": params.decoder} if params.decoder else {}))


Log = Callable[[int, dict[str, float], dict[str, np.ndarray]], None]
"""log(step, metrics, images): the caller decides where it goes (MLflow, CSV)."""


def pick_device(name: str) -> torch.device:
    if name != "auto":
        if name == "cuda" and not torch.cuda.is_available():
            raise SynthTextError("device cuda asked for but no CUDA GPU is available: use device: auto")
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


@dataclass
class Dist:
    """Process-group facts: rank 0 alone logs and writes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=world)


def wrap(module: nn.Module, dist: Dist) -> nn.Module:
    if dist.world == 1:
        return module

    return DistributedDataParallel(module)


class Batches:
    """Endless batches of random windows, loaded by worker processes; ``batches(step)`` is the batch
    of training step ``step`` (1, 2, ...), whichever step a run starts from.

    One dataset covers the whole run (``steps * batch`` windows per process, item i drawn from a
    generator seeded by (seed, i)), so workers persist and nothing repeats by epoch, and a run resumed
    at step k + 1 reads exactly the windows an uninterrupted run reads there: the loader starts at
    item k * batch. The loader's own seed comes from its own generator, not the global one, so that
    starting it does not shift the random numbers the steps draw (the generator's noise, the gradient
    penalty). Workers are spawned, not forked: the flow that runs training has threads.
    """

    def __init__(self, files: list[Path], run: Run):
        self.files, self.run = files, run
        self.iterator: Iterator[dict] | None = None
        self.next_step = 0

    def __call__(self, step: int) -> dict:
        if self.iterator is None or step != self.next_step:
            self.iterator = self._batches(step)
        self.next_step = step + 1
        return next(self.iterator)

    def _batches(self, first_step: int) -> Iterator[dict]:
        run, params = self.run, self.run.params
        per_process = params.steps * params.batch
        dataset = ClipWindows(self.files, run.cfg, seed=params.seed, length=per_process * run.dist.world,
                              reference=params.reference, still_head=params.still_head)
        skip = (first_step - 1) * params.batch * run.dist.world  # the windows earlier steps consumed
        if skip:
            dataset = Subset(dataset, range(min(skip, len(dataset)), len(dataset)))
        sampler = DistributedSampler(dataset, run.dist.world, run.dist.rank, shuffle=False) \
            if run.dist.world > 1 else None
        workers = params.workers
        loader = DataLoader(dataset, batch_size=params.batch, sampler=sampler, num_workers=workers,
                            multiprocessing_context="spawn" if workers else None, persistent_workers=workers > 0,
                            drop_last=False, generator=torch.Generator().manual_seed(params.seed))
        while True:
            for batch in loader:
                yield {k: v.to(run.device, non_blocking=True) for k, v in batch.items()}


# ---------------------------------------------------------------- model folders and checkpoints


class Checkpoint:
    """Everything needed to continue a run: step, weights, optimizer states, metric history, RNG."""

    def __init__(self, folder: Path, stage: str):
        self.path = Path(folder) / f"{stage}.pt"

    def load(self, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
             identity: dict) -> tuple[int, list[dict]]:
        if not self.path.is_file():
            return 0, []
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state["identity"] != {k: str(v) for k, v in identity.items()}:
            return 0, []  # params or data changed: start afresh
        for name, module in modules.items():
            unwrap(module).load_state_dict(state["modules"][name])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        torch.set_rng_state(state["torch_rng"])
        if "python_rng" in state:  # every random stream the steps may draw from continues where it was
            version, internal, gauss = state["python_rng"]
            random.setstate((version, tuple(internal), gauss))
            np.random.set_state(("MT19937", state["numpy_rng"].numpy().astype(np.uint32), *state["numpy_pos"]))
        if torch.cuda.is_available() and "cuda_rng" in state:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return int(state["step"]), list(state["history"])

    def save(self, step: int, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
             identity: dict, history: list[dict]) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({"step": step, "identity": {k: str(v) for k, v in identity.items()},
                        "modules": {k: unwrap(m).state_dict() for k, m in modules.items()},
                        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                        "torch_rng": torch.get_rng_state(), "python_rng": _python_rng(),
                        "numpy_rng": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
                        "numpy_pos": list(np.random.get_state()[2:]),
                        **({"cuda_rng": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
                        "history": history}, tmp)


def _python_rng() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


# ---------------------------------------------------------------- the stages


@dataclass
class Run:
    """What every stage sets up the same way."""

    params: TrainParams
    cfg: ModelConfig
    device: torch.device
    dist: Dist
    amp: bool

    @classmethod
    def start(cls, params: TrainParams) -> Run:
        device = pick_device(params.device)
        dist = init_distributed(device)
        seed_everything(params.seed + dist.rank)
        return cls(params, model_config(params), device, dist, device.type == "cuda")

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()


def _optimize(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor) -> None:
    """One update; with AMP the loss is scaled (a disabled scaler passes it through)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _loop(run: Run, stage: str, ckpt: Checkpoint, identity: dict, modules: dict, optimizers: dict,
          step_fn: Callable[[int], tuple[dict[str, float], dict[str, np.ndarray]]], log: Log) -> list[dict]:
    """Resume, then call ``step_fn`` until ``params.steps``; log every ``log_every``, checkpoint every
    ``checkpoint_every`` and at the end. Returns the metric history."""
    params = run.params
    start, history = ckpt.load(modules, optimizers, identity)
    if start and run.dist.main:  # a resumed run: its log gets the history up to the checkpoint first,
        for row in history:      # so that the run that finishes holds every logged step once
            log(int(row["step"]), {k: v for k, v in row.items() if k != "step"}, {})
    bar = tqdm(total=params.steps, initial=start, desc=stage, unit="step", disable=not run.dist.main)
    for step in range(start + 1, params.steps + 1):
        metrics, images = step_fn(step)
        if run.dist.main and (step % params.log_every == 0 or step == params.steps or images):
            row = {"step": step, **metrics}
            history.append(row)
            log(step, metrics, images)
            bar.set_postfix({k: f"{v:.3f}" for k, v in list(metrics.items())[:3]})
        if run.dist.main and (step % params.checkpoint_every == 0 or step == params.steps):
            ckpt.save(step, modules, optimizers, identity, history)
        bar.update()
    bar.close()
    return history


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
        _optimize(optimizer, scaler, loss)
        return {"loss": loss.item()}, {}

    history = _loop(run, "pretrain_emotion", Checkpoint(ckpt_dir, "pretrain_emotion"), identity,
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
        _optimize(optimizer, scaler, loss)
        images = {"samples": sample_grid(batch["video"], fake)} if number % params.image_every == 0 else {}
        return {"loss": loss.item(), **metrics}, images

    history = _loop(run, "pretrain_generator", Checkpoint(ckpt_dir, "pretrain_generator"), identity,
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
    history = _loop(run, "train_gan", Checkpoint(ckpt_dir, "train_gan"), identity, modules, optimizers, step, log)
    metrics = {}
    if run.dist.main:
        metrics = evaluate_generator(gen_net, val or train, run)
        log(params.steps, {f"val_{k}": v for k, v in metrics.items()}, {})
        save_model(out_dir, gen_net, run.cfg, {"frame_discriminator": frame_net, "emotion_discriminator": emo_net})
    metrics["history"] = history
    return metrics
