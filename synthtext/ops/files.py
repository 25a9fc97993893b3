"""Small file helpers: atomic writes so a reader never sees a partial file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2


def tmp_path(path: Path, keep_suffix: bool = False) -> Path:
    """The hidden temporary sibling a file is written to before it is renamed into place.

    It ends in ``.tmp`` so that globs for the real suffix never pick up a partial file; writers
    whose format is chosen from the suffix (ffmpeg, OpenCV) ask to ``keep_suffix``.
    """
    return path.with_name(f".{path.stem}.tmp{path.suffix}" if keep_suffix else f".{path.name}.tmp")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text to a temporary sibling, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_png_atomic(path: str | Path, bgr) -> Path:
    """Write an OpenCV (BGR) image as PNG, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path, keep_suffix=True)
    cv2.imwrite(str(tmp), bgr)
    os.replace(tmp, path)
    return path


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete leftovers of a killed run (hidden ``.*.tmp*`` files); returns how many."""
    removed = 0
    for path in Path(folder).glob(".*.tmp*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
