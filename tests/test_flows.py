"""The convert_fps and align flows: per-clip caching, bad clips, task runners."""

import hashlib
import json
import os
import platform
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows import align as align_flow
from flows import convert_fps as convert_flow
from flows.runner import BATCH, batch_size, fan_out, run_batch
from synthtext.ops.config import RunnerParams, load_params
from tests.conftest import REPO, add_bad_clips

PARAMS = load_params(REPO / "params.yaml")
THREADS = RunnerParams(kind="threads", workers=2)


def convert(raw, out, runner=THREADS, **overrides):
    return convert_flow.run(str(raw), str(out), PARAMS.convert_fps.replace(**overrides), runner)


def test_per_clip_cache_follows_content(prefect_server, raw_copy, tmp_path):
    out = tmp_path / "fps25"
    first = convert(raw_copy, out)
    ids = {r["clip_id"] for r in first.ok}
    assert len(ids) == 4 and first.cached == set()

    second = convert(raw_copy, out)
    assert second.cached == ids  # nothing recomputed

    clips = sorted(raw_copy.iterdir())
    shutil.copy(clips[0], raw_copy / "1003_TIE_FEA_XX.mp4")  # a new clip arrives
    clips[1].write_bytes(clips[2].read_bytes())  # and one file changes content
    third = convert(raw_copy, out)
    assert {r["clip_id"] for r in third.ok} - third.cached == {"1003_TIE_FEA_XX", clips[1].stem}

    (out / f"{clips[3].stem}.mp4").unlink()  # an output disappears: the cache hit is not trusted
    fourth = convert(raw_copy, out)
    assert clips[3].stem not in fourth.cached and (out / f"{clips[3].stem}.mp4").is_file()

    changed = convert(raw_copy, out, crf=30)  # params are part of the key
    assert changed.cached == set()

    clips[0].unlink()  # a clip removed from the raw folder is removed from the outputs
    convert(raw_copy, out)
    assert not (out / f"{clips[0].stem}.mp4").exists()


def test_bad_clips_are_reported_with_reasons(prefect_server, raw_copy, tmp_path):
    expected = add_bad_clips(raw_copy, sorted(raw_copy.iterdir())[0])
    fps25, clips = tmp_path / "fps25", tmp_path / "clips"
    convert(raw_copy, fps25)
    fan = align_flow.run(str(fps25), str(clips), str(tmp_path / "report.json"), str(tmp_path / "metrics.json"),
                         PARAMS.align, THREADS)
    report = {c["clip_id"]: c for c in json.loads((tmp_path / "report.json").read_text())["clips"]}
    for clip_id, reason in expected.items():
        assert report[clip_id]["status"] == "rejected" and report[clip_id]["reason"] == reason, report[clip_id]
        assert report[clip_id]["detail"]
    good = {c for c, r in report.items() if r["status"] == "ok"}
    assert len(good) == 4 and {p.stem for p in clips.iterdir()} == good
    assert not [p for p in tmp_path.rglob(".*tmp*")]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["clips_written"] == 4 and metrics["face_frame_ratio"] >= 0.99
    assert metrics["rejected_by_reason"]["no_face"] == 1
    assert "7 rejected" in fan.summary("align")
    with h5py.File(clips / f"{sorted(good)[0]}.h5") as f:
        assert f["video"].shape[1:] == (128, 128, 3)
        assert f.attrs["emotion"] in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
        assert len(f["audio"]) == round(len(f["video"]) * 16000 / 25)


