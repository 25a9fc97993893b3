"""Video and audio I/O through the ffmpeg binary shipped in ``imageio-ffmpeg`` and OpenCV."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import imageio_ffmpeg
import numpy as np
import soundfile as sf

from synthtext.ops.errors import ClipRejected, SynthTextError
from synthtext.ops.files import atomic_path, tmp_path

T = TypeVar("T")


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
    start: float = 0.0  # the video stream's first timestamp, seconds (ffmpeg prints it where not 0)


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_START = re.compile(r"start (-?\d+(?:\.\d+)?)")


def probe(path: str | Path) -> MediaInfo:
    """Read stream information from ``ffmpeg -i``; raise ClipRejected for empty or unreadable files."""
    path = Path(path)
    _check_not_empty(path)
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                          errors="replace")
    return parse_info(proc.stderr, path)


def _check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise ClipRejected("empty_file", f"{path.name} is zero bytes")


def parse_info(text: str, path: Path) -> MediaInfo:
    """The first input's streams from ffmpeg's log (``ffmpeg -i`` or a conversion logging at info level:
    only the text before ``Stream mapping`` / ``Output #`` is read); ClipRejected when it has no video."""
    text = re.split(r"^(?:Stream mapping:|Output #)", text, maxsplit=1, flags=re.MULTILINE)[0]
    video = _VIDEO.search(text)
    if "Invalid data found" in text or video is None:
        raise ClipRejected("corrupt", f"{path.name}: ffmpeg found no readable video stream "
                           f"({_last_line(text, 'no output')})")
    duration = _DURATION.search(text)
    seconds = 0.0
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    video_line = text[video.start():].splitlines()[0]
    fps = _FPS.search(video_line)
    start = _START.search(video_line)
    return MediaInfo(
        has_video=True,
        has_audio=re.search(r"Stream #\S+.*?: Audio: ", text) is not None,
        duration=seconds,
        fps=float(fps.group(1)) if fps else 0.0,
        width=int(video.group(1)),
        height=int(video.group(2)),
        start=float(start.group(1)) if start else 0.0,
    )


def _last_line(text: str, fallback: str) -> str:
    return text.strip().splitlines()[-1] if text.strip() else fallback


def convert_av(src: Path, mp4: Path, wav: Path, fps: int, crf: int, sample_rate: int, preset: str) -> MediaInfo:
    """``src``'s video resampled to ``fps`` as H.264 mp4, and its first audio stream as mono 16-bit PCM
    wav at ``sample_rate``, from one ffmpeg process (one start-up, one decode; the source's stream
    information comes from the same run's log, so no separate probe). Bit-exact and reproducible;
    each output written to a temporary name and renamed when both are complete. Returns the source's
    ``MediaInfo``; raises ClipRejected (empty_file, corrupt, no_audio) and then leaves no output."""
    video = ["-vf", f"fps={fps}", "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
             "-threads", "1", "-flags:v", "+bitexact", "-movflags", "+faststart"]
    return _split_av(src, video, mp4, wav, sample_rate)[0]


def copy_av(src: Path, mkv: Path, wav: Path, sample_rate: int) -> tuple[MediaInfo, list[int]]:
    """``src``'s video stream copied unchanged (no decode, no encode) into a Matroska file, its audio
    as ``convert_av``'s wav, and the video packets' timestamps (ms, sorted), from one ffmpeg process.
    ``fps_selection(timestamps, fps)`` counts the frames at ``fps``; align resamples by the decoded
    frames' timestamps (``iter_frames(path, fps, start)``), which stay right where a container's are
    not (packets without their own timestamp)."""
    return _split_av(src, ["-c:v", "copy"], mkv, wav, sample_rate, timestamps=True)


def _split_av(src: Path, video_args: list[str], video: Path, wav: Path, sample_rate: int,
              timestamps: bool = False) -> tuple[MediaInfo, list[int]]:
    _check_not_empty(src)
    tmp_video, tmp_wav = tmp_path(video, keep_suffix=True), tmp_path(wav, keep_suffix=True)
    tmp_times = tmp_path(video.with_suffix(".pts"))
    exact = ["-fflags", "+bitexact", "-map_metadata", "-1"]
    times_out = ["-map", "0:v:0", "-c:v", "copy", "-f", "mkvtimestamp_v2", str(tmp_times)] if timestamps else []
    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostats", "-y", "-i", str(src),
             "-map", "0:v:0", "-an", *video_args, *exact, str(tmp_video), *times_out,
             "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le",
             "-flags:a", "+bitexact", *exact, str(tmp_wav)], capture_output=True, text=True, errors="replace")
        info = parse_info(proc.stderr, src)
        if not info.has_audio:
            raise ClipRejected("no_audio", f"{src.name} has no audio stream")
        if proc.returncode != 0:
            raise ClipRejected("corrupt", f"{src.name}: ffmpeg could not decode the clip "
                               f"({_last_line(proc.stderr, f'exit {proc.returncode}')})")
        times = sorted(round(float(line)) for line in tmp_times.read_text().splitlines()[1:] if line.strip()) \
            if timestamps else []
        if timestamps and not times:
            raise ClipRejected("corrupt", f"{src.name}: the video stream holds no frames")
        os.replace(tmp_video, video)
        os.replace(tmp_wav, wav)
        return info, times
    finally:
        for path in (tmp_video, tmp_wav, tmp_times):
            path.unlink(missing_ok=True)


def _round(x: float) -> int:
    return int(np.floor(x + 0.5))  # halves up: ffmpeg's default rounding for the timestamps of a clip


def resample(stamped: Iterable[tuple[float, T]], fps: float) -> Iterator[T]:
    """Items with timestamps (ms, increasing) at ``fps``, by ffmpeg's fps filter rule: each timestamp
    is rounded to the nearest output tick; each tick takes the latest item at or before it, so items
    are dropped or repeated; the last item lasts as long as the gap before it. ``convert_av`` (the
    fps filter) and this give the same frames, so a copied video aligns like an encoded one."""
    previous: tuple[float, T] | None = None
    tick = gap = None
    for ms, item in stamped:
        at = _round(ms * fps / 1000)
        if previous is None:
            tick = at
        else:
            gap = ms - previous[0]
            while tick < at:
                yield previous[1]
                tick += 1
        previous = (ms, item)
    if previous is not None:
        end = _round((previous[0] + (gap if gap is not None else 1000 / fps)) * fps / 1000)
        while tick < end:
            yield previous[1]
            tick += 1


def fps_selection(timestamps: list[float], fps: float) -> list[int]:
    """Which of the frames at ``timestamps`` (ms) make the clip at ``fps`` (indices into the sorted
    timestamps; ``resample``'s rule)."""
    return list(resample(((ms, index) for index, ms in enumerate(sorted(timestamps))), fps))


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
        last = _last_line(probe_run.stderr, "no output")
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


def iter_frames(path: str | Path, fps: float | None = None, start: float = 0.0) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames of a video one at a time (memory stays flat in clip length); with
    ``fps``, resampled to that rate by the decoded frames' timestamps (``resample``; ``start``: the
    video stream's first timestamp in seconds, which OpenCV's timestamps leave out), as
    ``convert_fps.video: copy`` leaves the video at its own rate."""
    # one decoding thread: parallel work comes from decoding several clips at once
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        raise ClipRejected("corrupt", f"{Path(path).name}: OpenCV could not open the video")

    def decoded():
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield cap.get(cv2.CAP_PROP_POS_MSEC) + 1000 * start, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    frames = decoded()
    yield from resample(frames, fps) if fps else (frame for _, frame in frames)


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
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
