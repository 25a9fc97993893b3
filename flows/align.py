"""Flow ``align``: landmarks, tracking and similarity alignment, one HDF5 per clip, the clips in batches,
each clip's result cached by its content."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.align_jobs import align as align_job
from flows.align_jobs import align_metrics, aligned, backend, plan_jobs
from flows.convert_fps import REPORT as CONVERT_REPORT
from flows.runner import FanOut, fan_out, make_task_runner, run_batch, worker_processes
from synthtext.data.preview import align_preview
from synthtext.ops.config import AlignParams, RunnerParams
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import remove_stale_temporaries, write_json_atomic


@task(name="align-clips", cache_policy=NO_CACHE)
def align_batch(jobs: list[dict]) -> list[dict]:
    """A batch of clips; each clip's result is cached by its ``key`` (``run_batch``)."""
    return run_batch(align_job, jobs, aligned)


@flow(name="align")
def align_flow(in_dir: str, clips_dir: str, report_path: str, metrics_path: str, params: dict,
               preview_path: str | None = None) -> FanOut:
    """Align every clip that convert_fps wrote; list every unusable clip with its reason;
    draw a contact sheet of the aligned clips with their landmarks at ``preview_path``."""
    align_params = AlignParams.from_dict(params)
    source_dir, out = Path(in_dir), Path(clips_dir)
    report_file = source_dir / CONVERT_REPORT
    if not report_file.is_file():
        raise SynthTextError(f"{report_file} not found: run the convert_fps stage first (dvc repro convert_fps)")
    converted = json.loads(report_file.read_text())["clips"]
    backend(align_params.backend, align_params.detect_upsample)  # a bad backend setting fails here, once
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    jobs, earlier = plan_jobs(source_dir, out, converted, align_params)
    fan = fan_out(align_batch, jobs, desc="align")
    fan.results = sorted(fan.results + earlier, key=lambda r: r["clip_id"])
    keep = {r["clip_id"] for r in fan.ok}
    for path in out.glob("*.h5"):
        if path.stem not in keep:
            path.unlink()
    write_json_atomic(report_path, {"params": align_params.as_dict(), "clips": fan.results})
    write_json_atomic(metrics_path, align_metrics(fan))
    if preview_path:
        align_preview(sorted(out.glob("*.h5")), preview_path)
    return fan


def run(in_dir: str, clips_dir: str, report_path: str, metrics_path: str, params: AlignParams, runner: RunnerParams,
        preview_path: str | None = None) -> FanOut:
    """Run the flow with the task runner named in params (``params`` crosses into Prefect as a dict)."""
    flow_with_runner = align_flow.with_options(task_runner=make_task_runner(runner))
    with worker_processes(runner):
        return flow_with_runner(in_dir, clips_dir, report_path, metrics_path, params.as_dict(), preview_path)
