"""Experiment lineage: what produced a model, recorded when it is trained, checked when asked.

At training time :func:`record` writes, from ``dvc.yaml`` (the stage graph) and ``dvc.lock`` (the
hashes of what the upstream stages produced and consumed), every upstream stage's inputs, outputs,
params and MLflow run, plus the git commit and the training clip ids. :func:`check` compares such a
record with the current ``dvc.lock``, the DVC cache and the files in the work tree, and lists
every item that differs. Hashes are DVC's own (a directory's hash is the md5 of its sorted file
manifest), so they can be matched against ``dvc.lock`` and the cache directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from synthtext.errors import SynthTextError
from synthtext.hashing import file_md5, stable_hash

TRAINING_STAGES = ("pretrain_emotion", "pretrain_generator", "train_gan")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # records are small: no progress bars


# ---------------------------------------------------------------- DVC's hashes


def dir_manifest(folder: Path) -> list[dict]:
    """DVC's manifest of a directory: ``[{"md5", "relpath"}]`` sorted by path."""
    entries = [{"md5": file_md5(p), "relpath": p.relative_to(folder).as_posix()}
               for p in folder.rglob("*") if p.is_file()]
    return sorted(entries, key=lambda e: e["relpath"])


def manifest_hash(entries: list[dict]) -> str:
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def dvc_hash(path: Path) -> str:
    """The hash ``dvc.lock`` records for a file or directory."""
    if path.is_dir():
        return manifest_hash(dir_manifest(path))
    return file_md5(path)


def cache_file(repo: Path, md5: str) -> Path:
    return repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def cached_manifest(repo: Path, md5: str) -> list[dict] | None:
    path = cache_file(repo, md5)
    return json.loads(path.read_text()) if md5.endswith(".dir") and path.is_file() else None


# ---------------------------------------------------------------- the pipeline as DVC sees it


def _lock_entries(repo: Path) -> dict[str, dict]:
    lock = repo / "dvc.lock"
    if not lock.is_file():
        return {}
    return (yaml.safe_load(lock.read_text()) or {}).get("stages", {})


def _paths(items: list) -> list[str]:
    return [next(iter(i)) if isinstance(i, dict) else str(i) for i in items or []]


