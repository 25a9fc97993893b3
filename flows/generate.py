"""The inference flow: every job (photo, text, emotion) one Prefect task, the model loaded once.

The work itself is ``synthtext.inference.videojobs``; here it is wired into Prefect: a thread pool of tasks,
the run recorded on the Prefect server like the training flows.
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from synthtext.inference.jobs import Job, Options
from synthtext.inference.videojobs import make_video_safely, make_videos


@task(name="make-video", cache_policy=NO_CACHE)
def make_video_task(job: Job, model, engine, options: Options, key: str) -> dict:
    return make_video_safely(job, model, engine, options, key)


def _submit(job: Job, model, engine, options: Options, key: str):
    # quote(): the model and the voice are passed as they are, not inspected for futures
    return make_video_task.submit(job, quote(model), quote(engine), options, key)


@flow(name="generate")
def generate_flow(jobs: list[dict], model_ref: str, options: dict, repo: str = ".") -> dict:
    """Render every job as a task in parallel; jobs whose output is up to date are skipped."""
    return make_videos(jobs, model_ref, options, repo, submit=_submit)


def run(jobs: list[Job], model_ref: str, options: Options, repo: str = ".", workers: int = 2) -> dict:
    """The flow with a pool of ``workers`` threads."""
    configured = generate_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=max(1, workers)))
    return configured([asdict(j) for j in jobs], model_ref, asdict(options), repo)
