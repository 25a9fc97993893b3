"""synthtext.ops.lineage against DVC itself, on a three-stage DVC repository made in a temporary folder.

The pipeline: ``prep`` copies ``${data.source}`` (a directory, interpolated from params.yaml) to the
directory output ``features`` and lists it in the file output ``listing.txt``; ``report`` reads both;
``lineage`` writes a lineage record with :func:`synthtext.ops.lineage.record` from inside ``dvc repro``
(which holds the repository lock then), as the training stages do. Every expectation comes from DVC:
``dvc.lock`` read as plain YAML, ``dvc dag``, ``dvc repro --dry``, ``dvc status`` and ``dvc cache dir``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synthtext.ops.errors import SynthTextError
from synthtext.ops.lineage import cached_manifest, check, dvc_hash, stage_graph, upstream
from tests.conftest import REPO

DVC_YAML = """\
stages:
  prep:
    cmd: mkdir -p features && cp -r ${data.source}/. features/ && ls -R ${data.source} > listing.txt
    deps:
      - ${data.source}
    params:
      - data.source
      - split
    outs:
      - features
      - listing.txt
  report:
    cmd: cat listing.txt features/a.txt > report.txt && echo 1 > score.json
    deps:
      - listing.txt
      - features
    outs:
      - report.txt
    metrics:
      - score.json:
          cache: false
  lineage:
    cmd: python probe.py
    deps:
      - report.txt
      - probe.py
    outs:
      - lineage.json:
          cache: false
"""

PROBE = """\
import json
from synthtext.ops.config import load_params
from synthtext.ops.lineage import record

params = load_params("params.yaml")
done = record(".", "lineage", params, ["features", "listing.txt"], ["clip-b", "clip-a"])
json.dump(done, open("lineage.json", "w"), indent=1)
"""


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dvc(*args: str, cwd: Path, env: dict) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd, env)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict]:
    """The repository after `dvc repro`, committed, and the environment DVC ran in."""
    work = tmp_path_factory.mktemp("dvc-project")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    (work / "raw" / "sub").mkdir(parents=True)
    (work / "raw" / "a.txt").write_text("alpha\n")
    (work / "raw" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 3)
    (work / "params.yaml").write_text("data:\n  source: raw\nsplit:\n  val_ratio: 0.5\n")
    (work / "dvc.yaml").write_text(DVC_YAML)
    (work / "probe.py").write_text(PROBE)
    run(["git", "init", "-q"], work, env)
    dvc("init", "-q", cwd=work, env=env)
    run(["git", "add", "-A"], work, env)
    run(["git", "commit", "-qm", "pipeline"], work, env)
    dvc("repro", cwd=work, env=env)
    run(["git", "add", "-A"], work, env)
    run(["git", "commit", "-qm", "repro"], work, env)
    return work, env


def locked(work: Path) -> dict[str, dict]:
    """dvc.lock's stages as ``{stage: {"deps"/"outs": {path: md5}, "params": {...}}}``, read as plain YAML."""
    stages = yaml.safe_load((work / "dvc.lock").read_text())["stages"]
    return {name: {"deps": {d["path"]: d["md5"] for d in s.get("deps", [])},
                   "outs": {o["path"]: o["md5"] for o in s.get("outs", [])},
                   "params": s.get("params", {}).get("params.yaml", {})} for name, s in stages.items()}


def test_stage_graph_and_order_are_dvcs(project):
    work, env = project
    graph, lock = stage_graph(work), locked(work)
    assert list(graph) == ["prep", "report", "lineage"]
    assert graph["prep"]["deps"] == ["raw"]  # ${data.source}, interpolated
    for name, stage in graph.items():
        assert set(stage["deps"]) == set(lock[name]["deps"]), name
        assert set(stage["outs"]) == set(lock[name]["outs"]), name
    assert graph["report"]["uncached"] == ["score.json"] and graph["prep"]["uncached"] == []
    assert graph["prep"]["params"] == ["data.source", "split"]

    edges = re.findall(r'"(\w+)" -> "(\w+)"', dvc("dag", "--dot", cwd=work, env=env))
    assert edges  # the regex still reads `dvc dag`'s output

    def ancestors(stage: str) -> set[str]:
        direct = {a for a, b in edges if b == stage}
        return direct.union(*(ancestors(a) for a in direct))

    for name in graph:
        assert set(upstream(graph, name)) == ancestors(name), name
    ran = re.findall(r"Running stage '(\w+)'", dvc("repro", "--dry", "--force", "lineage", cwd=work, env=env))
    assert [*upstream(graph, "lineage"), "lineage"] == ran


