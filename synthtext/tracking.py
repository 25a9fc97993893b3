"""MLflow tracking and the model registry, per the design contracts.

Tracking URI: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<repo>/mlflow.db``; artifacts under
``<repo>/mlartifacts``; experiment ``synthtext``. Registered models hold the same files as the DVC
model folder (``model.pt`` state_dict + ``config.json``), never pickled modules.

MLflow is imported inside the functions that use it, not at the top: it takes seconds to import, and
most callers of this module never reach it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

EXPERIMENT = "synthtext"
MODEL_NAMES = {"emotion": "synthtext-emotion", "generator": "synthtext-generator"}
CHAMPION_URI = f"models:/{MODEL_NAMES['generator']}@champion"  # the generator that evaluate promoted last


def tracking_uri(repo: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(repo).resolve() / 'mlflow.db'}"


def setup(repo: Path) -> str:
    """Point MLflow at the project store and make sure the experiment exists; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(repo))
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        artifacts = (Path(repo).resolve() / "mlartifacts").as_uri()
        return mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    return experiment.experiment_id


def git_state(repo: Path) -> dict[str, str]:
    """The commit and whether the work tree has uncommitted changes."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    # dvc.lock and the .gitignore files DVC maintains are written (and staged) by `dvc repro` itself
    # while the pipeline runs: they are the lineage record, not a change to the code.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)dvc.lock",
                  ":(exclude,glob)**/.gitignore", ":(exclude).gitignore")
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
    client.set_registered_model_alias(name, alias, version.version)
    return version.version


def close_killed_runs(experiment_id: str, stage: str) -> list[str]:
    """Runs of ``stage`` still marked RUNNING when a new one starts belong to processes that were
    killed (a finished or failed stage closes its run): mark them KILLED and return their ids. The new
    run resumes from the stage's checkpoint and logs the history up to it again, so it alone holds
    the whole curve."""
    import mlflow  # imported here, not at the top: it takes seconds to import

    client = mlflow.MlflowClient()
    found = client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.stage = '{stage}'")
    for run in found:
        client.set_tag(run.info.run_id, "killed", "the process ended without closing the run; see the next run")
        client.set_terminated(run.info.run_id, status="KILLED")
    return [run.info.run_id for run in found]


def registry_version(client, uri: str):
    """The model version a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names (MlflowException
    when there is none)."""
    name, _, alias = uri[len("models:/"):].partition("@")
    if alias:
        return client.get_model_version_by_alias(name, alias)
    name, _, number = name.rpartition("/")
    return client.get_model_version(name, number)
