"""FPS conversion of one raw clip: 25 fps H.264 mp4 (or, with ``convert_fps.video: copy``, the source's
video stream unchanged in .mkv, which align resamples to 25 fps) + 16 kHz mono wav + a JSON sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from synthtext.data import media
from synthtext.ops.config import ConvertParams
from synthtext.ops.errors import ClipRejected
from synthtext.ops.files import write_json_atomic

VIDEO_SUFFIX = {"encode": ".mp4", "copy": ".mkv"}


def outputs(out_dir: Path, clip_id: str, video: str = "encode") -> tuple[Path, Path, Path]:
    """The video, wav and sidecar paths of a converted clip (``video``: convert_fps.video)."""
    return out_dir / f"{clip_id}{VIDEO_SUFFIX[video]}", out_dir / f"{clip_id}.wav", out_dir / f"{clip_id}.json"


def read_sidecar(out_dir: Path, clip_id: str) -> dict | None:
    """The sidecar of a completely converted clip, or None if any output is missing."""
    sidecar = out_dir / f"{clip_id}.json"
    if not sidecar.is_file():
        return None
    record = json.loads(sidecar.read_text())
    video, wav, _ = outputs(out_dir, clip_id, record.get("video", "encode"))
    return record if video.is_file() and wav.is_file() else None


def convert_clip(src: Path, out_dir: Path, clip_id: str, params: ConvertParams, source_md5: str,
                 key: str) -> dict:
    """Convert one clip; the sidecar (written last) records ``key`` and what was measured. For a copied
    video (``convert_fps.video: copy``) ``frames`` counts by the container's timestamps, and align
    resamples by the decoded frames' own.

    Raises ClipRejected (empty, corrupt, no audio, silent audio) and then leaves no output behind.
    """
    video, wav, sidecar = outputs(out_dir, clip_id, params.video)
    try:
        if params.video == "copy":
            info, timestamps = media.copy_av(src, video, wav, params.sample_rate)
            frames = len(media.fps_selection(timestamps, params.fps))
        else:
            info = media.convert_av(src, video, wav, params.fps, params.crf, params.sample_rate, params.preset)
            capture = cv2.VideoCapture(str(video))
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            capture.release()
        audio, _ = media.read_audio(wav)
        level = media.audio_level_db(audio)
        if level < params.min_audio_db:
            raise ClipRejected("silent_audio", f"{src.name}: audio level {level:.1f} dBFS is below "
                               f"convert_fps.min_audio_db={params.min_audio_db}")
        if frames <= 0:
            raise ClipRejected("corrupt", f"{src.name}: converted video has no frames")
    except ClipRejected:
        for path in (video, wav, sidecar):
            path.unlink(missing_ok=True)
        raise
    record = {"clip_id": clip_id, "source": str(src), "source_md5": source_md5, "key": key,
              "video": params.video, "frames": frames, "fps": params.fps, "sample_rate": params.sample_rate,
              "audio_samples": int(audio.size), "audio_db": round(level, 2),
              "source_fps": info.fps, "source_size": [info.width, info.height], "source_start": info.start}
    write_json_atomic(sidecar, record)
    return record


def video_input(out_dir: Path, sidecar: dict) -> tuple[Path, Path, float | None]:
    """What align reads for a converted clip: its video, its wav, and for a copied video (at its own
    rate) the video stream's start in seconds, None for a video already at ``fps``."""
    mode = sidecar.get("video", "encode")
    video, wav, _ = outputs(out_dir, sidecar["clip_id"], mode)
    return video, wav, sidecar["source_start"] if mode == "copy" else None
