"""Atomic writes: every file and folder is written under a temporary name and renamed into place when
complete, so a reader (another stage, DVC, the web page) never sees a partial one."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2


def tmp_path(path: Path, keep_suffix: bool = False) -> Path:
    """The hidden temporary sibling a file is written to before it is renamed into place.

    It ends in ``.tmp`` so that globs for the real suffix never pick up a partial file; writers
    whose format is chosen from the suffix (ffmpeg, OpenCV) ask to ``keep_suffix``.
    """
    return path.with_name(f".{path.stem}.tmp{path.suffix}" if keep_suffix else f".{path.name}.tmp")


@contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """The temporary sibling to write ``path`` to: renamed over ``path`` when the block ends without an
    error, removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path, keep_suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """An empty temporary sibling folder to fill: it replaces ``folder`` (and all it held) when the block
    ends without an error, and is removed when it raises."""
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv_atomic(path: str | Path, rows: list[list]) -> None:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    write_text_atomic(path, text.getvalue())


def write_png_atomic(path: str | Path, bgr) -> Path:
    """Write an OpenCV (BGR) image as PNG, atomically."""
    with atomic_path(path, keep_suffix=True) as tmp:
        cv2.imwrite(str(tmp), bgr)
    return Path(path)


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete leftovers of a killed run (hidden ``.*.tmp*`` files); returns how many."""
    removed = 0
    for path in Path(folder).glob(".*.tmp*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
