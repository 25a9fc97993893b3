"""The MLflow side of a stage: its run's life, the registry left clean, a tracking server that is down."""

from __future__ import annotations

import socket

import pytest

from synthtext.ops import tracking
from synthtext.ops.errors import SynthTextError


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path, tracking.setup(tmp_path)


def test_a_stage_run_finishes_or_fails(store):
    from mlflow.tracking import MlflowClient

    repo, experiment = store
    with tracking.stage_run(repo, experiment, "split") as run:
        run.tags({"a": 1})
        run.params({f"p{i}": i for i in range(150)})  # over log_batch's 100 per request
        run.metrics({"loss": 0.5}, step=3)
    client = MlflowClient()
    done = client.get_run(run.id)
    assert done.info.status == "FINISHED" and done.data.tags["stage"] == "split" and len(done.data.params) == 150
    with pytest.raises(ValueError), tracking.stage_run(repo, experiment, "split") as failed:
        raise ValueError("boom")
    assert client.get_run(failed.id).info.status == "FAILED"


def test_a_killed_run_leaves_no_model_version(store, tmp_path):
    """A run that died between registering a version and finishing (a server that went away, a kill):
    the next run of the stage marks it KILLED and removes the version it left."""
    from mlflow.tracking import MlflowClient

    repo, experiment = store
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    client = MlflowClient()
    dead = client.create_run(experiment, run_name="train_gan", tags={"stage": "train_gan"})
    version = tracking.register_folder(dead.info.run_id, folder, "generator")
    assert client.get_model_version("synthtext-generator", version)
    assert tracking.close_killed_runs(experiment, "train_gan") == [dead.info.run_id]
    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    assert client.search_model_versions("name = 'synthtext-generator'") == []


def test_a_tracking_server_that_is_down_is_one_clear_error(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    with pytest.raises(SynthTextError, match=f"tracking server at http://127.0.0.1:{port} does not answer"):
        tracking.setup(tmp_path)
    from synthtext.inference.infer import load_generator

    with pytest.raises(SynthTextError, match="does not answer: start it"):
        load_generator("models:/synthtext-generator@champion", tmp_path)
