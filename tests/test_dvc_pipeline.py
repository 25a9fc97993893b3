"""`dvc repro` end to end in a temporary git repository: the real stages, DVC and Prefect."""

from __future__ import annotations

import contextlib
import hashlib
import json
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

from synthtext.ops.prefect_server import free_port, start_server, stop_server, wait_healthy
from tests.conftest import REPO

pytestmark = pytest.mark.slow
TRAINING = ("pretrain_emotion", "pretrain_generator", "train_gan")


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
def prefect_api(tmp_path_factory):
    """One real Prefect server for all the stage runs (saves each stage starting a temporary one), started
    as ``flows.with_server`` starts it (its background services off)."""
    port = free_port()
    server = start_server(tmp_path_factory.mktemp("prefect-server"), port)
    url = f"http://127.0.0.1:{port}/api"
    try:
        assert wait_healthy(url, server, 90), "prefect server did not start"
        yield url
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_api) -> tuple[Path, dict]:
    """A copy of this repository's files in a fresh git repo, and an environment to run DVC in."""
    work = tmp_path_factory.mktemp("project")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if (REPO / name).is_file() and name != "dvc.lock":
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(work / ".prefect"), "PREFECT_API_URL": prefect_api}
    env.pop("MLFLOW_TRACKING_URI", None)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["sample"].update(identities=2, sentences=1)  # 12 clips keep the test short
    small = {"profile": "tiny", "batch": 2, "workers": 0, "log_every": 1}
    for stage in TRAINING:  # a few steps of the tiny profile: the real stages, made small
        params[stage].update(steps=4, checkpoint_every=2, image_every=2)
    params["pretrain_emotion"].update(small)
    params["generator"].update(small)  # the keys both generator stages share
    # One held-out photo, measured on one frame a video at 128 px: the stage's wiring, at a third of its cost
    # (the held-out measurements themselves are tested in test_evaluation).
    params["evaluate"].update(seconds=1.5, max_clips=3, sample_clips=1, size=128, face_frames=1)
    for photo in sorted((work / "assets/heldout").iterdir())[1:]:
        photo.unlink()
    # Four training steps cannot beat the static baseline; the gate's refusals are tested on their own.
    params["promote"]["against_static"] = False
    params["promote"]["outside_judge"] = False  # a 4-step model shows no emotion to a reader of real faces
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        run(cmd, work, env)
    return work, env


def test_retrain_trains_and_promotes_then_does_nothing(project, prefect_server, monkeypatch):
    """The scheduled flow, run twice in this process: the first run has no champion to compare with,
    so it runs the pipeline (dvc repro: data, training, evaluate, the gate) and promotes; the second
    finds the raw data and params unchanged and trains nothing."""
    from flows.retrain import retrain

    work, env = project
    for key in ("PREFECT_API_URL", "PREFECT_HOME", "PATH"):  # for the stages dvc runs
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = retrain(str(work))
    assert first["action"] == "retrained" and first["reasons"] == ["there is no champion yet"]
    assert first["promotion"]["promoted"] is True
    model = work / "models/generator/model.pt"
    trained_at = model.stat().st_mtime_ns
    second = retrain(str(work))
    assert second["action"] == "nothing" and "unchanged" in second["reason"]
    assert model.stat().st_mtime_ns == trained_at

    evaluated = json.loads((work / "metrics/evaluate.json").read_text())
    assert {"generated", "static", "real"} <= evaluated.keys()
    assert evaluated["static"]["emotion_accuracy"] == pytest.approx(1 / 6)
    assert evaluated["real"]["sync_r"] > evaluated["static"]["sync_r"]
    page = (work / "reports/index.html").read_text()
    assert "static" in page and "emotion_HAP.mp4" in page and "promoted" in page
    assert (work / "reports/emotion_SAD.png").is_file() and (work / "reports/emotion_SAD.mp4").is_file()
    shown = run(["dvc", "metrics", "show", "--json"], work, env).stdout
    assert "metrics/evaluate.json" in shown and '"static"' in shown and '"real"' in shown

    # the evaluator is stored with the version it judged, and inference finds it from the alias
    from synthtext.evaluation.evaluator import EmotionEvaluator
    from synthtext.inference.infer import load_generator
    from synthtext.inference.selfcheck import attach_evaluator

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    champion = attach_evaluator(load_generator("models:/synthtext-generator@champion", work), None, work)
    stored = EmotionEvaluator.load(work / "reports/evaluator.json")
    assert champion.evaluator is not None and "stored with v1" in champion.evaluator_note
    assert np.array_equal(champion.evaluator.coef, stored.coef)


