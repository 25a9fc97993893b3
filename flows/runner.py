"""Task runners chosen in params, and the per-clip fan-out shared by the data stages."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import TypeVar

from prefect.futures import as_completed
from prefect.results import ResultStore, get_result_store
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner
from tqdm import tqdm

from synthtext.ops.config import RunnerParams

T = TypeVar("T")
BATCH = 16  # clips per Prefect task at most (fan_out)
HUGE_PAGES = "glibc.malloc.hugetlb=1"  # glibc 2.35+: malloc's memory on transparent huge pages


def make_task_runner(runner: RunnerParams) -> TaskRunner:
    """The ``runner`` section of params.yaml -> a Prefect task runner.

    ``kind``: threads | processes | dask; ``workers``: parallel clips; ``dask_address``: an existing
    Dask scheduler (``tcp://host:8786``) to scale out past one machine, else a local cluster.
    ``processes`` runs the Prefect tasks (batches of clips, ``fan_out``) in threads that hand each
    clip to ``worker_processes``: Prefect's own process pool costs about 75 ms of wall time a task on
    2 cores (150 ms of CPU, more than converting a clip), its thread pool 7 ms.
    """
    workers = runner.workers or None
    if runner.kind in ("threads", "processes"):
        return ThreadPoolTaskRunner(max_workers=workers)
    # dask, the one kind left (RunnerParams accepts no other)
    if runner.dask_address:
        return DaskTaskRunner(address=runner.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers or 2, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})


_POOL: ProcessPoolExecutor | None = None  # the worker processes of the flow running now, if any


@contextlib.contextmanager
def worker_processes(runner: RunnerParams):
    """While a flow runs with ``runner.kind: processes``: a pool of worker processes (spawned, one
    landmark model or voice each, loaded on first use) that its tasks run each clip's work in
    through ``each_in_worker``. Any other kind: no pool (the work runs where the task runs). Processes
    started meanwhile use huge pages (``huge_pages_for_children``)."""
    global _POOL
    pool = (ProcessPoolExecutor(max_workers=runner.workers or None, mp_context=get_context("spawn"))
            if runner.kind == "processes" else contextlib.nullcontext())
    with huge_pages_for_children(), pool as _POOL:
        try:
            yield
        finally:
            _POOL = None


@contextlib.contextmanager
def huge_pages_for_children():
    """While open, processes started from this one (the worker pool, Dask's local workers, ffmpeg) start
    with glibc's malloc on transparent huge pages (``GLIBC_TUNABLES``; read only when a process starts, so
    the process that opens this keeps its pages). dlib's 68-point model is ~100 MB of small allocations
    read at random for every frame: on 4 KB pages most of those reads also miss the TLB. On 2 cores
    align ran 3-14% faster (4 back-to-back pairs), the same bytes out. A ``glibc.malloc.hugetlb`` the
    user set is kept; other C libraries ignore the variable."""
    before = os.environ.get("GLIBC_TUNABLES")
    if before is not None and "glibc.malloc.hugetlb=" in before:
        yield
        return
    os.environ["GLIBC_TUNABLES"] = f"{before}:{HUGE_PAGES}" if before else HUGE_PAGES
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GLIBC_TUNABLES", None)
        else:
            os.environ["GLIBC_TUNABLES"] = before


def each_in_worker(fn: Callable[[dict], T], jobs: list[dict]) -> Iterator[tuple[int, T | BaseException]]:
    """``fn(job)`` for every job, all at once in the running flow's worker processes (one after another
    here when it has none): (index, result or the exception it raised), in the order they finish."""
    if _POOL is None:
        for index, job in enumerate(jobs):
            try:
                yield index, fn(job)
            except Exception as exc:  # noqa: BLE001 - reported as that clip's error, the others go on
                yield index, exc
        return
    futures = {_POOL.submit(fn, job): index for index, job in enumerate(jobs)}
    for future in concurrent.futures.as_completed(futures):
        yield futures[future], future.exception() or future.result()


def _error(job: dict, exc: BaseException) -> dict:
    return {"clip_id": job["clip_id"], "status": "rejected", "reason": "error",
            "detail": f"{type(exc).__name__}: {exc}"}


def _stored(store: ResultStore, key: str) -> dict | None:
    try:
        return store.read(key).result if store.exists(key) else None
    except Exception:  # noqa: BLE001 - an unreadable record is recomputed, as a missing one
        return None


def run_batch(work: Callable[[dict], dict], jobs: list[dict],
              current: Callable[[dict, dict], bool] | None = None) -> list[dict]:
    """The body of a Prefect task that runs a batch of per-clip jobs (``fan_out``).

    With ``current``, a clip's result is cached in Prefect's result store under the job's ``key``
    (its content hash, the stage's params and the code version): a stored result is reused when
    ``current(job, result)`` confirms its outputs are still on disk (rejections need no outputs);
    any other clip is computed by ``work(job)`` in the worker processes and stored as soon as it is
    done, so a killed run loses only the clips in progress. A ``work`` that raises (a bug or a broken
    machine, not a bad clip) gives reason ``error``, is not stored, and does not stop the others.
    Returns ``{"result": ..., "cached": bool}`` per job, in the order of ``jobs``.
    """
    store = get_result_store() if current is not None else None
    answers: list[dict | None] = [None] * len(jobs)
    todo = []
    for index, job in enumerate(jobs):
        stored = _stored(store, job["key"]) if store is not None else None
        if stored is not None and (stored["status"] != "ok" or current(job, stored)):
            answers[index] = {"result": stored, "cached": True}
        else:
            todo.append(index)
    for index, result in each_in_worker(work, [jobs[i] for i in todo]):
        job = jobs[todo[index]]
        if isinstance(result, BaseException):
            result = _error(job, result)
        elif store is not None:
            store.write(result, key=job["key"])
        answers[todo[index]] = {"result": result, "cached": False}
    return answers


def batch_size(jobs: int) -> int:
    """Clips per Prefect task: enough tasks to keep every worker busy to the end (at least 16),
    at most BATCH clips each (Prefect's cost, about 10 ms of CPU a task, then stays under 1 ms a clip)."""
    return max(1, min(BATCH, jobs // 16))


@dataclass
class FanOut:
    """What a per-clip fan-out did."""

    results: list[dict] = field(default_factory=list)
    cached: set[str] = field(default_factory=set)  # clip ids answered from Prefect's cache
    batches: int = 0  # Prefect tasks run
    seconds: float = 0.0

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.results if r["status"] == "ok"]

    @property
    def rejected(self) -> list[dict]:
        return [r for r in self.results if r["status"] != "ok"]

    def summary(self, stage: str) -> str:
        """One line: clips in, written (cached), rejected by reason, frames/s of fresh work."""
        reasons = Counter(r["reason"] for r in self.rejected)
        fresh_frames = sum(r.get("frames", 0) for r in self.ok if r["clip_id"] not in self.cached)
        reused = sum(1 for r in self.ok if r["clip_id"] in self.cached)
        rate = fresh_frames / self.seconds if self.seconds > 0 else 0.0
        rejected = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "none"
        return (f"{stage}: {len(self.results)} clips in, {len(self.ok)} written ({reused} from cache), "
                f"{len(self.rejected)} rejected ({rejected}), {rate:.0f} frames/s")


def fan_out(task, jobs: list[dict], desc: str) -> FanOut:
    """Run ``task`` (whose body is ``run_batch``) on batches of ``jobs`` in parallel, with a progress bar.

    One Prefect task per batch of up to ``BATCH`` clips rather than one a clip: a task costs about 10
    ms of CPU in the flow's process and 5 ms in the server, as much as converting a clip takes
    (``processes``: each clip of a batch is still a job of its own in the worker pool). A batch that
    fails as a whole (its Dask worker gone for good) reports each of its clips with reason ``error``.
    """
    started = time.perf_counter()
    out = FanOut()
    size = batch_size(len(jobs))
    batches = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    out.batches = len(batches)
    with tqdm(total=len(jobs), desc=desc, unit="clip") as bar:
        futures = {task.submit(batch): batch for batch in batches}
        for future in as_completed(list(futures)):
            batch = futures[future]
            answers = future.result(raise_on_failure=False)
            if isinstance(answers, BaseException):
                answers = [{"result": _error(job, answers), "cached": False} for job in batch]
            for answer in answers:
                out.results.append(answer["result"])
                if answer["cached"]:
                    out.cached.add(answer["result"]["clip_id"])
            bar.update(len(batch))
    out.results.sort(key=lambda r: r["clip_id"])
    out.seconds = time.perf_counter() - started
    return out
