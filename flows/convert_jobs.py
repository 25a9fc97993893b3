"""One clip's work for the convert_fps flow: a job (a dict) in, a result (a dict) out.

What the worker processes of ``runner.kind: processes`` (and Dask's workers) import to run a clip:
no Prefect and no torch, so a worker starts in under a second with about 100 MB.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from synthtext.data.convert import VIDEO_SUFFIX, convert_clip, read_sidecar
from synthtext.data.naming import find_videos, parse_clip_name
from synthtext.ops.codedeps import code_version
from synthtext.ops.config import ConvertParams
from synthtext.ops.errors import ClipRejected
from synthtext.ops.hashing import file_md5, stable_hash

CODE_VERSION = code_version("synthtext.data.convert")  # every file convert_clip can run
REPORT = "convert_report.json"


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