def test_lineage_of_the_champion(project):
    work, env = project
    lineage = [sys.executable, "-m", "synthtext.cli", "lineage", "--repo", str(work)]
    cli_env = {**env, "PYTHONPATH": str(REPO)}
    ok = run([*lineage, "models:/synthtext-generator@champion"], work, cli_env)
    assert "reproducible as recorded" in ok.stdout and "<- align" in ok.stdout
    detail = json.loads(run([*lineage, "models:/synthtext-generator@champion", "--json"], work, cli_env).stdout)
    assert detail["reproducible"] and set(detail["lineage"]["upstream"]) >= {"convert_fps", "align", "split",
                                                                             "pretrain_emotion", "pretrain_generator"}
    assert detail["lineage"]["upstream"]["pretrain_generator"]["mlflow_run_id"]
    train = (work / "data/processed/splits/train.txt").read_text().split()
    val = (work / "data/processed/splits/val.txt").read_text().split()
    listed = run([*lineage, "--clip", train[0]], work, cli_env).stdout
    assert "synthtext-generator v1" in listed and "@champion" in listed
    assert "no registered model version" in run([*lineage, "--clip", val[0]], work, cli_env).stdout

    clip = work / "data/processed/clips" / f"{train[0]}.h5"
    original = clip.read_bytes()
    clip.unlink()  # DVC links cache files into the work tree: replace the file, never edit it in place
    with h5py.File(clip, "w") as f:
        f.attrs["note"] = "changed by hand"
    changed = run([*lineage, "models:/synthtext-generator@champion"], work, cli_env, check=False)
    assert changed.returncode == 1
    assert f"data/processed/clips/{train[0]}.h5: hash mismatch" in changed.stdout
    clip.unlink()
    clip.write_bytes(original)
    assert run([*lineage, "models:/synthtext-generator@champion"], work, cli_env, check=False).returncode == 0


def test_push_to_a_remote_and_audit_from_a_fresh_clone(project, tmp_path):
    """The retrain flow's push sends data and models to a DVC remote (a local folder here); a fresh git
    clone elsewhere pulls them and, with the shared tracking store, `synthtext lineage` of the champion
    passes there. One corrupted object in the remote makes the audit fail, naming the file."""
    from flows.retrain import dvc_push

    work, env = project
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "audit", str(remote)], work, env)
    try:
        pushed = dvc_push(str(work))
        assert "no DVC remote" not in pushed and any(remote.rglob("*")), pushed
        # dvc.lock and the metrics with it: metrics are cache: false outputs, kept by git, not the remote
        run(["git", "add", "-A"], work, env)
        run(["git", "add", "-f", "metrics"], work, env)
        run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pipeline outputs", "--allow-empty"],
            work, env)
        shared = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "PYTHONPATH": str(REPO)}
        lineage = [sys.executable, "-m", "synthtext.cli", "lineage", "models:/synthtext-generator@champion"]

        clone = tmp_path / "auditor"
        run(["git", "clone", "-q", str(work), str(clone)], tmp_path, env)
        run(["dvc", "pull"], clone, shared)
        audited = run([*lineage, "--repo", str(clone)], clone, shared, check=False)
        assert audited.returncode == 0 and "reproducible as recorded" in audited.stdout, audited.stdout

        train = (work / "data/processed/splits/train.txt").read_text().split()
        target = f"data/processed/clips/{train[0]}.h5"
        digest = hashlib.md5((work / target).read_bytes()).hexdigest()
        stored = remote / "files" / "md5" / digest[:2] / digest[2:]
        assert stored.is_file()
        stored.chmod(0o644)
        stored.write_bytes(b"not the clip any more")
        second = tmp_path / "auditor2"
        run(["git", "clone", "-q", str(work), str(second)], tmp_path, env)
        pulled = run(["dvc", "pull"], second, shared, check=False)
        audited = run([*lineage, "--repo", str(second)], second, shared, check=False)
        report = pulled.stdout + pulled.stderr + audited.stdout
        assert pulled.returncode != 0 or audited.returncode != 0, report
        assert target in report or digest in report, report
    finally:
        run(["dvc", "remote", "remove", "audit"], work, env)


