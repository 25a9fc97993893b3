"""The convert_fps and align flows: per-clip caching, bad clips, task runners."""

import json
import shutil
from dataclasses import replace

import h5py
import numpy as np
import pytest

from flows import align as align_flow
from flows import convert_fps as convert_flow
from synthtext.config import RunnerParams, load_params
from tests.conftest import REPO, add_bad_clips

PARAMS = load_params(REPO / "params.yaml")
THREADS = RunnerParams(kind="threads", workers=2)


def convert(raw, out, runner=THREADS, **overrides):
    return convert_flow.run(str(raw), str(out), replace(PARAMS.convert_fps, **overrides), runner)


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
    env = {**__import__("os").environ, "PREFECT_HOME": str(tmp_path / "home")}
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
    """``runner.kind: processes``: the per-clip tasks (threads) hand their work to worker processes; a
    rejection raised there reaches the task whole."""
    import os

    from flows.runner import in_worker, worker_processes
    from synthtext.config import ConvertParams
    from synthtext.convert import convert_clip
    from synthtext.errors import ClipRejected

    assert in_worker(os.getpid) == os.getpid()  # no pool: here
    (tmp_path / "empty.flv").write_bytes(b"")
    with worker_processes(RunnerParams(kind="processes", workers=1)):
        assert in_worker(os.getpid) != os.getpid()
        with pytest.raises(ClipRejected) as info:
            in_worker(convert_clip, tmp_path / "empty.flv", tmp_path, "1001_DFA_ANG_XX", ConvertParams(), "-", "-")
    assert info.value.reason == "empty_file" and "zero bytes" in info.value.detail
    assert in_worker(os.getpid) == os.getpid()
