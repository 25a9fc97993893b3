"""DVC stage entry points: each reads its params section and calls one flow.

Importing this package points Prefect at a project-local home (``.prefect/``, where the per-clip
cache lives) unless the user already configured one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from synthtext.ops.config import Params, load_params
from synthtext.ops.errors import SynthTextError

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))


def main(stage: Callable[[Params], str]) -> None:
    """Run ``stage(params)`` with params.yaml checked and typed, print its one-line summary; user errors
    (params.yaml's included) exit 1 with one clear line."""
    try:
        print(stage(load_params(ROOT / "params.yaml")), flush=True)
    except SynthTextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
