"""Speaker-independent train/val split: no actor appears on both sides."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from synthtext.ops.errors import SynthTextError


def split_by_actor(clips: Iterable[tuple[str, str]], val_ratio: float, seed: int) -> tuple[list[str], list[str]]:
    """Split ``(clip_id, actor)`` pairs into sorted train and val clip ids.

    ``ceil(val_ratio * actors)`` actors (at least one when there are two or more) go to val, drawn
    with ``seed`` from the sorted actor list, so the same inputs and params always give the same split.
    """
    if not 0 <= val_ratio < 1:
        raise SynthTextError(f"split.val_ratio must be in [0, 1), not {val_ratio}")
    pairs = sorted(clips)
    actors = sorted({actor for _, actor in pairs})
    if not actors:
        raise SynthTextError("no aligned clips to split: check data/processed/align_report.json")
    n_val = 0
    if val_ratio > 0 and len(actors) > 1:
        n_val = min(max(math.ceil(val_ratio * len(actors)), 1), len(actors) - 1)
    order = np.random.default_rng(seed).permutation(len(actors))
    val_actors = {actors[i] for i in order[:n_val]}
    train = [clip for clip, actor in pairs if actor not in val_actors]
    val = [clip for clip, actor in pairs if actor in val_actors]
    return train, val


def read_split(splits: Path, clips: Path, name: str) -> list[str]:
    """The aligned clip files of split ``name`` (``train`` or ``val``), each checked to exist."""
    path = splits / f"{name}.txt"
    if not path.is_file():
        raise SynthTextError(f"{path} not found: run the split stage first (dvc repro split)")
    files = [str(clips / f"{clip}.h5") for clip in path.read_text().split()]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise SynthTextError(f"{len(missing)} clips in {path} have no aligned file, e.g. {missing[0]}: dvc repro align")
    return files
