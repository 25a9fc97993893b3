"""Flow ``convert-fps``: every raw clip -> 25 fps H.264 mp4 (or its video stream copied) + 16 kHz mono wav,
the clips in batches, each clip's result cached by its content."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.convert_jobs import REPORT, converted, plan_jobs, prune
from flows.convert_jobs import convert as convert_job
from flows.runner import FanOut, fan_out, make_task_runner, run_batch, worker_processes
from synthtext.ops.config import ConvertParams, RunnerParams
from synthtext.ops.files import remove_stale_temporaries, write_json_atomic


@task(name="convert-clips", cache_policy=NO_CACHE)
def convert_batch(jobs: list[dict]) -> list[dict]:
    """A batch of clips; each clip's result is cached by its ``key`` (``run_batch``)."""
    return run_batch(convert_job, jobs, converted)


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