def _digest(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
@pytest.mark.parametrize("runner", [RunnerParams(kind="processes", workers=2), RunnerParams(kind="dask", workers=2)])
def test_other_task_runners_give_the_same_outputs(prefect_server, demo_dir, tmp_path, runner):
    convert(demo_dir, tmp_path / "threads", crf=20)
    fan = convert(demo_dir, tmp_path / "other", runner=runner, crf=20)
    assert len(fan.ok) == 4
    reference = _digest(tmp_path / "threads")
    other = _digest(tmp_path / "other")
    assert other.keys() == reference.keys()
    for name in reference:
        if name.endswith((".mp4", ".wav")):
            assert np.array_equal(np.frombuffer(other[name], np.uint8), np.frombuffer(reference[name], np.uint8))


def test_one_prefect_server_for_a_command(tmp_path, monkeypatch):
    """`python -m flows.with_server CMD` (what `make demo` runs): CMD sees a live server in
    PREFECT_API_URL, its exit status comes back, and the server is gone afterwards."""
    import subprocess
    import sys
    import urllib.request

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home")}
    probe = ("import os, sys, urllib.request; url = os.environ['PREFECT_API_URL']; "
             "urllib.request.urlopen(url + '/health', timeout=5); print(url); sys.exit(3)")
    done = subprocess.run([sys.executable, "-m", "flows.with_server", sys.executable, "-c", probe], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 3, done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:") and (tmp_path / "home/server.log").is_file()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/health", timeout=2)


def test_the_processes_runner_works_in_worker_processes(tmp_path):
    """``runner.kind: processes``: the per-clip jobs of a batch task (a thread) run in worker processes
    all at once; a rejection raised there comes back whole, as that job's answer, and the others go on."""
    from flows.runner import each_in_worker, worker_processes
    from synthtext.ops.errors import ClipRejected

    def pids(jobs):
        return dict(each_in_worker(_pid, jobs))

    assert set(pids([{}, {}]).values()) == {os.getpid()}  # no pool: here
    (tmp_path / "empty.flv").write_bytes(b"")
    job = {"src": tmp_path / "empty.flv", "out": tmp_path}
    tunables_before = os.environ.get("GLIBC_TUNABLES")
    with worker_processes(RunnerParams(kind="processes", workers=2)):
        answers = dict(each_in_worker(_convert, [job, {}, job]))
        assert os.getpid() not in pids([{}] * 4).values()
        assert dict(each_in_worker(_opencv_threads, [{}])) == {0: 1}  # an align worker: OpenCV on one thread
        tunables, huge_kb = dict(each_in_worker(_model_pages, [{}]))[0]
    assert "glibc.malloc.hugetlb=1" in tunables.split(":")
    assert os.environ.get("GLIBC_TUNABLES") == tunables_before  # this process's environment is given back
    if _huge_pages_possible():  # dlib's model (~100 MB of small allocations) on huge pages in the worker
        assert huge_kb >= 32 * 1024, f"{huge_kb} kB on huge pages"
    assert answers.keys() == {0, 1, 2} and answers[1] != os.getpid()
    for index in (0, 2):
        assert isinstance(answers[index], ClipRejected) and answers[index].reason == "empty_file"
        assert "zero bytes" in answers[index].detail
    assert set(pids([{}]).values()) == {os.getpid()}


def _pid(job):
    return os.getpid()


def _opencv_threads(job):
    import cv2

    from flows.align_jobs import backend

    backend("dlib", 0)
    return cv2.getNumThreads()


def _model_pages(job):
    """A worker's GLIBC_TUNABLES and how much of its memory is on huge pages once the dlib model is loaded."""
    from flows.align_jobs import backend

    backend("dlib", 0)
    rollup = Path("/proc/self/smaps_rollup")
    lines = rollup.read_text().splitlines() if rollup.is_file() else []
    huge = [int(line.split()[1]) for line in lines if line.startswith("AnonHugePages:")]
    return os.environ.get("GLIBC_TUNABLES", ""), sum(huge)


def _huge_pages_possible() -> bool:
    """glibc, and transparent huge pages on for madvise (or always)."""
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return platform.libc_ver()[0] == "glibc" and thp.is_file() and "[never]" not in thp.read_text()


def test_child_processes_get_huge_pages_unless_the_user_chose(monkeypatch):
    """huge_pages_for_children adds glibc's hugetlb tunable to what the user set, keeps a hugetlb the user
    chose (0: off), and gives the environment back."""
    from flows.runner import huge_pages_for_children

    for before, inside in [(None, "glibc.malloc.hugetlb=1"),
                           ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
                           ("glibc.malloc.hugetlb=0", "glibc.malloc.hugetlb=0")]:
        if before is None:
            monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
        else:
            monkeypatch.setenv("GLIBC_TUNABLES", before)
        with huge_pages_for_children():
            assert os.environ["GLIBC_TUNABLES"] == inside
        assert os.environ.get("GLIBC_TUNABLES") == before


def _convert(job):
    """A worker-process job: the converted empty file (a rejection), or for an empty job the worker's pid."""
    from synthtext.data.convert import convert_clip
    from synthtext.ops.config import ConvertParams

    if not job:
        return _pid(job)
    return convert_clip(job["src"], job["out"], "1001_DFA_ANG_XX", ConvertParams(), "-", "-")


@task(name="toy-clips", cache_policy=NO_CACHE)
def _toy_batch(jobs):
    return run_batch(_toy_work, jobs, _toy_current)


@flow(name="toy")
def _toy_flow(jobs):
    return fan_out(_toy_batch, jobs, desc="toy")


def _toy_work(job):
    """One clip of a toy stage: writes ``<clip>.txt`` holding its key; "bad" raises, "rej" is rejected."""
    out = Path(job["out"])
    with open(out / "calls.log", "a") as log:
        log.write(job["clip_id"] + "\n")
    if job["clip_id"] == "bad":
        raise ValueError("a bug")
    if job["clip_id"] == "rej":
        return {"clip_id": "rej", "status": "rejected", "reason": "no_face", "detail": "no face"}
    (out / f"{job['clip_id']}.txt").write_text(job["key"])
    return {"clip_id": job["clip_id"], "status": "ok", "key": job["key"]}


def _toy_current(job, result):
    path = Path(job["out"]) / f"{job['clip_id']}.txt"
    return path.is_file() and path.read_text() == job["key"]


def test_clips_run_in_batches_and_each_is_cached(prefect_server, tmp_path):
    """fan_out: a Prefect task per batch of clips, each clip's result cached by its own key: a rerun
    computes only what changed, lost its output or raised (errors are not cached)."""
    ids = [f"c{i:02d}" for i in range(38)] + ["bad", "rej"]

    run = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:16]  # keys of this test only (one result store)

    def jobs(version=None):
        version = version or {}
        return [{"clip_id": c, "out": str(tmp_path), "key": f"toy-{run}-{c}-{version.get(c, 1)}"} for c in ids]

    def calls():
        return (tmp_path / "calls.log").read_text().split()

    first = _toy_flow(jobs())
    assert first.batches == 20 and batch_size(40) == 2 and batch_size(10_000) == BATCH
    assert [r["clip_id"] for r in first.results] == sorted(ids) and first.cached == set()
    assert {r["clip_id"]: r["reason"] for r in first.rejected} == {"bad": "error", "rej": "no_face"}
    assert "ValueError: a bug" in next(r["detail"] for r in first.rejected if r["clip_id"] == "bad")
    assert sorted(calls()) == sorted(ids)

    (tmp_path / "calls.log").unlink()
    second = _toy_flow(jobs())
    assert calls() == ["bad"] and second.cached == set(ids) - {"bad"}
    assert second.results == first.results

    (tmp_path / "calls.log").unlink()
    (tmp_path / "c05.txt").unlink()  # an output lost: its cached result is not trusted
    third = _toy_flow(jobs({"c06": 2}))  # c06's content changed: a new key
    assert sorted(calls()) == ["bad", "c05", "c06"] and third.cached == set(ids) - {"bad", "c05", "c06"}
    assert (tmp_path / "c06.txt").read_text().endswith("-c06-2")
