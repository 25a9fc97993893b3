"""Small file helpers: atomic writes so a reader never sees a partial file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: str | Path, data: object) -> None:
    """Write JSON to a temporary sibling, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete leftovers of a killed run (hidden ``.*.tmp*`` files); returns how many."""
    removed = 0
    for path in Path(folder).glob(".*.tmp*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
