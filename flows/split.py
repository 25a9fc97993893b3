"""Flow ``split``: speaker-independent train/val lists from the aligned clips."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, task

from synthtext.data.split import split_by_actor
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_json_atomic, write_text_atomic


@task(name="split-by-actor")
def split_task(clips: list[tuple[str, str]], val_ratio: float, seed: int) -> tuple[list[str], list[str]]:
    return split_by_actor(clips, val_ratio, seed)


@flow(name="split")
def split_flow(report_path: str, out_dir: str, val_ratio: float, seed: int) -> dict:
    """Write ``train.txt`` and ``val.txt`` (one clip id a line) and a summary of who is where."""
    report = Path(report_path)
    if not report.is_file():
        raise SynthTextError(f"{report} not found: run the align stage first (dvc repro align)")
    clips = [(c["clip_id"], c["actor"]) for c in json.loads(report.read_text())["clips"] if c["status"] == "ok"]
    train, val = split_task(clips, val_ratio, seed)
    out = Path(out_dir)
    write_text_atomic(out / "train.txt", "".join(f"{c}\n" for c in train))
    write_text_atomic(out / "val.txt", "".join(f"{c}\n" for c in val))
    actor_of = dict(clips)
    summary = {"train_clips": len(train), "val_clips": len(val),
               "train_actors": sorted({actor_of[c] for c in train}),
               "val_actors": sorted({actor_of[c] for c in val})}
    write_json_atomic(out / "summary.json", summary)
    return summary
