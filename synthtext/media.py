"""Video and audio I/O through the ffmpeg binary shipped in ``imageio-ffmpeg`` and OpenCV."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import soundfile as sf

from synthtext.errors import ClipRejected, SynthTextError
from synthtext.files import tmp_path


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (no system ffmpeg needed)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    has_video: bool
    has_audio: bool
    duration: float
    fps: float
    width: int
    height: int


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")


def probe(path: str | Path) -> MediaInfo:
    """Read stream information from ``ffmpeg -i``; raise ClipRejected for empty or unreadable files."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ClipRejected("empty_file", f"{path.name} is zero bytes")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                          errors="replace")
    text = proc.stderr
    video = _VIDEO.search(text)
    if "Invalid data found" in text or video is None:
        last = text.strip().splitlines()[-1] if text.strip() else "no output"
        raise ClipRejected("corrupt", f"{path.name}: ffmpeg found no readable video stream ({last})")
    duration = _DURATION.search(text)
    seconds = 0.0
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    video_line = text[video.start():].splitlines()[0]
    fps = _FPS.search(video_line)
    return MediaInfo(
        has_video=True,
        has_audio=re.search(r"Stream #\S+.*?: Audio: ", text) is not None,
        duration=seconds,
        fps=float(fps.group(1)) if fps else 0.0,
        width=int(video.group(1)),
        height=int(video.group(2)),
    )


def _run_ffmpeg(args: list[str], src: Path, what: str) -> None:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *args], capture_output=True,
                          text=True, errors="replace")
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise ClipRejected("corrupt", f"{src.name}: ffmpeg could not decode the {what} ({last})")


def convert_av(src: Path, mp4: Path, wav: Path, fps: int, crf: int, sample_rate: int, preset: str) -> None:
    """``src``'s video resampled to ``fps`` as H.264 mp4, and its first audio stream as mono 16-bit PCM
    wav at ``sample_rate``, from one ffmpeg process (one decode, one start-up). Bit-exact and
    reproducible; each output written to a temporary name and renamed when both are complete."""
    tmp_mp4, tmp_wav = tmp_path(mp4, keep_suffix=True), tmp_path(wav, keep_suffix=True)
    exact = ["-fflags", "+bitexact", "-map_metadata", "-1"]
    try:
        _run_ffmpeg(["-i", str(src),
                     "-map", "0:v:0", "-vf", f"fps={fps}", "-an", "-c:v", "libx264", "-preset", preset,
                     "-crf", str(crf), "-pix_fmt", "yuv420p", "-threads", "1", "-flags:v", "+bitexact", *exact,
                     "-movflags", "+faststart", str(tmp_mp4),
                     "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le",
                     "-flags:a", "+bitexact", *exact, str(tmp_wav)], src, "clip")
        os.replace(tmp_mp4, mp4)
        os.replace(tmp_wav, wav)
    finally:
        tmp_mp4.unlink(missing_ok=True)
        tmp_wav.unlink(missing_ok=True)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), sr


SPEECH_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".webm", ".mp4")
SILENT_DB = -60.0  # a recording quieter than this (RMS, dBFS) holds no speech to follow
_AUDIO_RATE = re.compile(r"Stream #\S+.*?: Audio: .*?(\d{4,6}) Hz")


def load_speech(path: str | Path) -> tuple[np.ndarray, int]:
    """A recording in any format the bundled ffmpeg reads (wav, mp3, flac, ogg, m4a, ...), at any
    sample rate, mono or stereo: mono float32 samples at the file's own rate, and that rate. Raises
    ``SynthTextError`` with one clear reason for a missing, empty, unreadable or silent file."""
    path = Path(path)
    if not path.is_file():
        raise SynthTextError(f"audio file {path} not found")
    if path.stat().st_size == 0:
        raise SynthTextError(f"audio file {path} is empty (0 bytes)")
    probe_run = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                               errors="replace")
    rate = _AUDIO_RATE.search(probe_run.stderr)
    if rate is None:
        last = probe_run.stderr.strip().splitlines()[-1] if probe_run.stderr.strip() else "no output"
        raise SynthTextError(f"audio file {path} holds no audio ffmpeg can read ({last})")
    decoded = subprocess.run([ffmpeg_exe(), "-hide_banner", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn",
                              "-ac", "1", "-f", "f32le", "-acodec", "pcm_f32le", "-"], capture_output=True)
    if decoded.returncode != 0:
        last = decoded.stderr.decode(errors="replace").strip().splitlines()
        raise SynthTextError(f"audio file {path} could not be decoded ({last[-1] if last else 'ffmpeg failed'})")
    audio = np.frombuffer(decoded.stdout, np.float32).copy()
    sample_rate = int(rate.group(1))
    if audio.size < sample_rate // 10:
        raise SynthTextError(f"audio file {path} holds {audio.size / sample_rate:.2f} s of sound: give at least "
                             "0.1 s of speech")
    level = audio_level_db(audio)
    if level < SILENT_DB:
        raise SynthTextError(f"audio file {path} is silent (level {level:.0f} dBFS): give a recording of speech")
    return np.clip(audio, -1.0, 1.0), sample_rate