def test_hashes_are_what_dvc_lock_records(project, tmp_path):
    work, _ = project
    lock = locked(work)
    raw, prep = lock["prep"]["deps"]["raw"], lock["prep"]["outs"]
    assert raw.endswith(".dir") and prep["features"].endswith(".dir")
    assert dvc_hash(work / "raw") == raw
    assert dvc_hash(work / "features") == prep["features"]
    assert dvc_hash(work / "listing.txt") == prep["listing.txt"]
    assert dvc_hash(work / "report.txt") == lock["report"]["outs"]["report.txt"]
    changed = shutil.copytree(work / "raw", tmp_path / "raw")
    (changed / "sub" / "b.bin").write_bytes(b"other")
    assert dvc_hash(changed) != raw

    # The record the `lineage` stage wrote from inside `dvc repro`: dvc.lock's hashes, in pipeline order.
    record = json.loads((work / "lineage.json").read_text())
    assert list(record["upstream"]) == ["prep", "report"]
    for name, entry in record["upstream"].items():
        assert (entry["deps"], entry["outs"], entry["params"]) == \
            (lock[name]["deps"], lock[name]["outs"], lock[name]["params"]), name
    assert record["raw_source"] == "raw" and record["raw_md5"] == raw
    assert record["inputs"] == {"features": prep["features"], "listing.txt": prep["listing.txt"]}
    assert record["train_clips"] == ["clip-a", "clip-b"] and record["dirty"] is False


def cache_file(repo: Path, md5: str) -> Path:
    """Where the DVC cache of ``repo`` keeps object ``md5`` (a file's bytes, or a directory's ``.dir``
    manifest), as the repository's cache object says (its layout and ``cache.dir`` setting included)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return Path(dvc_repo.cache.local.oid_to_path(md5))


def test_cache_paths_are_dvcs(project):
    from dvc.repo import Repo

    work, env = project
    md5 = locked(work)["prep"]["outs"]["features"]
    cache_dir = Path(dvc("cache", "dir", cwd=work, env=env).strip())
    assert cache_dir == work / ".dvc" / "cache"
    manifest_file = cache_file(work, md5)
    assert manifest_file.is_file() and manifest_file.is_relative_to(cache_dir) and manifest_file.name.endswith(".dir")
    with Repo(str(work)) as repo:
        manifest = cached_manifest(repo.cache.local, md5)
        assert cached_manifest(repo.cache.local, "0" * 32 + ".dir") is None
    files = {p.relative_to(work / "features").as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
             for p in (work / "features").rglob("*") if p.is_file()}
    assert manifest == files == {e["relpath"]: e["md5"] for e in json.loads(manifest_file.read_text())}
    for oid in manifest.values():
        assert cache_file(work, oid).is_file()
    assert not cache_file(work, "0" * 32).exists()


def dvc_status(work: Path, env: dict) -> dict[str, str]:
    """`dvc status`'s changed outputs: ``{path: "modified" | "not in cache" | ...}``."""
    found = {}
    for items in json.loads(dvc("status", "--json", cwd=work, env=env)).values():
        for item in items:
            if isinstance(item, dict):
                found.update(item.get("changed outs", {}))
    return found


def check_status(work: Path, record: dict) -> dict[str, str]:
    """The outputs ``check`` finds a problem with, in `dvc status`'s words."""
    outs = [path for entry in record["upstream"].values() for path in entry["outs"]]
    found: dict[str, str] = {}
    for problem in check(work, record).problems:
        out = next((o for o in outs if problem.startswith((f"{o}:", f"{o}/"))), None)
        if out:
            found.setdefault(out, "not in cache" if "not in the DVC cache" in problem else "modified")
    return found


def test_check_sees_what_dvc_status_sees(project, tmp_path):
    work, env = project
    copy = shutil.copytree(work, tmp_path / "copy", symlinks=True)
    record = json.loads((copy / "lineage.json").read_text())
    assert dvc_status(copy, env) == {} and check(copy, record).problems == []

    # Replace files (never edit in place: DVC may link cache files into the work tree).
    (copy / "features" / "sub" / "b.bin").unlink()
    (copy / "features" / "sub" / "b.bin").write_bytes(b"edited by hand")
    (copy / "listing.txt").unlink()
    (copy / "listing.txt").write_text("edited\n")
    report_md5 = locked(copy)["report"]["outs"]["report.txt"]
    cache_file(copy, report_md5).unlink()  # report.txt is intact in the work tree, gone from the cache
    expected = {"features": "modified", "listing.txt": "modified", "report.txt": "not in cache"}
    assert dvc_status(copy, env) == expected
    assert check_status(copy, record) == expected
    assert any(p.startswith("features/sub/b.bin: hash mismatch") for p in check(copy, record).problems)


def test_not_a_dvc_repository(tmp_path):
    with pytest.raises(SynthTextError, match="not a DVC repository"):
        stage_graph(tmp_path)
