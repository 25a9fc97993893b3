"""Reading params.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from synthtext.errors import SynthTextError


def load_params(path: str | Path = "params.yaml") -> dict:
    """The whole params file as a dict."""
    path = Path(path)
    if not path.is_file():
        raise SynthTextError(f"{path} not found: run stages from the repository root")
    with open(path) as f:
        return yaml.safe_load(f) or {}


def section(params: dict, name: str) -> dict:
    """One stage's section; a clear error when it is missing."""
    if name not in params:
        raise SynthTextError(f"params.yaml has no '{name}' section")
    return dict(params[name] or {})
