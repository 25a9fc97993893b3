"""Scheduled retraining's decisions and commands (the flow ``flows/retrain.py`` wires them): whether the
raw data or the pipeline params changed since the champion was trained, and ``dvc repro`` / ``dvc push``
run as subprocesses with their output followed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from synthtext.ops.config import Params
from synthtext.ops.errors import SynthTextError
from synthtext.ops.lineage import dvc_hash, load_for, pipeline_params_hash
from synthtext.ops.tracking import CHAMPION_URI


def current_state(repo: Path, params: Params) -> dict:
    """The content hash of ``data.source`` and the hash of the pipeline params now."""
    source = repo / params.data.source
    return {"raw_md5": dvc_hash(source) if source.exists() else "absent",
            "params_md5": pipeline_params_hash(params.raw)}


def champion_state(repo: Path) -> tuple[dict | None, dict]:
    """The champion's lineage record and registry facts, (None, {}) when there is no champion."""
    try:
        record, about = load_for(CHAMPION_URI, repo)
    except SynthTextError:
        return None, {}
    return record, about


def changes(now: dict, champion: dict | None) -> list[str]:
    """Why a retrain is due (empty: nothing changed since the champion was trained)."""
    if champion is None:
        return ["there is no champion yet"]
    found = []
    if champion.get("raw_md5") != now["raw_md5"]:
        found.append(f"raw data changed ({champion.get('raw_md5')} -> {now['raw_md5']})")
    if champion.get("params_md5") != now["params_md5"]:
        found.append("params changed")
    return found


def repro(repo: str | Path, show: Callable[[str], None]) -> str:
    """``dvc repro`` (stages that are up to date are skipped by DVC); its stage lines go to ``show``."""
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith(("Running stage", "evaluate:", "train_gan:", "align:")):
            show(line.rstrip())
    if proc.wait() != 0:
        raise RuntimeError("dvc repro failed:\n" + "\n".join(lines[-30:]))
    return "\n".join(lines)


def push(repo: str | Path) -> str:
    """``dvc push`` to the default remote; says so when there is none."""
    remotes = subprocess.run([sys.executable, "-m", "dvc", "remote", "list"], cwd=repo, capture_output=True,
                             text=True).stdout.strip()
    if not remotes:
        return "no DVC remote configured (dvc remote add -d NAME URL): nothing pushed"
    done = subprocess.run([sys.executable, "-m", "dvc", "push"], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc push failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "pushed"
