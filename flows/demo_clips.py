"""Flow ``demo-clips``: the small generated input that `make demo` and the tests prepare."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import flow, task

from synthtext.demo_clips import make_demo_clips


@task(name="make-demo-clips")
def demo_task(out_dir: str, actors: int, clips_per_actor: int, seconds: float, seed: int) -> list[str]:
    return [str(p) for p in make_demo_clips(out_dir, actors, clips_per_actor, seconds, seed)]


@flow(name="demo-clips")
def demo_clips_flow(out_dir: str, actors: int, clips_per_actor: int, seconds: float, seed: int) -> list[str]:
    """Regenerate the folder from scratch so it holds exactly what the params describe."""
    shutil.rmtree(out_dir, ignore_errors=True)
    Path(out_dir).mkdir(parents=True)
    return demo_task(out_dir, actors, clips_per_actor, seconds, seed)
