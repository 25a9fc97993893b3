"""One clip's work for the convert_fps flow: a job (a dict) in, a result (a dict) out.

What the worker processes of ``runner.kind: processes`` (and Dask's workers) import to run a clip:
no Prefect and no torch, so a worker starts in under a second with about 100 MB.
"""

from __future__ import annotations

from pathlib import Path

from synthtext.data.convert import convert_clip, read_sidecar
from synthtext.ops.config import ConvertParams
from synthtext.ops.errors import ClipRejected


def convert(job: dict) -> dict:
    """Convert one raw clip (``convert_fps``): its sidecar's record, or its rejection."""
    try:
        record = convert_clip(Path(job["src"]), Path(job["out_dir"]), job["clip_id"],
                              ConvertParams.from_dict(job["params"]), job["source_md5"], job["key"])
    except ClipRejected as exc:
        return {"clip_id": job["clip_id"], "source": job["src"], "status": "rejected", "reason": exc.reason,
                "detail": exc.detail}
    return {"status": "ok", **record}


def converted(job: dict, result: dict) -> bool:
    """Whether a cached conversion's outputs are still there, from this key (not another params set's)."""
    sidecar = read_sidecar(Path(job["out_dir"]), job["clip_id"])
    return sidecar is not None and sidecar["key"] == job["key"]
