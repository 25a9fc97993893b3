"""`dvc repro` end to end in a temporary git repository: the real stages, DVC and Prefect."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def clip_contents(folder: Path) -> dict:
    """Every dataset and attribute of every clip file."""
    out = {}
    for path in sorted(folder.glob("*.h5")):
        with h5py.File(path) as f:
            out[path.name] = ({k: f[k][()] for k in f}, dict(f.attrs))
    return out


def assert_same_contents(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        (data_a, attrs_a), (data_b, attrs_b) = a[name], b[name]
        assert data_a.keys() == data_b.keys()
        for key in data_a:
            assert np.array_equal(data_a[key], data_b[key]), f"{name}/{key} differs"
        assert attrs_a == attrs_b, name


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict]:
    """A copy of this repository's files in a fresh git repo, and an environment to run DVC in."""
    work = tmp_path_factory.mktemp("project")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if (REPO / name).is_file() and name != "dvc.lock":
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(work / ".prefect")}
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["sample"].update(identities=2, sentences=1)  # 12 clips keep the test short
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        run(cmd, work, env)
    return work, env


def test_repro_kill_resume_and_granular_params(project):
    work, env = project
    first = run(["dvc", "repro"], work, env)
    for stage in ("sample_corpus", "convert_fps", "align", "split"):
        assert f"Running stage '{stage}'" in first.stdout
    assert "align: 12 clips in, 12 written" in first.stdout
    assert (work / "data/raw/sample/contact_sheet.png").is_file()
    clips_dir = work / "data/processed/clips"
    clean = clip_contents(clips_dir)
    assert len(clean) == 12
    train = (work / "data/processed/splits/train.txt").read_text().split()
    val = (work / "data/processed/splits/val.txt").read_text().split()
    assert train and val and not {c[:4] for c in train} & {c[:4] for c in val}
    assert (work / "data/processed/align_report.json").is_file() and (work / "metrics/align.json").is_file()

    again = run(["dvc", "repro"], work, env)
    assert "Running stage" not in again.stdout and "up to date" in again.stdout

    # Kill -9 in the middle of align, then run again: same content as the clean run.
    shutil.rmtree(work / "data/processed")
    proc = subprocess.Popen(["dvc", "repro"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while not (clips_dir.is_dir() and any(clips_dir.glob("*.h5"))):
        assert proc.poll() is None and time.monotonic() < deadline, "align never started writing"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(clips_dir.glob("*.h5"))) < 12, "killed too late to test a resume"
    for path in clips_dir.glob("*.h5"):  # whatever is visible is complete
        with h5py.File(path) as f:
            assert f["video"].shape[0] == len(f["landmarks"])
    resumed = run(["dvc", "repro"], work, env)
    assert "Running stage 'align'" in resumed.stdout
    assert_same_contents(clip_contents(clips_dir), clean)
    assert not list(clips_dir.glob(".*"))

    # A changed align param reruns align and split, not the conversion.
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["align"]["size"] = 64
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    resized = run(["dvc", "repro"], work, env)
    assert "Stage 'convert_fps' didn't change" in resized.stdout
    assert "Running stage 'align'" in resized.stdout and "Running stage 'split'" in resized.stdout
    with h5py.File(next(clips_dir.glob("*.h5"))) as f:
        assert f["video"].shape[1:] == (64, 64, 3)


def test_data_source_switches_to_a_real_folder(project, demo_dir):
    work, env = project
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"]["source"] = str(demo_dir)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    switched = run(["dvc", "repro"], work, env)
    assert "sample_corpus: skipped" in switched.stdout
    assert "convert_fps: 4 clips in, 4 written" in switched.stdout
    assert sorted(p.name for p in (work / "data/raw/sample").iterdir()) == ["SKIPPED.txt"]
    assert len(list((work / "data/processed/clips").glob("*.h5"))) == 4
