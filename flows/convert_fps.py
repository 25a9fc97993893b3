"""Flow ``convert-fps``: every raw clip -> 25 fps H.264 mp4 (or its video stream copied) + 16 kHz mono wav,
the clips in batches, each clip's result cached by its content."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.convert_jobs import convert as convert_job
from flows.convert_jobs import converted
from flows.runner import FanOut, fan_out, make_task_runner, run_batch, worker_processes
from synthtext.data.convert import VIDEO_SUFFIX
from synthtext.data.naming import find_videos, parse_clip_name
from synthtext.ops.codedeps import code_version
from synthtext.ops.config import ConvertParams, RunnerParams
from synthtext.ops.errors import ClipRejected
from synthtext.ops.files import remove_stale_temporaries, write_json_atomic
from synthtext.ops.hashing import file_md5, stable_hash

CODE_VERSION = code_version("synthtext.data.convert")  # every file convert_clip can run
REPORT = "convert_report.json"


@task(name="convert-clips", cache_policy=NO_CACHE)
def convert_batch(jobs: list[dict]) -> list[dict]:
    """A batch of clips; each clip's result is cached by its ``key`` (``run_batch``)."""
    return run_batch(convert_job, jobs, converted)


def plan_jobs(source: Path, out_dir: Path, params: ConvertParams) -> tuple[list[dict], list[dict]]:
    """One job per usable clip name (with its content hash and cache key), and the name rejections."""
    jobs, rejected, seen = [], [], set()
    videos = find_videos(source)
    with ThreadPoolExecutor(4) as pool:
        hashes = list(pool.map(file_md5, videos))
    for path, md5 in zip(videos, hashes, strict=True):
        try:
            name = parse_clip_name(path)
            if name.clip_id in seen:
                raise ClipRejected("duplicate", f"{path}: another file already gives clip id {name.clip_id}")
        except ClipRejected as exc:
            rejected.append({"clip_id": path.stem, "source": str(path), "status": "rejected",
                             "reason": exc.reason, "detail": exc.detail})
            continue
        seen.add(name.clip_id)
        # the clip id and output folder are in the key: two files with equal bytes are still two clips
        key = stable_hash("convert_fps", name.clip_id, str(out_dir), md5, params.as_dict(), CODE_VERSION)
        jobs.append({"src": str(path), "out_dir": str(out_dir), "clip_id": name.clip_id,
                     "params": params.as_dict(), "source_md5": md5, "key": key})
    return jobs, rejected


def prune(out_dir: Path, keep: set[str], video: str) -> None:
    """Remove outputs of clips that are no longer in the raw folder or no longer usable, and videos
    of the other ``convert_fps.video`` mode."""
    suffixes = {".wav", ".json", *VIDEO_SUFFIX.values()}
    for path in out_dir.iterdir():
        if path.name != REPORT and path.suffix in suffixes and (
                path.stem not in keep or (path.suffix in VIDEO_SUFFIX.values() and path.suffix != VIDEO_SUFFIX[video])):
            path.unlink()


@flow(name="convert-fps")
def convert_fps_flow(source: str, out_dir: str, params: dict) -> FanOut:
    """Convert every video under ``source`` into ``out_dir``; writes ``convert_report.json`` there."""
    convert_params = ConvertParams.from_dict(params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    jobs, name_rejects = plan_jobs(Path(source), out, convert_params)
    fan = fan_out(convert_batch, jobs, desc="convert_fps")
    fan.results = sorted(fan.results + name_rejects, key=lambda r: r["clip_id"])
    prune(out, {r["clip_id"] for r in fan.ok}, convert_params.video)
    write_json_atomic(out / REPORT, {"params": convert_params.as_dict(), "clips": fan.results})
    return fan


def run(source: str, out_dir: str, params: ConvertParams, runner: RunnerParams) -> FanOut:
    """Run the flow with the task runner named in params (``params`` crosses into Prefect as a dict)."""
    with worker_processes(runner):
        return convert_fps_flow.with_options(task_runner=make_task_runner(runner))(source, out_dir, params.as_dict())

