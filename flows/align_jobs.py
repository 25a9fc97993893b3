"""One clip's work for the align flow: a job (a dict) in, a result (a dict) out.

What the worker processes of ``runner.kind: processes`` (and Dask's workers) import to run a clip:
no Prefect and no torch, so a worker starts in under a second with about 100 MB.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import h5py

from synthtext.data.align import align_clip
from synthtext.data.landmarks import LandmarkBackend, make_backend
from synthtext.data.naming import parse_clip_name
from synthtext.ops.config import AlignParams
from synthtext.ops.errors import ClipRejected

_local = threading.local()


def backend(name: str, upsample: int) -> LandmarkBackend:
    """One landmark model per worker thread/process, loaded on first use. OpenCV then runs on one
    thread in this process: the parallel work is the clips (its own thread pool, two threads a worker
    on 2 cores, cost 6% more CPU a frame in wakeups and context switches, 2.6-3.4 against 0.3 a frame)."""
    cache = _local.__dict__.setdefault("backends", {})
    if (name, upsample) not in cache:
        cv2.setNumThreads(1)
        cache[name, upsample] = make_backend(name, upsample)
    return cache[name, upsample]


def align(job: dict) -> dict:
    """Align one converted clip (``align``): what was measured, or its rejection."""
    params = AlignParams.from_dict(job["params"])
    name = parse_clip_name(job["source"])
    try:
        stats = align_clip(name, Path(job["video"]), Path(job["wav"]), Path(job["dst"]),
                           backend(params.backend, params.detect_upsample), params, job["fps"],
                           job["source_md5"], job["key"], job["start"])
    except ClipRejected as exc:
        return {"clip_id": job["clip_id"], "stage": "align", "status": "rejected", "reason": exc.reason,
                "detail": exc.detail}
    return {"clip_id": job["clip_id"], "actor": name.actor, "emotion": name.emotion, "status": "ok",
            "key": job["key"], **stats}


def clip_key(path: Path) -> str | None:
    """The cache key an aligned clip file was written under (None: no readable file)."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("cache_key")
    except OSError:
        return None


def aligned(job: dict, result: dict) -> bool:
    """Whether a cached alignment's clip file is still there, from this key (not another params set's)."""
    return clip_key(Path(job["dst"])) == job["key"]