def test_repro_kill_resume_and_granular_params(project):
    work, env = project
    clips_dir = work / "data/processed/clips"
    clean = clip_contents(clips_dir)
    assert len(clean) == 12
    train = (work / "data/processed/splits/train.txt").read_text().split()
    val = (work / "data/processed/splits/val.txt").read_text().split()
    assert train and val and not {c[:4] for c in train} & {c[:4] for c in val}
    assert (work / "data/processed/align_report.json").is_file() and (work / "metrics/align.json").is_file()
    assert (work / "data/raw/sample/contact_sheet.png").is_file()

    check_registry(work)
    metrics = run(["dvc", "metrics", "show", "--json"], work, env).stdout
    assert "train_gan" in metrics and "accuracy" in metrics and "evaluate" in metrics
    plots = run(["dvc", "plots", "show", "--json"], work, env).stdout
    assert "pretrain_generator_history.csv" in plots and "evaluate_confusion.csv" in plots

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
    resized = run(["dvc", "repro", "split"], work, env)  # (training on the new clips is what later tests do)
    assert "Stage 'convert_fps' didn't change" in resized.stdout
    assert "Running stage 'align'" in resized.stdout and "Running stage 'split'" in resized.stdout
    with h5py.File(next(clips_dir.glob("*.h5"))) as f:
        assert f["video"].shape[1:] == (64, 64, 3)


