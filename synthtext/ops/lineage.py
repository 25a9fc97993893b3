"""Experiment lineage: what produced a model, recorded when it is trained, checked when asked.

At training time :func:`record` writes, from the pipeline as DVC loads it (``dvc.yaml``'s stage graph
with ``${}`` interpolated, and the hashes ``dvc.lock`` holds for what the upstream stages produced and
consumed), every upstream stage's inputs, outputs, params and MLflow run, plus the git commit and the
training clip ids. :func:`check` compares such a record with the current ``dvc.lock``, the DVC cache
and the files in the work tree, and lists every item that differs.

Everything DVC-shaped comes from DVC's own Python API, not from a re-implementation: the stages, their
deps, outs, params and dvc.lock hashes from ``dvc.repo.Repo(...).index``, the stage order from DVC's
stage graph, file and directory hashes from ``dvc_data``'s ``build`` (the code ``dvc add`` and
``dvc status`` hash with), cache paths and ``.dir`` manifests from the repository's cache object. So
records match ``dvc.lock`` and the cache exactly, whatever cache layout or hash format DVC uses.

DVC and MLflow are imported inside the functions that use them, not at the top: they take seconds to import, and
most callers of this module never reach them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from synthtext.ops import tracking
from synthtext.ops.config import TRAINING_STAGES, Params
from synthtext.ops.errors import SynthTextError
from synthtext.ops.hashing import folder_md5, stable_hash
from synthtext.ops.tracking import git_state

if TYPE_CHECKING:
    from dvc.ignore import DvcIgnoreFilter
    from dvc.repo import Repo
    from dvc.stage import PipelineStage
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.obj import HashFile

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # records are small: no progress bars


# ---------------------------------------------------------------- DVC's hashes and cache


@contextmanager
def _dvc_repo(repo: Path) -> Iterator[Repo]:
    """The DVC repository at ``repo``, closed afterwards. Loading its index reads dvc.yaml, params.yaml
    and dvc.lock and takes no lock, so this works inside a stage that ``dvc repro`` runs (``record``
    does), which holds the repository lock."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        opened = Repo(os.fspath(repo))
    except NotDvcRepoError as exc:
        raise SynthTextError(f"{repo}: not a DVC repository (no .dvc folder)") from exc
    with opened as dvc_repo:
        yield dvc_repo


