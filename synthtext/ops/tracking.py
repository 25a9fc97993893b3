"""MLflow tracking and the model registry, per the design contracts.

Tracking URI: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<repo>/mlflow.db``; artifacts under
``<repo>/mlartifacts`` (for a tracking server, ``http://...``: where the server keeps them, e.g.
``make mlflow``); experiment ``synthtext``. Registered models hold the same files as the DVC
model folder (``model.pt`` state_dict + ``config.json``), never pickled modules.

MLflow is imported inside the functions that use it, not at the top: it takes seconds to import, and
most callers of this module never reach it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from synthtext.ops.errors import SynthTextError

EXPERIMENT = "synthtext"
MODEL_NAMES = {"emotion": "synthtext-emotion", "generator": "synthtext-generator"}
CHAMPION_URI = f"models:/{MODEL_NAMES['generator']}@champion"  # the generator that evaluate promoted last


def tracking_uri(repo: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(repo).resolve() / 'mlflow.db'}"


class TrackingUnavailable(SynthTextError):
    """The MLflow tracking server named by ``MLFLOW_TRACKING_URI`` does not answer."""


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def answers(uri: str, timeout: float = 5.0) -> bool:
    """Whether the tracking store can be reached (a local store always can: only a server can be down)."""
    if not is_server(uri):
        return True
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as reply:
            return reply.status == 200
    except OSError:
        return False


def require_server(uri: str) -> None:
    if not answers(uri):
        raise TrackingUnavailable(f"the MLflow tracking server at {uri} does not answer: start it (make mlflow "
                                  "starts one at http://127.0.0.1:5000), or unset MLFLOW_TRACKING_URI to use the "
                                  "project's own store (mlflow.db)")


def use_store(repo: Path) -> str:
    """Point MLflow at the project's tracking store (checked first when it is a server); returns its URI."""
    import mlflow

    uri = tracking_uri(repo)
    require_server(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def setup(repo: Path) -> str:
    """Point MLflow at the project store and make sure the experiment exists; returns its id. A tracking
    server that does not answer is one clear error here, before any work."""
    import mlflow

    uri = use_store(repo)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        if is_server(uri):  # the server decides where artifacts go (its --artifacts-destination)
            return mlflow.create_experiment(EXPERIMENT)
        artifacts = (Path(repo).resolve() / "mlartifacts").as_uri()
        return mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    return experiment.experiment_id


class StageRun:
    """One stage's MLflow run, written through the client. (The fluent API's process-wide active run is
    ended again at exit, which against a server that went away means minutes of retries.)"""

    def __init__(self, client, run_id: str):
        self.client, self.id = client, run_id

    def tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for start in range(0, len(items), 100):  # log_batch takes at most 100 tags or params per call
            self.client.log_batch(self.id, tags=items[start:start + 100])

    def params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.id, params=items[start:start + 100])

    def metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        log_metrics(self.client, self.id, metrics, step)

    def artifact(self, path: Path | str, folder: str | None = None) -> None:
        self.client.log_artifact(self.id, str(path), folder)

    def artifacts(self, path: Path | str, folder: str | None = None) -> None:
        self.client.log_artifacts(self.id, str(path), folder)

    def dict(self, data: dict, name: str) -> None:
        self.client.log_dict(self.id, data, name)


def log_metrics(client, run_id: str, metrics: dict[str, float], step: int) -> None:
    """All of one step's metrics in one request."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start:start + 1000])


@contextlib.contextmanager
def stage_run(repo: Path, experiment_id: str, stage: str) -> Iterator[StageRun]:
    """A run named ``stage``, FINISHED when the block ends, FAILED (or KILLED on Ctrl-C) when it raises.
    When the tracking server stopped answering meanwhile, the run stays RUNNING (the next run of the
    stage marks it KILLED, see ``close_killed_runs``) and the error says how to go on."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(repo)
    client = MlflowClient(uri)
    run = client.create_run(experiment_id, run_name=stage, tags={"stage": stage})
    try:
        yield StageRun(client, run.info.run_id)
    except BaseException as exc:
        if not answers(uri):
            raise TrackingUnavailable(
                f"the MLflow tracking server at {uri} stopped answering during {stage} ({type(exc).__name__}): "
                "the stage stopped. Start the server again and run `dvc repro`: a training stage resumes from its "
                "last checkpoint, and the stopped run is marked KILLED (any model version it registered is removed)"
            ) from exc
        client.set_terminated(run.info.run_id, "FAILED" if isinstance(exc, Exception) else "KILLED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")


def git_state(repo: Path) -> dict[str, str]:
    """The commit and whether the work tree has uncommitted changes."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    # dvc.lock and the .gitignore files DVC maintains are written (and staged) by `dvc repro` itself
    # while the pipeline runs, and so are the stages' metrics (outputs that teams commit with dvc.lock,
    # see docs/operations.md, "A DVC remote and an audit"): they are the pipeline's record, not a change to the code.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)dvc.lock",
                  ":(exclude)metrics", ":(exclude,glob)**/.gitignore", ":(exclude).gitignore")
    return {"git_commit": git("rev-parse", "HEAD") or "unknown", "git_dirty": str(bool(changed))}


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    """Nested params -> ``section.key`` strings for mlflow.log_params."""
    out = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


def register_folder(run_id: str, folder: Path, kind: str, alias: str = "candidate") -> str:
    """Log a model folder as run artifacts, register it as a new version of the project's model
    and point ``alias`` at it. Returns the version number."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    artifact_path = f"model-{kind}"
    client.log_artifacts(run_id, str(folder), artifact_path)
    name = MODEL_NAMES[kind]
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(name, source, run_id=run_id)
    try:
        client.set_registered_model_alias(name, alias, version.version)
    except BaseException:  # no version without its alias; if the server is gone, close_killed_runs removes it
        with contextlib.suppress(Exception):
            client.delete_model_version(name, version.version)
        raise
    return version.version


def close_killed_runs(experiment_id: str, stage: str) -> list[str]:
    """Runs of ``stage`` still marked RUNNING when a new one starts belong to processes that were
    killed (a finished or failed stage closes its run): mark them KILLED and return their ids. The new
    run resumes from the stage's checkpoint and logs the history up to it again, so it alone holds
    the whole curve.

    A model version such a run registered before it died (a half-done registration) is deleted: only
    finished runs leave versions in the registry."""
    import mlflow  # imported here, not at the top: it takes seconds to import

    client = mlflow.MlflowClient()
    found = client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.stage = '{stage}'")
    for run in found:
        client.set_tag(run.info.run_id, "killed", "the process ended without closing the run; see the next run")
        client.set_terminated(run.info.run_id, status="KILLED")
        for name in MODEL_NAMES.values():
            for version in client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'"):
                client.delete_model_version(name, version.version)
    return [run.info.run_id for run in found]


def registry_version(client, uri: str):
    """The model version a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names (MlflowException
    when there is none)."""
    name, _, alias = uri[len("models:/"):].partition("@")
    if alias:
        return client.get_model_version_by_alias(name, alias)
    name, _, number = name.rpartition("/")
    return client.get_model_version(name, number)
