"""Model folders: ``model.pt`` (a state_dict) + ``config.json`` [+ other state_dicts], saved atomically
and loaded without unpickling code."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from synthtext.model.config import ModelConfig
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import atomic_folder


def save_model(folder: Path, model: nn.Module, cfg: ModelConfig, extra: dict[str, nn.Module] | None = None) -> None:
    """``model.pt`` (state_dict) + ``config.json`` [+ other state_dicts], written to a temporary
    folder and renamed into place when complete."""
    with atomic_folder(folder) as tmp:
        torch.save(unwrap(model).state_dict(), tmp / "model.pt")
        for name, module in (extra or {}).items():
            torch.save(unwrap(module).state_dict(), tmp / f"{name}.pt")
        cfg.save(tmp / "config.json")


def load_model(folder: str | Path, kind: type[nn.Module], file: str = "model.pt") -> tuple[nn.Module, ModelConfig]:
    """A model from a model folder (weights_only: no pickled code is ever loaded)."""
    folder = Path(folder)
    if not (folder / file).is_file() or not (folder / "config.json").is_file():
        raise SynthTextError(f"{folder} is not a model folder (needs {file} and config.json)")
    cfg = ModelConfig.load(folder / "config.json")
    model = kind(cfg)
    model.load_state_dict(torch.load(folder / file, map_location="cpu", weights_only=True))
    return model, cfg


def unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)