def stage_graph(repo: Path) -> dict[str, dict]:
    """dvc.yaml stages: their deps, outs (incl. metrics and plots) and params sections."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    stages = {}
    for name, stage in spec.get("stages", {}).items():
        items = [*(stage.get("outs") or []), *(stage.get("metrics") or []), *(stage.get("plots") or [])]
        uncached = [next(iter(i)) for i in items if isinstance(i, dict) and
                    next(iter(i.values()), {}).get("cache") is False]
        stages[name] = {"deps": _paths(stage.get("deps")), "outs": _paths(items), "uncached": uncached,
                        "params": _paths(stage.get("params"))}
    return stages


def _resolve(path: str, params: dict) -> str:
    """``${data.source}`` and the like, from params.yaml."""
    while "${" in path:
        start = path.index("${")
        end = path.index("}", start)
        value: object = params
        for key in path[start + 2:end].split("."):
            value = value[key]
        path = path[:start] + str(value) + path[end + 1:]
    return path


def upstream(graph: dict[str, dict], stage: str, params: dict) -> list[str]:
    """Stages whose outputs ``stage`` depends on, directly or not, in pipeline order."""
    producers = {_resolve(out, params): name for name, s in graph.items() for out in s["outs"]}
    seen: list[str] = []

    def visit(name: str) -> None:
        for dep in graph[name]["deps"]:
            producer = producers.get(_resolve(dep, params))
            if producer and producer not in seen:
                visit(producer)
                seen.append(producer)

    visit(stage)
    return seen


def _entry(lock: dict) -> dict:
    hashes = lambda items: {i["path"]: i.get("md5", "") for i in items or []}  # noqa: E731
    return {"deps": hashes(lock.get("deps")), "outs": hashes(lock.get("outs")),
            "params": (lock.get("params") or {}).get("params.yaml", {})}


def git_state(repo: Path) -> dict:
    from synthtext.tracking import git_state as tracked

    state = tracked(repo)
    return {"commit": state["git_commit"], "dirty": state["git_dirty"] == "True"}


# ---------------------------------------------------------------- recording


def record(repo: Path, stage: str, params: dict, inputs: list[str], train_clips: list[str]) -> dict:
    """The lineage of a training stage run, from the current dvc.yaml, dvc.lock and git state."""
    repo = Path(repo)
    graph, lock = stage_graph(repo), _lock_entries(repo)
    chain = {}
    for name in upstream(graph, stage, params):
        entry = _entry(lock.get(name, {}))
        summary = repo / "metrics" / f"{name}.json"
        if name in TRAINING_STAGES and summary.is_file():
            done = json.loads(summary.read_text())
            entry.update(mlflow_run_id=done.get("mlflow_run_id"), model_md5=done.get("model_md5"))
        chain[name] = entry
    produced = {path: md5 for entry in chain.values() for path, md5 in entry["outs"].items()}
    source = params.get("data", {}).get("source", "")
    raw = next((md5 for e in chain.values() for p, md5 in e["deps"].items() if p == source), "")
    return {"stage": stage, **git_state(repo), "params": {s: params.get(s) for s in graph[stage]["params"]},
            "inputs": {path: produced.get(path, "") for path in inputs}, "upstream": chain,
            "train_clips": sorted(train_clips), "raw_source": source, "raw_md5": raw,
            "params_md5": pipeline_params_hash(params)}


def pipeline_params_hash(params: dict) -> str:
    """What retraining compares: the params sections that shape the data and the models (not the ones
    that only evaluate, gate or schedule)."""
    return stable_hash({k: v for k, v in sorted(params.items()) if k not in ("evaluate", "promote", "retrain")})


# ---------------------------------------------------------------- checking


@dataclass
class Check:
    ok: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def expect(self, condition: bool, good: str, bad: str) -> None:
        (self.ok if condition else self.problems).append(good if condition else bad)


def _check_output(repo: Path, path: str, md5: str, report: Check, cached: bool = True) -> None:
    """A recorded output: still what dvc.lock says, in the DVC cache, and unchanged in the work tree."""
    manifest = cached_manifest(repo, md5)
    if cached and md5.endswith(".dir"):
        report.expect(manifest is not None, f"{path}: {md5} in the DVC cache",
                      f"{path}: {md5} is not in the DVC cache (cannot be restored)")
        if manifest is not None:
            missing = [e["relpath"] for e in manifest if not cache_file(repo, e["md5"]).is_file()]
            report.expect(not missing, f"{path}: all {len(manifest)} files cached",
                          f"{path}: {len(missing)} files missing from the DVC cache, e.g. {missing[:3]}")
    elif cached:
        report.expect(cache_file(repo, md5).is_file(), f"{path}: {md5} in the DVC cache",
                      f"{path}: {md5} is not in the DVC cache")
    target = repo / path
    if not target.exists():
        report.problems.append(f"{path}: missing from the work tree (dvc checkout restores it)")
        return
    if manifest is not None and target.is_dir():
        recorded = {e["relpath"]: e["md5"] for e in manifest}
        current = {e["relpath"]: e["md5"] for e in dir_manifest(target)}
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
        now = dvc_hash(target)
        report.expect(now == md5, f"{path}: work tree matches {md5}", f"{path}: hash mismatch (recorded {md5}, "
                      f"now {now})")


def check(repo: Path, lineage: dict) -> Check:
    """Every recorded stage input/output against dvc.lock, the DVC cache and the work tree; the
    recorded commit against git."""
    repo = Path(repo)
    report = Check()
    lock = _lock_entries(repo)
    uncached = {p for s in stage_graph(repo).values() for p in s["uncached"]}
    done = subprocess.run(["git", "cat-file", "-e", f"{lineage['commit']}^{{commit}}"], cwd=repo,
                          capture_output=True)
    report.expect(done.returncode == 0, f"git commit {lineage['commit'][:12]} present",
                  f"git commit {lineage['commit']} is not in this repository")
    report.expect(not lineage["dirty"], "trained from a clean work tree",
                  "trained with uncommitted changes: the code is not exactly reproducible from the commit")
    for name, entry in lineage["upstream"].items():
        current = _entry(lock.get(name, {}))
        for kind in ("deps", "outs"):
            for path, md5 in entry[kind].items():
                now = current[kind].get(path)
                report.expect(now == md5, f"{name}: {path} as in dvc.lock",
                              f"{name}: {path} was {md5} when trained, dvc.lock now says {now}")
        report.expect(current["params"] == entry["params"], f"{name}: params as in dvc.lock",
                      f"{name}: params changed since training")
        for path, md5 in entry["outs"].items():
            _check_output(repo, path, md5, report, cached=path not in uncached)
    return report


# ---------------------------------------------------------------- finding records


def load_for(ref: str, repo: Path) -> tuple[dict, dict]:
    """(lineage record, description) of a registry version/alias URI or a model folder."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from synthtext import tracking

    mlflow.set_tracking_uri(tracking.tracking_uri(repo))
    client = MlflowClient()
    try:
        if ref.startswith("models:/"):
            name, _, which = ref[len("models:/"):].partition("@")
            if which:
                version = client.get_model_version_by_alias(name, which)
            else:
                name, _, number = ref[len("models:/"):].partition("/")
                version = client.get_model_version(name, number)
            run_id = version.run_id
            about = {"model": name, "version": version.version, "aliases": list(version.aliases)}
        else:
            folder = Path(ref)
            if not folder.is_dir():
                raise SynthTextError(f"{ref}: not a model folder or a models:/ URI")
            from synthtext.hashing import folder_md5

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
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from synthtext import tracking

    mlflow.set_tracking_uri(tracking.tracking_uri(repo))
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