def _build(path: Path, ignore: DvcIgnoreFilter | None = None) -> HashFile:
    """DVC's hash object of a file or a directory (a ``Tree`` for a directory), built by the code that
    ``dvc add`` and ``dvc status`` use, as a dry run staged in memory: nothing is written to a cache.

    Kept on purpose: no DVC state db (its hash cache keyed by inode, mtime and size), so every file is
    read and hashed. The state db belongs to the repository that ``dvc repro`` may be writing at the
    same time, and a content hash cannot miss an edit that kept size and mtime."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs import LocalFileSystem, MemoryFileSystem

    staging = HashFileDB(MemoryFileSystem(), "/synthtext-lineage", hash_name="md5")
    _, _, obj = build(staging, os.path.abspath(path), LocalFileSystem(), "md5", ignore=ignore, dry_run=True)
    return obj


def dvc_hash(path: Path) -> str:
    """The hash ``dvc.lock`` records for a file or directory (a directory's ends in ``.dir``). The path
    may lie outside any DVC repository (``data.source``), so no .dvcignore applies here."""
    return _build(Path(path)).hash_info.value


def _files(tree: HashFile) -> dict[str, str]:
    """A directory's hash object as ``{relative path: md5}``."""
    return {"/".join(key): hash_info.value for key, _, hash_info in tree}


def cached_manifest(cache: HashFileDB, md5: str) -> dict[str, str] | None:
    """The files (``{relative path: md5}``) that the ``.dir`` object ``md5`` in the DVC cache lists; None
    when ``md5`` is a file's hash or its ``.dir`` object is missing from the cache or unreadable."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree
    from dvc_objects.errors import ObjectFormatError

    if not md5.endswith(".dir"):
        return None
    try:
        return _files(Tree.load(cache, HashInfo("md5", md5)))
    except (FileNotFoundError, ObjectFormatError):
        return None


# ---------------------------------------------------------------- the pipeline as DVC sees it


def _entry(stage: PipelineStage) -> dict:
    """A stage's dvc.lock entry as DVC loaded it onto the stage: ``{path: md5}`` of its deps and outs
    (sorted by path, as dvc.lock lists them) and the values of its params.yaml params."""
    from dvc.dependency import ParamsDependency

    def hashes(items: list) -> dict[str, str]:
        return dict(sorted((i.def_path, i.hash_info.value) for i in items if i.hash_info))

    params = [d for d in stage.deps if isinstance(d, ParamsDependency)]
    values = next((d.hash_info.value for d in params
                   if d.def_path == ParamsDependency.DEFAULT_PARAMS_FILE and d.hash_info), {})
    return {"deps": hashes([d for d in stage.deps if not isinstance(d, ParamsDependency)]),
            "outs": hashes(stage.outs), "params": dict(sorted(values.items()))}


def _name(dvc_repo: Repo, stage: PipelineStage) -> str:
    """``name`` for a stage of the project's dvc.yaml, ``sub/dvc.yaml:name`` for others, whatever the
    working directory (DVC's ``stage.addressing`` is relative to it)."""
    dvcfile = Path(os.path.relpath(stage.path, dvc_repo.root_dir)).as_posix()
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def _pipeline(dvc_repo: Repo) -> dict[str, dict]:
    """What :func:`stage_graph` returns, from an open repository."""
    import networkx as nx
    from dvc.dependency import ParamsDependency
    from dvc.stage import PipelineStage

    index = dvc_repo.index
    graph = index.graph  # an edge per stage -> stage producing one of its deps, matched by DVC itself
    stages = {}
    for stage in index.stages:
        if not isinstance(stage, PipelineStage):
            continue  # .dvc files track data; they are not stages of the pipeline
        params = [d for d in stage.deps if isinstance(d, ParamsDependency)]
        stages[_name(dvc_repo, stage)] = {
            "deps": [d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)],
            "outs": [o.def_path for o in stage.outs],
            "uncached": [o.def_path for o in stage.outs if not o.use_cache],
            "params": [key for d in params if d.def_path == ParamsDependency.DEFAULT_PARAMS_FILE for key in d.params],
            # depth-first post-order from the stage: upstream stages before the ones that use them
            "upstream": [_name(dvc_repo, s) for s in nx.dfs_postorder_nodes(graph, stage)
                         if s is not stage and isinstance(s, PipelineStage)],
            "lock": _entry(stage),
        }
    return stages


def stage_graph(repo: Path) -> dict[str, dict]:
    """The dvc.yaml stages as DVC loads them (``${}`` interpolated): deps, outs (incl. metrics and
    plots), uncached outs, params keys, the upstream stages in pipeline order, and the dvc.lock entry."""
    with _dvc_repo(Path(repo)) as dvc_repo:
        return _pipeline(dvc_repo)


def upstream(graph: dict[str, dict], stage: str) -> list[str]:
    """Stages whose outputs ``stage`` depends on, directly or not, in pipeline order."""
    return list(graph[stage]["upstream"])


# ---------------------------------------------------------------- recording


def record(repo: Path, stage: str, params: Params, inputs: list[str], train_clips: list[str]) -> dict:
    """The lineage of a training stage run, from the current dvc.yaml, dvc.lock and git state; the params
    as params.yaml holds them (``params.raw``), as dvc.lock does."""
    repo = Path(repo)
    graph = stage_graph(repo)
    chain = {}
    for name in upstream(graph, stage):
        entry = dict(graph[name]["lock"])
        summary = repo / "metrics" / f"{name}.json"
        if name in TRAINING_STAGES and summary.is_file():
            done = json.loads(summary.read_text())
            entry.update(mlflow_run_id=done.get("mlflow_run_id"), model_md5=done.get("model_md5"))
        chain[name] = entry
    produced = {path: md5 for entry in chain.values() for path, md5 in entry["outs"].items()}
    source = params.data.source
    raw = next((md5 for e in chain.values() for p, md5 in e["deps"].items() if p == source), "")
    git = git_state(repo)
    return {"stage": stage, "commit": git["git_commit"], "dirty": git["git_dirty"] == "True",
            "params": {s: params.raw.get(s) for s in graph[stage]["params"]},
            "inputs": {path: produced.get(path, "") for path in inputs}, "upstream": chain,
            "train_clips": sorted(train_clips), "raw_source": source, "raw_md5": raw,
            "params_md5": pipeline_params_hash(params.raw)}


def pipeline_params_hash(raw: dict) -> str:
    """What retraining compares: the sections of params.yaml as read (``Params.raw``) that shape the data
    and the models (not the ones that only evaluate, gate or schedule)."""
    return stable_hash({k: v for k, v in sorted(raw.items()) if k not in ("evaluate", "promote", "retrain")})


# ---------------------------------------------------------------- checking


@dataclass
class Check:
    ok: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def expect(self, condition: bool, good: str, bad: str) -> None:
        (self.ok if condition else self.problems).append(good if condition else bad)


def _check_output(dvc_repo: Repo, path: str, md5: str, report: Check, cached: bool = True) -> None:
    """A recorded output: in the DVC cache, and unchanged in the work tree (hashed the way ``dvc status``
    hashes it, .dvcignore applied)."""
    cache = dvc_repo.cache.local  # where DVC 3 keeps md5-hashed objects (dvc.lock's ``hash: md5``)
    manifest = cached_manifest(cache, md5)
    if cached and md5.endswith(".dir"):
        report.expect(manifest is not None, f"{path}: {md5} in the DVC cache",
                      f"{path}: {md5} is not in the DVC cache (cannot be restored)")
        if manifest is not None:
            missing = [name for name, oid in manifest.items() if not cache.exists(oid)]
            report.expect(not missing, f"{path}: all {len(manifest)} files cached",
                          f"{path}: {len(missing)} files missing from the DVC cache, e.g. {missing[:3]}")
    elif cached:
        report.expect(cache.exists(md5), f"{path}: {md5} in the DVC cache",
                      f"{path}: {md5} is not in the DVC cache")
    target = Path(dvc_repo.root_dir) / path
    if not target.exists():
        report.problems.append(f"{path}: missing from the work tree (dvc checkout restores it)")
        return
    if manifest is not None and target.is_dir():
        recorded, current = manifest, _files(_build(target, dvc_repo.dvcignore))
        changed = sorted(p for p in recorded.keys() & current.keys() if recorded[p] != current[p])
        for name in changed:
            report.problems.append(f"{path}/{name}: hash mismatch (recorded {recorded[name]}, "
                                   f"now {current[name]})")
        for name in sorted(recorded.keys() - current.keys()):
            report.problems.append(f"{path}/{name}: missing from the work tree")
        for name in sorted(current.keys() - recorded.keys()):
            report.problems.append(f"{path}/{name}: not in the recorded data")
        if not (changed or recorded.keys() ^ current.keys()):
            report.ok.append(f"{path}: work tree matches {md5}")
    else:
        now = _build(target, dvc_repo.dvcignore).hash_info.value
        report.expect(now == md5, f"{path}: work tree matches {md5}", f"{path}: hash mismatch (recorded {md5}, "
                      f"now {now})")


def check(repo: Path, lineage: dict) -> Check:
    """Every recorded stage input/output against dvc.lock, the DVC cache and the work tree; the
    recorded commit against git.

    Kept by hand rather than ``Repo.status()``: that compares the work tree with the *current* dvc.lock,
    not with the hashes recorded at training time, reports whole outputs rather than the files that
    differ, and takes the repository lock (so it fails while a ``dvc repro`` runs). The pieces are
    DVC's: the stages and dvc.lock from its index, the hashes from its builder, the cache lookups from
    its cache object."""
    repo = Path(repo)
    report = Check()
    done = subprocess.run(["git", "cat-file", "-e", f"{lineage['commit']}^{{commit}}"], cwd=repo,
                          capture_output=True)
    report.expect(done.returncode == 0, f"git commit {lineage['commit'][:12]} present",
                  f"git commit {lineage['commit']} is not in this repository")
    report.expect(not lineage["dirty"], "trained from a clean work tree",
                  "trained with uncommitted changes: the code is not exactly reproducible from the commit")
    with _dvc_repo(repo) as dvc_repo:
        graph = _pipeline(dvc_repo)
        uncached = {p for s in graph.values() for p in s["uncached"]}
        for name, entry in lineage["upstream"].items():
            current = graph[name]["lock"] if name in graph else {"deps": {}, "outs": {}, "params": {}}
            for kind in ("deps", "outs"):
                for path, md5 in entry[kind].items():
                    now = current[kind].get(path)
                    report.expect(now == md5, f"{name}: {path} as in dvc.lock",
                                  f"{name}: {path} was {md5} when trained, dvc.lock now says {now}")
            report.expect(current["params"] == entry["params"], f"{name}: params as in dvc.lock",
                          f"{name}: params changed since training")
            for path, md5 in entry["outs"].items():
                _check_output(dvc_repo, path, md5, report, cached=path not in uncached)
    return report


# ---------------------------------------------------------------- finding records


def load_for(ref: str, repo: Path) -> tuple[dict, dict]:
    """(lineage record, description) of a registry version/alias URI or a model folder."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking.use_store(repo)
    client = MlflowClient()
    try:
        if ref.startswith("models:/"):
            version = tracking.registry_version(client, ref)
            run_id = version.run_id
            about = {"model": version.name, "version": version.version, "aliases": list(version.aliases)}
        else:
            folder = Path(ref)
            if not folder.is_dir():
                raise SynthTextError(f"{ref}: not a model folder or a models:/ URI")

            md5 = folder_md5(folder)
            runs = client.search_runs([tracking.setup(repo)], f"tags.model_md5 = '{md5}'")
            if not runs:
                raise SynthTextError(f"no MLflow run produced {ref} (model hash {md5}): was it trained here?")
            run_id = runs[0].info.run_id
            about = {"folder": str(folder), "model_md5": md5}
        path = client.download_artifacts(run_id, "lineage.json")
    except MlflowException as exc:
        raise SynthTextError(f"{ref}: {str(exc).splitlines()[0]}") from exc
    run = client.get_run(run_id)
    about.update(run_id=run_id, stage=run.data.tags.get("stage", "?"))
    return json.loads(Path(path).read_text()), about


def versions_with_clip(repo: Path, clip: str) -> list[dict]:
    """Registered model versions whose training data contained ``clip``."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking.use_store(repo)
    client = MlflowClient()
    found = []
    for name in tracking.MODEL_NAMES.values():
        try:
            versions = client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            continue
        for version in sorted(versions, key=lambda v: int(v.version)):
            try:
                record_ = json.loads(Path(client.download_artifacts(version.run_id, "lineage.json")).read_text())
            except (MlflowException, OSError):
                continue
            if clip in record_.get("train_clips", []):
                aliases = client.get_model_version(name, version.version).aliases  # search omits aliases
                found.append({"model": name, "version": version.version, "aliases": sorted(aliases),
                              "run_id": version.run_id})
    return found
