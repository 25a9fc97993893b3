"""Flow ``sample-corpus``: speak, animate and encode every clip of the generated corpus in parallel."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.runner import FanOut, fan_out, make_task_runner, run_batch, worker_processes
from synthtext.data.corpus.generate import (
    ClipSpec,
    build_identities,
    check_output_folder,
    corpus_sheet,
    plan,
    synthesize_clip,
)
from synthtext.inference.tts import PiperEngine
from synthtext.ops.config import CorpusParams, RunnerParams
from synthtext.ops.files import atomic_folder, write_json_atomic

_local = threading.local()


def _engine(voice: str | None) -> PiperEngine:
    """One voice per worker thread/process."""
    if getattr(_local, "voice", object()) != voice:
        _local.engine, _local.voice = PiperEngine(voice, fast_load=False), voice
    return _local.engine


@task(name="synthesize-clips", cache_policy=NO_CACHE)
def synthesize_batch(jobs: list[dict]) -> list[dict]:
    return run_batch(_synthesize_job, jobs)  # no cache: the corpus is made whole or not at all


def _synthesize_job(job: dict) -> dict:
    summary = synthesize_clip(ClipSpec(**job["spec"]), job["identity"], _engine(job["voice"]), Path(job["folder"]),
                              job["seed"])
    return {"status": "ok", **summary}


@flow(name="sample-corpus")
def sample_corpus_flow(out_dir: str, params: dict) -> FanOut:
    """Generate the corpus into a temporary folder and move it into place when complete."""
    corpus = CorpusParams.from_dict(params)
    specs = plan(corpus)
    out = Path(out_dir)
    check_output_folder(out)
    identities = build_identities(corpus)
    with atomic_folder(out) as staging:
        jobs = [{"clip_id": s.clip_id, "spec": asdict(s), "identity": identities[s.identity], "folder": str(staging),
                 "seed": corpus.seed, "voice": corpus.voice} for s in specs]
        fan = fan_out(synthesize_batch, jobs, desc="sample_corpus")
        failed = fan.rejected
        if failed:
            raise RuntimeError(f"{len(failed)} clips failed, first: {failed[0]['detail']}")
        corpus_sheet(staging, fan.results, corpus.identities)
        write_json_atomic(staging / "corpus.json", {"params": corpus.as_dict(), "clips": [s.clip_id for s in specs]})
    return fan


def run(out_dir: str, params: CorpusParams, runner: RunnerParams) -> tuple[FanOut, float]:
    """Run the flow with the task runner named in params (``params`` crosses into Prefect as a dict);
    returns the fan-out and the wall time."""
    started = time.perf_counter()
    with worker_processes(runner):
        fan = sample_corpus_flow.with_options(task_runner=make_task_runner(runner))(out_dir, params.as_dict())
    return fan, time.perf_counter() - started
