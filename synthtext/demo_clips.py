"""A handful of small CREMA-D-format clips made from scikit-image's bundled portrait.

Stand-in input so `make demo` and the tests run the prep stages with no dataset download:
480x360 @ 29.97 fps (so FPS conversion does real work), CREMA-D names, a speech-like audio track,
and gentle head motion so face tracking is exercised. The full sample corpus (lip motion,
expressions, neural TTS) is a later stage of the project.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from synthtext import EMOTIONS
from synthtext.media import ffmpeg_exe, tmp_name

WIDTH, HEIGHT, FPS, SAMPLE_RATE = 480, 360, 30000 / 1001, 44100
SENTENCES = ("DFA", "IEO", "TIE", "IOM")


def portrait() -> np.ndarray:
    """Head and shoulders from ``skimage.data.astronaut()`` as RGB uint8."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[20:300, 100:360])


def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal (not words, but speech-shaped energy)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120 + 25 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3.5, 4.5) * t), 0, None) ** 1.5
    fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.15)
    return (0.25 * voice * syllables * fade / np.abs(voice).max()).astype(np.float32)


def render_frames(face: np.ndarray, frames: int, rng: np.random.Generator, flip: bool,
                  tint: np.ndarray) -> np.ndarray:
    """Frames [T, H, W, 3] of the portrait on a plain background with a small smooth head motion."""
    if flip:
        face = face[:, ::-1]
    face = np.clip(face.astype(np.float32) * tint, 0, 255).astype(np.uint8)
    scale = 0.95 * HEIGHT / face.shape[0]
    background = np.array(rng.integers(40, 200, 3), dtype=np.uint8)
    t = np.arange(frames) / FPS
    phases = rng.uniform(0, 2 * np.pi, 3)
    out = np.empty((frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for i in range(frames):
        angle = 2.0 * np.sin(2 * np.pi * 0.5 * t[i] + phases[0])
        dx = 6 * np.sin(2 * np.pi * 0.4 * t[i] + phases[1])
        dy = 3 * np.sin(2 * np.pi * 0.6 * t[i] + phases[2])
        matrix = cv2.getRotationMatrix2D((face.shape[1] / 2, face.shape[0] / 2), angle, scale)
        matrix[:, 2] += (WIDTH / 2 + dx - face.shape[1] / 2, HEIGHT * 0.55 + dy - face.shape[0] / 2)
        out[i] = cv2.warpAffine(face, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(c) for c in background))
    return out


def write_clip(path: Path, frames: np.ndarray, audio: np.ndarray) -> None:
    """Encode frames + audio with ffmpeg (.flv: FLV1 video; .mp4: H.264; AAC audio), atomically."""
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "audio.wav"
        sf.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
        video_codec = ["-c:v", "flv1", "-q:v", "3"] if path.suffix == ".flv" else \
            ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
        tmp = tmp_name(path)
        cmd = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{WIDTH}x{HEIGHT}", "-r", "30000/1001", "-i", "-", "-i", str(wav), *video_codec,
               "-c:a", "aac", "-b:a", "96k", "-threads", "1", "-fflags", "+bitexact", "-flags", "+bitexact",
               "-map_metadata", "-1", "-shortest", str(tmp)]
        try:
            subprocess.run(cmd, input=frames.tobytes(), check=True, capture_output=True)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def make_demo_clips(out_dir: str | Path, actors: int = 4, clips_per_actor: int = 2, seconds: float = 2.2,
                    seed: int = 0) -> list[Path]:
    """Write ``actors * clips_per_actor`` CREMA-D-named clips into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    face = portrait()
    paths = []
    for a in range(actors):
        actor = 1001 + a
        tint = rng.uniform(0.85, 1.15, 3)
        for c in range(clips_per_actor):
            emotion = EMOTIONS[(a + c * 3) % len(EMOTIONS)]
            suffix = ".flv" if (a + c) % 2 else ".mp4"
            path = out_dir / f"{actor}_{SENTENCES[c % len(SENTENCES)]}_{emotion}_XX{suffix}"
            frames = render_frames(face, round(seconds * FPS), rng, flip=bool(a % 2), tint=tint)
            write_clip(path, frames, speech_like(seconds, rng))
            paths.append(path)
    return paths