def audio_level_db(audio: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def iter_frames(path: str | Path):
    """Yield RGB uint8 frames of a video one at a time (memory stays flat in clip length)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ClipRejected("corrupt", f"{Path(path).name}: OpenCV could not open the video")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()




def write_video(path: str | Path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
                sample_rate: int = 16000) -> None:
    """Encode RGB uint8 frames [T, H, W, 3] (+ mono audio) as H.264 + AAC mp4 with +faststart, atomically."""
    with VideoWriter(path, fps, audio, sample_rate) as writer:
        writer.write(frames)


class VideoWriter:
    """An H.264 + AAC mp4 (+faststart) fed chunk by chunk (``write``) through one ffmpeg process, so
    memory does not grow with the video's length; the frame size is the first chunk's. Written to a
    temporary name and renamed when ``close`` (the end of the ``with`` block) finishes; on an error
    nothing is left behind."""

    def __init__(self, path: str | Path, fps: float, audio: np.ndarray | None = None, sample_rate: int = 16000):
        self.path, self.fps = Path(path), fps
        self.tmp = tmp_path(self.path, keep_suffix=True)
        self.scratch = tempfile.TemporaryDirectory()
        self.wav = None
        if audio is not None:
            self.wav = Path(self.scratch.name) / "audio.wav"
            sf.write(self.wav, audio, sample_rate, subtype="PCM_16")
        self.errors = open(Path(self.scratch.name) / "ffmpeg.log", "w+b")  # a file, not a pipe: no deadlock
        self.process: subprocess.Popen | None = None
        self.frames = 0

    def write(self, frames: np.ndarray) -> None:
        """RGB uint8 frames [T, H, W, 3], all of the first chunk's size."""
        if self.process is None:
            self._start(frames.shape[2], frames.shape[1])
        elif frames.shape[1:3] != self.shape:
            raise ValueError(f"{self.path}: frames of {frames.shape[2]}x{frames.shape[1]} after "
                             f"{self.shape[1]}x{self.shape[0]}")
        self.process.stdin.write(np.ascontiguousarray(frames).tobytes())
        self.frames += len(frames)

    def _start(self, width: int, height: int) -> None:
        self.shape = (height, width)
        inputs = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(self.fps), "-i", "-"]
        if self.wav is not None:
            inputs += ["-i", str(self.wav), "-c:a", "aac", "-b:a", "128k", "-shortest"]
        cmd = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *inputs, "-c:v", "libx264", "-pix_fmt",
               "yuv420p", "-preset", "veryfast", "-crf", "18", "-movflags", "+faststart", str(self.tmp)]
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.errors)

    def close(self) -> None:
        """Finish the file and move it into place (raises ``CalledProcessError`` if ffmpeg failed)."""
        try:
            if self.process is None or not self.frames:
                raise ValueError(f"{self.path}: no frames were written")
            self.process.stdin.close()
            code = self.process.wait()
            if code:
                self.errors.seek(0)
                raise subprocess.CalledProcessError(code, self.process.args, stderr=self.errors.read())
            os.replace(self.tmp, self.path)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.tmp.unlink(missing_ok=True)
        self.errors.close()
        self.scratch.cleanup()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, value, trace) -> None:
        if kind is None:
            self.close()
        else:
            with contextlib.suppress(BrokenPipeError, OSError):
                if self.process is not None:
                    self.process.stdin.close()
            self._cleanup()


def write_wav_atomic(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Mono 16-bit PCM WAV, written to a temporary name and renamed when complete."""
    path = Path(path)
    tmp = tmp_path(path)
    try:
        sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
