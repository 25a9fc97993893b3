"""What the training stages share: the device, seeds, distributed training, batches, checkpoints and the
optimisation loop."""

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
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from synthtext.model import ModelConfig
from synthtext.model.config import profile
from synthtext.model.io import unwrap
from synthtext.model.train.data import ClipWindows
from synthtext.ops.config import TrainParams
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import atomic_path

Log = Callable[[int, dict[str, float], dict[str, np.ndarray]], None]
"""log(step, metrics, images): the caller decides where it goes (MLflow, CSV)."""


def model_config(params: TrainParams) -> ModelConfig:
    """The network sizes of ``params.profile``, with ``params.decoder`` where it is set."""
    return profile(params.profile, **({"decoder": params.decoder} if params.decoder else {}))


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


def optimize(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor) -> None:
    """One update; with AMP the loss is scaled (a disabled scaler passes it through)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def train_loop(run: Run, stage: str, ckpt: Checkpoint, identity: dict, modules: dict, optimizers: dict,
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
