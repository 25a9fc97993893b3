"""Task runners chosen in params, and the per-clip fan-out shared by the data stages."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import TypeVar

from prefect.futures import as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner
from tqdm import tqdm

from synthtext.config import RunnerParams

T = TypeVar("T")


def make_task_runner(runner: RunnerParams) -> TaskRunner:
    """The ``runner`` section of params.yaml -> a Prefect task runner.

    ``kind``: threads | processes | dask; ``workers``: parallel clips; ``dask_address``: an existing
    Dask scheduler (``tcp://host:8786``) to scale out past one machine, else a local cluster.
    ``processes`` runs the per-clip tasks in threads that hand their work to ``worker_processes``:
    Prefect's own process pool costs about 75 ms of wall time a task on 2 cores (150 ms of CPU, more
    than converting a clip), its thread pool 7 ms.
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
    landmark model or voice each, loaded on first use) that its per-clip tasks run their work in
    through ``in_worker``. Any other kind: nothing (the work runs where the task runs)."""
    global _POOL
    if runner.kind != "processes":
        yield
        return
    with ProcessPoolExecutor(max_workers=runner.workers or None, mp_context=get_context("spawn")) as pool:
        _POOL = pool
        try:
            yield
        finally:
            _POOL = None


def in_worker(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` in the running flow's worker processes, or here when it has none
    (``fn`` and its arguments must pickle; an exception it raises is raised here)."""
    return _POOL.submit(fn, *args, **kwargs).result() if _POOL is not None else fn(*args, **kwargs)


def clip_cache_key(context, parameters: dict) -> str:
    """Prefect cache key of a per-clip task: the ``key`` argument, which the flow builds from the
    clip's content hash, the stage's params and the code version (a path alone is not a content key)."""
    return parameters["key"]


@dataclass
class FanOut:
    """What a per-clip fan-out did."""

    results: list[dict] = field(default_factory=list)
    cached: set[str] = field(default_factory=set)  # clip ids answered from Prefect's cache
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


def fan_out(task, jobs: list[dict], verify: Callable[[dict], bool], desc: str) -> FanOut:
    """Run ``task`` once per job in parallel, with a progress bar.

    A cache hit whose outputs are no longer on disk (or were overwritten by another params set)
    fails ``verify`` and is recomputed with the cache refreshed. A task that raises (a bug or a
    broken machine, not a bad clip) is reported with reason ``error`` and does not stop the others.
    """
    started = time.perf_counter()
    out = FanOut()
    pending = [(task, job) for job in jobs]
    with tqdm(total=len(jobs), desc=desc, unit="clip") as bar:
        while pending:
            futures = {submitter.submit(**job): job for submitter, job in pending}
            pending = []
            for future in as_completed(list(futures)):
                job = futures[future]
                result = future.result(raise_on_failure=False)
                if isinstance(result, BaseException):
                    result = {"clip_id": job["clip_id"], "status": "rejected", "reason": "error",
                              "detail": f"{type(result).__name__}: {result}"}
                elif future.state.name == "Cached":
                    if result["status"] == "ok" and not verify(result):
                        pending.append((task.with_options(refresh_cache=True), job))
                        continue
                    out.cached.add(result["clip_id"])
                out.results.append(result)
                bar.update()
    out.results.sort(key=lambda r: r["clip_id"])
    out.seconds = time.perf_counter() - started
    return out