def check_registry(work: Path) -> None:
    """Both models registered with alias candidate; the registered files are the DVC model folder's."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from synthtext.ops.hashing import folder_md5

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    client = MlflowClient()
    for name, folder in (("synthtext-emotion", "models/emotion"), ("synthtext-generator", "models/generator")):
        version = client.get_model_version_by_alias(name, "candidate")
        local = Path(mlflow.artifacts.download_artifacts(version.source))
        assert folder_md5(local) == folder_md5(work / folder), name
        run_tags = client.get_run(version.run_id).data.tags
        assert run_tags["stage"] in TRAINING and "git_commit" in run_tags
        assert any(k.startswith("input.data/processed/clips") for k in run_tags), run_tags
        artifacts = [a.path for a in client.list_artifacts(version.run_id)]
        assert "images" in artifacts or name == "synthtext-emotion" or any(a.endswith(".mp4") for a in artifacts)
    gan_run = client.get_model_version_by_alias("synthtext-generator", "candidate").run_id
    assert any(a.path.endswith("_sample.mp4") for a in client.list_artifacts(gan_run))


def test_data_source_switches_to_a_real_folder(project, demo_dir):
    work, env = project
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"]["source"] = str(demo_dir)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    switched = run(["dvc", "repro", "sample_corpus", "split"], work, env)
    assert "sample_corpus: skipped" in switched.stdout
    assert "convert_fps: 4 clips in, 4 written" in switched.stdout
    assert sorted(p.name for p in (work / "data/raw/sample").iterdir()) == ["SKIPPED.txt"]
    assert len(list((work / "data/processed/clips").glob("*.h5"))) == 4


def test_training_killed_by_sigkill_resumes_to_the_same_model(project):
    """A `dvc repro` killed with SIGKILL (the whole process tree) during pretrain_generator, after a
    checkpoint, then run again: the model equals an uninterrupted run's bit for bit (the checkpoint
    holds every random stream and the data position), and the finished MLflow run holds every
    logged step exactly once; the killed run is marked KILLED."""
    import mlflow
    from mlflow.tracking import MlflowClient

    work, env = project
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["pretrain_generator"].update(steps=120, checkpoint_every=20, image_every=1000)
    params["generator"]["log_every"] = 1
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    model = work / "models/generator_pre/model.pt"
    checkpoints = work / "models/checkpoints/pretrain_generator"
    run(["dvc", "repro", "pretrain_generator"], work, env)
    uninterrupted = model.read_bytes()

    shutil.rmtree(checkpoints)
    proc = subprocess.Popen(["dvc", "repro", "-f", "-s", "pretrain_generator"], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not any(checkpoints.glob("*.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the stage ended"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not model.is_file(), "killed too late to test a resume"
    resumed = run(["dvc", "repro", "pretrain_generator"], work, env)
    assert "Running stage 'pretrain_generator'" in resumed.stdout
    assert model.read_bytes() == uninterrupted

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    client = MlflowClient()
    runs = client.search_runs([mlflow.get_experiment_by_name("synthtext").experiment_id],
                              "tags.stage = 'pretrain_generator'", order_by=["attributes.start_time DESC"],
                              max_results=2)
    last, killed = runs
    assert last.info.status == "FINISHED" and killed.info.status == "KILLED"
    assert last.data.tags["resumes_killed_runs"] == killed.info.run_id
    steps = [m.step for m in client.get_metric_history(last.info.run_id, "loss")]
    assert sorted(steps) == list(range(1, 121))


def test_a_second_repro_stops_at_once_while_one_runs(project, tmp_path):
    """Two `dvc repro` at once: the second stops within seconds with DVC's lock message and changes
    nothing; the first finishes and leaves the pipeline up to date. (The first also trains what earlier
    tests left out of date; the second is tried while its last stage, evaluate, runs.)"""
    work, env = project
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["evaluate"]["seconds"] = 1.4  # so that the next repro has evaluate to run, whatever ran before
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = tmp_path / "first.log"  # a file, not a pipe: the training stages before evaluate would fill a pipe
    with log.open("w") as out:
        first = subprocess.Popen(["dvc", "repro"], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    rwlock = work / ".dvc/tmp/rwlock"  # while a stage runs, DVC lists the paths it writes here
    deadline = time.monotonic() + 600
    while "reports" not in (rwlock.read_text() if rwlock.is_file() else ""):
        assert first.poll() is None and time.monotonic() < deadline, (
            f"the first repro never reached evaluate:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    lock_before = (work / "dvc.lock").read_bytes()
    started = time.monotonic()
    second = run(["dvc", "repro"], work, env, check=False)
    assert second.returncode != 0 and time.monotonic() - started < 60
    assert "lock" in (second.stdout + second.stderr).lower(), second.stdout + second.stderr
    assert first.poll() is None, "the first repro ended before the second was tried"
    assert (work / "dvc.lock").read_bytes() == lock_before
    assert first.wait(timeout=600) == 0, log.read_text()
    assert "up to date" in run(["dvc", "repro"], work, env).stdout


@pytest.mark.parametrize("kill_a_worker", [False, True], ids=["cluster", "worker-killed"])
def test_align_on_a_real_dask_cluster(project, kill_a_worker):
    """`dask scheduler` and two `dask worker` processes on loopback, `runner.dask_address` pointing at
    them: `dvc repro align` writes the same clips as the threads run; with one worker killed by
    SIGKILL in the middle of the stage, the other finishes the work and the result is the same."""
    from distributed import Client

    work, env = project
    clips_dir = work / "data/processed/clips"
    clean = clip_contents(clips_dir)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    cluster_env = {**env, "PYTHONPATH": str(work)}  # the workers import the project's tasks
    dask = [str(Path(sys.executable).parent / "dask")]
    scheduler = subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 cwd=work, env=cluster_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    workers = [subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"],
                                cwd=work, env=cluster_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True) for i in range(2)]
    params_file = work / "params.yaml"
    original = params_file.read_text()
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        params = yaml.safe_load(original)
        params["runner"].update(kind="dask", dask_address=address)
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        shutil.rmtree(clips_dir)
        repro = subprocess.Popen(["dvc", "repro", "align"], cwd=work, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
        if kill_a_worker:
            deadline = time.monotonic() + 300
            while not (clips_dir.is_dir() and len(list(clips_dir.glob("*.h5"))) >= 2):
                assert repro.poll() is None and time.monotonic() < deadline, "align never started writing"
                time.sleep(0.02)
            os.killpg(workers[0].pid, signal.SIGKILL)
            assert len(list(clips_dir.glob("*.h5"))) < len(clean), "killed too late to test a recovery"
        output, _ = repro.communicate(timeout=900)
        assert repro.returncode == 0, output
        assert f"{len(clean)} written" in output and "0 rejected" in output, output
        assert_same_contents(clip_contents(clips_dir), clean)
        assert not list(clips_dir.glob(".*"))
    finally:
        params_file.write_text(original)
        for process in (*workers, scheduler):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    run(["dvc", "repro", "align"], work, env)  # back to the threads runner's record


class MlflowServer:
    """A real `mlflow server` (sqlite store and artifact root in ``folder``) on a loopback port, as
    `make mlflow` starts it; ``stop`` kills its whole process tree."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port, self.proc = folder, port, None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        (self.folder / "artifacts").mkdir(parents=True, exist_ok=True)
        mlflow_exe, store = str(Path(sys.executable).parent / "mlflow"), f"sqlite:///{self.folder / 'mlflow.db'}"
        self.proc = subprocess.Popen([mlflow_exe, "server", "--backend-store-uri", store,
                                      "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
                                      "--port", str(self.port), "--workers", "1"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        assert wait_healthy(self.url, self.proc), "mlflow server did not start"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def tracking_server(project, tmp_path_factory):
    """A copy of the project whose runs and registry live on a real MLflow tracking server (one for
    the tests below, in their order: the pipeline, then the server killed, then a short outage)."""
    work, env = project
    copy = tmp_path_factory.mktemp("tracked") / "project"
    shutil.copytree(work, copy, symlinks=True, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    # Earlier tests left params.yaml edited: commit them, so that what trains here is a clean commit (lineage
    # passes only then).
    run(["git", "add", "-A"], copy, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tracked", "--allow-empty"], copy, env)
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), free_port())
    server.start()
    # A server that goes away must fail a request at once here (MLflow's default retries for minutes).
    env = {**env, "MLFLOW_TRACKING_URI": server.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    yield copy, env, server
    server.stop()


def test_pipeline_against_a_real_mlflow_server(tracking_server, monkeypatch):
    """With MLFLOW_TRACKING_URI=http://...: the training stages, evaluate and its aliases, `synthtext
    lineage` and `synthtext generate` from models:/...@champion all work through the server (its
    artifacts uploaded to and downloaded from it, nothing read from a local store)."""
    from mlflow.tracking import MlflowClient

    work, env, server = tracking_server
    run(["dvc", "repro"], work, env)  # whatever the copy lacks (a no-op after the module's first test)
    for stage in (*TRAINING, "evaluate"):
        run(["dvc", "repro", "-f", "-s", stage], work, env)
    assert not (work / "mlflow.db").exists() and not (work / "mlartifacts").exists()
    client = MlflowClient(server.url)
    champion = client.get_model_version_by_alias("synthtext-generator", "champion")
    assert client.get_run(champion.run_id).data.tags["stage"] == "train_gan"
    assert champion.source.startswith("mlflow-artifacts:"), champion.source  # stored by the server
    assert client.get_model_version_by_alias("synthtext-emotion", "candidate")
    for stage in TRAINING:
        [last] = client.search_runs([client.get_experiment_by_name("synthtext").experiment_id],
                                    f"tags.stage = '{stage}'", max_results=1)
        assert last.info.status == "FINISHED" and last.data.metrics, stage

    lineage = run(["synthtext", "lineage", "models:/synthtext-generator@champion"], work, env)
    assert "train_gan" in lineage.stdout and "pretrain_generator" in lineage.stdout
    video = work / "champion.mp4"
    run(["synthtext", "generate", "--no-prefect", "--image", str(REPO / "assets/heldout/grace_hopper.jpg"),
         "--text", "Hello there.", "--emotion", "HAP", "--out", str(video)], work, env)
    assert video.stat().st_size > 1000
    sidecar = json.loads(video.with_suffix(".json").read_text())
    assert sidecar["model_md5"] == client.get_run(champion.run_id).data.tags["model_md5"]


def train_until_a_checkpoint(work: Path, env: dict, steps: int) -> tuple[subprocess.Popen, Path]:
    """`dvc repro -s pretrain_generator` started afresh with ``steps`` steps (a checkpoint every 10),
    returned once its first checkpoint is on disk, with the checkpoint folder."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["pretrain_generator"].update(steps=steps, checkpoint_every=10, image_every=1000)
    params["generator"]["log_every"] = 1
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    checkpoints = work / "models/checkpoints/pretrain_generator"
    shutil.rmtree(checkpoints, ignore_errors=True)
    proc = subprocess.Popen(["dvc", "repro", "-s", "pretrain_generator"], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not any(checkpoints.glob("*.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the stage ended"
        time.sleep(0.01)
    return proc, checkpoints


def test_tracking_server_down_mid_stage_then_resume(tracking_server):
    """The MLflow server killed while pretrain_generator trains: the stage stops with one clear message
    and registers nothing; with the server back, `dvc repro` resumes from the checkpoint, the finished
    run holds every step once, the stopped one is marked KILLED, and every registered version belongs
    to a finished run. A server that is down before a stage starts is one clear error at once."""
    from mlflow.tracking import MlflowClient

    work, env, server = tracking_server
    run(["dvc", "repro", "pretrain_generator"], work, env)  # its inputs, tracked on the server (when run alone)
    lock_before = (work / "dvc.lock").read_bytes()
    proc, checkpoints = train_until_a_checkpoint(work, env, steps=150)
    server.stop()
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, output
    assert f"the MLflow tracking server at {server.url} stopped answering during pretrain_generator" in output, output
    assert "dvc repro" in output
    assert (work / "dvc.lock").read_bytes() == lock_before and any(checkpoints.glob("*.pt"))

    down = run(["dvc", "repro", "-s", "pretrain_generator"], work, env, check=False)
    assert down.returncode != 0 and f"the MLflow tracking server at {server.url} does not answer" in down.stderr

    server.start()  # the same store, the same port
    resumed = run(["dvc", "repro", "-s", "pretrain_generator"], work, env)
    assert "Running stage 'pretrain_generator'" in resumed.stdout
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name("synthtext").experiment_id
    last, stopped = client.search_runs([experiment], "tags.stage = 'pretrain_generator'",
                                       order_by=["attributes.start_time DESC"], max_results=2)
    assert last.info.status == "FINISHED" and stopped.info.status == "KILLED"
    assert last.data.tags["resumes_killed_runs"] == stopped.info.run_id
    steps = [m.step for m in client.get_metric_history(last.info.run_id, "loss")]
    assert sorted(steps) == list(range(1, 151))
    for name in ("synthtext-emotion", "synthtext-generator"):
        for version in client.search_model_versions(f"name = '{name}'"):
            assert client.get_run(version.run_id).info.status == "FINISHED", (name, version.version)


def test_a_short_tracking_server_outage_only_pauses_a_stage(tracking_server):
    """With MLflow's retries (the default count; shorter waits here) a server that is down for the time
    it takes to restart costs the stage a pause, nothing else: it finishes, its run holds every step."""
    from mlflow.tracking import MlflowClient

    work, env, server = tracking_server
    env = {**env, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}  # waits 0, 2, 4 ... 64 s: about 2 minutes in all
    del env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    run(["dvc", "repro", "pretrain_generator"], work, env)  # its inputs, tracked on the server
    proc, _ = train_until_a_checkpoint(work, env, steps=120)
    server.stop()
    server.start()  # about 20 s
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    client = MlflowClient(server.url)
    [last] = client.search_runs([client.get_experiment_by_name("synthtext").experiment_id],
                                "tags.stage = 'pretrain_generator'", order_by=["attributes.start_time DESC"],
                                max_results=1)
    assert last.info.status == "FINISHED" and "resumes_killed_runs" not in last.data.tags
    steps = [m.step for m in client.get_metric_history(last.info.run_id, "loss")]
    assert sorted(steps) == list(range(1, 121))
