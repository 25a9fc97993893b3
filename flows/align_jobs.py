"""One clip's work for the align flow: a job (a dict) in, a result (a dict) out.

What the worker processes of ``runner.kind: processes`` (and Dask's workers) import to run a clip:
no Prefect and no torch, so a worker starts in under a second with about 100 MB.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import cv2
import h5py

from synthtext.data.align import align_clip
from synthtext.data.convert import read_sidecar, video_input
from synthtext.data.landmarks import LandmarkBackend, make_backend
from synthtext.data.naming import parse_clip_name
from synthtext.ops.codedeps import code_version
from synthtext.ops.config import AlignParams
from synthtext.ops.errors import ClipRejected
from synthtext.ops.hashing import stable_hash

CODE_VERSION = code_version("synthtext.data.align")  # every file align_clip can run

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


def plan_jobs(source_dir: Path, out: Path, converted: list[dict], params: AlignParams) -> tuple[list[dict], list[dict]]:
    """One job per clip convert_fps wrote (with its cache key), and the clips it could not use."""
    jobs, earlier = [], []
    for clip in converted:
        sidecar = read_sidecar(source_dir, clip["clip_id"]) if clip["status"] == "ok" else None
        if sidecar is None:
            earlier.append({"stage": "convert_fps", **clip} if clip["status"] != "ok" else
                           {"clip_id": clip["clip_id"], "stage": "convert_fps", "status": "rejected",
                            "reason": "missing", "detail": "converted files are missing: rerun convert_fps"})
            continue
        key = stable_hash("align", str(out), sidecar["key"], params.as_dict(), CODE_VERSION)
        video, wav, start = video_input(source_dir, sidecar)
        jobs.append({"clip_id": clip["clip_id"], "source": sidecar["source"], "video": str(video), "wav": str(wav),
                     "start": start, "dst": str(out / f"{clip['clip_id']}.h5"), "params": params.as_dict(),
                     "fps": sidecar["fps"], "source_md5": sidecar["source_md5"], "key": key})
    return jobs, earlier


def align_metrics(fan) -> dict:
    """Small numbers for `dvc metrics show`: counts and landmark coverage."""
    frames = sum(r["frames"] for r in fan.ok)
    with_face = sum(r["frames_with_face"] for r in fan.ok)
    return {"clips_in": len(fan.results), "clips_written": len(fan.ok), "clips_rejected": len(fan.rejected),
            "rejected_by_reason": dict(sorted(Counter(r["reason"] for r in fan.rejected).items())),
            "frames": frames, "face_frame_ratio": round(with_face / frames, 4) if frames else 0.0,
            "detections_per_clip": round(sum(r["detections"] for r in fan.ok) / len(fan.ok), 3) if fan.ok else 0.0}
