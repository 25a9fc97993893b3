"""FPS conversion of one raw clip: 25 fps H.264 mp4 + 16 kHz mono wav + a JSON sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from synthtext import media
from synthtext.config import ConvertParams
from synthtext.errors import ClipRejected
from synthtext.files import write_json_atomic


def outputs(out_dir: Path, clip_id: str) -> tuple[Path, Path, Path]:
    """The mp4, wav and sidecar paths of a converted clip."""
    return out_dir / f"{clip_id}.mp4", out_dir / f"{clip_id}.wav", out_dir / f"{clip_id}.json"


def read_sidecar(out_dir: Path, clip_id: str) -> dict | None:
    """The sidecar of a completely converted clip, or None if any output is missing."""
    mp4, wav, sidecar = outputs(out_dir, clip_id)
    if not (mp4.is_file() and wav.is_file() and sidecar.is_file()):
        return None
    return json.loads(sidecar.read_text())


def convert_clip(src: Path, out_dir: Path, clip_id: str, params: ConvertParams, source_md5: str,
                 key: str) -> dict:
    """Convert one clip; the sidecar (written last) records ``key`` and what was measured.

    Raises ClipRejected (empty, corrupt, no audio, silent audio) and then leaves no output behind.
    """
    info = media.probe(src)
    if not info.has_audio:
        raise ClipRejected("no_audio", f"{src.name} has no audio stream")
    mp4, wav, sidecar = outputs(out_dir, clip_id)
    try:
        media.convert_av(src, mp4, wav, params.fps, params.crf, params.sample_rate, params.preset)
        audio, _ = media.read_audio(wav)
        level = media.audio_level_db(audio)
        if level < params.min_audio_db:
            raise ClipRejected("silent_audio", f"{src.name}: audio level {level:.1f} dBFS is below "
                               f"convert_fps.min_audio_db={params.min_audio_db}")
        capture = cv2.VideoCapture(str(mp4))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        if frames <= 0:
            raise ClipRejected("corrupt", f"{src.name}: converted video has no frames")
    except ClipRejected:
        for path in (mp4, wav, sidecar):
            path.unlink(missing_ok=True)
        raise
    record = {"clip_id": clip_id, "source": str(src), "source_md5": source_md5, "key": key,
              "frames": frames, "fps": params.fps, "sample_rate": params.sample_rate,
              "audio_samples": int(audio.size), "audio_db": round(level, 2),
              "source_fps": info.fps, "source_size": [info.width, info.height]}
    write_json_atomic(sidecar, record)
    return record
