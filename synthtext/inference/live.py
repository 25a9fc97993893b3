"""Live: a video that can be watched while it is being made.

- ``SentenceSpeech`` speaks the text sentence by sentence, each just ahead of its frames: the first
  sentence starts the video while the others are not spoken yet. The sentences and their seeds are
  those of ``tts.engines.synthesize_segments``, joined with the same pauses: the same speech.
- ``Blocks`` cuts the speech at the middle of each pause between sentences (on a frame border) into
  blocks the generator animates one after the other (``infer.animate_chunks`` each). What must not jump
  at a border is computed over the whole video so far and cut: the emotion weights (``markup.emotion_track``:
  its smooth changes at the segments' borders) and the blinks and head motion (``life.life_track``,
  scheduled from the speech so far and the seed). The network's own windows restart at each border,
  in the pause, where the mouth is shut.
- ``LiveWriter`` encodes the frames and the speech once (H.264 + AAC, one ffmpeg process) into the
  finished mp4 (+faststart, written to a temporary name and renamed when complete, as
  ``media.VideoWriter``) and, when asked, a fragmented MP4 beside it that grows a fragment every
  ``FRAGMENT_SECONDS``: any player (the page through Media Source Extensions, ffplay, VLC) can read it
  while it is written. That live file is the one output written in place, not renamed: it is read
  while it grows; its maker removes it when the job ends (the finished mp4 stays).
- ``serve_growing_file`` serves such a file over HTTP on this machine while it grows (``synthtext
  generate --live``).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthtext.data.clipfile import audio_length
from synthtext.data.media import VideoWriter, ffmpeg_exe
from synthtext.inference.infer import Animation, animate_chunks, frame_count
from synthtext.inference.life import Life, life_track
from synthtext.inference.markup import Segment, emotion_track, intensity_amount, voice_level
from synthtext.inference.tts.engines import synthesize_text
from synthtext.inference.tts.text import split_sentences
from synthtext.ops.errors import SynthTextError

FIRST_BATCH = 2  # the video's first piece is this many of the network's windows: its first frames come soon
# (one window alone is not sooner by much: most of a piece's time is the network's call, not its windows)
BLOCK_BATCHES = (FIRST_BATCH, 8)  # the windows a piece for the first blocks (sentences), then ``BATCH``: the pieces
BATCH = 16  # grow with the video ahead of the player, so the next one comes before the player needs it
PAUSE_SECONDS = 0.25  # between sentences and segments: ``synthesize_segments``'s pause
FRAGMENT_SECONDS = 0.25  # a fragment of the live file at least this often: the first piece's frames (0.48 s at
# 25 fps) hold more, so the first fragment is complete (a later packet has come) when they are encoded
KEYFRAME_SECONDS = 1.0  # a player can start (or seek) at most this far apart
FOLLOW_POLL_SECONDS = 0.02  # how often a reader of a growing file looks for more


def block_batch(index: int) -> int:
    """The windows a piece in block (sentence) ``index``: few for the first (its first frames come soon), then
    more (``BLOCK_BATCHES``), then ``BATCH`` (the fastest per frame)."""
    return BLOCK_BATCHES[index] if index < len(BLOCK_BATCHES) else BATCH


# ---------------------------------------------------------------- the speech, sentence by sentence


@dataclass(frozen=True)
class Sentence:
    text: str
    segment: int  # the index of its segment (``markup.Segment``: one emotion and intensity)
    seed: int | None


def plan_sentences(segments: list[Segment], seed: int | None = 0) -> list[Sentence]:
    """The sentences of the segments in order, with the seeds ``synthesize_segments`` gives them."""
    sentences = []
    for index, segment in enumerate(segments):
        for number, text in enumerate(split_sentences(segment.text)):
            sentences.append(Sentence(text, index, None if seed is None else seed + 1000 * index + number))
    if not sentences:
        raise SynthTextError("the text is empty: give some words to speak")
    return sentences


class SentenceSpeech:
    """The sentences' speech, each spoken when it is first asked for (``get``), in order: the first
    sentence's frames are made, and can be watched, before the second is spoken. (In this thread, not
    beside the generator in another: piper's runtime and torch each take every core, and side by side
    on a few cores both go several times slower.)"""

    def __init__(self, engine, segments: list[Segment], sentences: list[Sentence], speed: float = 1.0):
        self.engine, self.segments, self.sentences, self.speed = engine, segments, sentences, speed
        self.spoken: list[np.ndarray] = []
        self.seconds = 0.0  # spent speaking

    def get(self, index: int) -> np.ndarray:
        while len(self.spoken) <= index:
            sentence = self.sentences[len(self.spoken)]
            segment = self.segments[sentence.segment]
            start = time.perf_counter()
            self.spoken.append(synthesize_text(self.engine, sentence.text, segment.emotion,
                                               voice_level(segment.intensity), self.speed, sentence.seed,
                                               PAUSE_SECONDS).audio)
            self.seconds += time.perf_counter() - start
        return self.spoken[index]


# ---------------------------------------------------------------- blocks of frames


@dataclass
class Block:
    """Frames ``first``..``end`` (exclusive) of the video and their samples (exactly those frames' worth)."""

    first: int
    end: int
    audio: np.ndarray
    condition: np.ndarray  # emotion weights [end - first, 6]
    life: np.ndarray | None  # [end - first, 4], or None for a still face


class Blocks:
    """The video's speech so far, cut into blocks at the middle of the pauses between sentences, with the
    segments' frame spans as they become known."""

    def __init__(self, segments: list[Segment], sample_rate: int, fps: int, seed: int, life: Life | None,
                 lively: bool):
        self.segments, self.rate, self.fps, self.seed = segments, sample_rate, fps, seed
        self.life = life if lively and life is not None and not life.still else None
        self.audio = np.zeros(0, np.float32)  # every sample spoken so far, pauses included
        self.frames = 0  # frames given out in blocks so far
        self.spans: list[tuple[Segment, int, int]] = []  # each segment started so far: (segment, first, end)

    def add(self, audio: np.ndarray, segment: int, last: bool, next_segment: int | None = None) -> Block:
        """The next block: the speech ``audio`` of a sentence of segment ``segment``, up to the middle of
        the pause after it (or the end of the speech when ``last``). ``next_segment``: the segment of the
        sentence after it."""
        gap = int(round(PAUSE_SECONDS * self.rate))
        if len(self.audio):
            self.audio = np.concatenate([self.audio, np.zeros(gap, np.float32)])
        self.audio = np.concatenate([self.audio, np.asarray(audio, np.float32)])
        first = self.frames
        end = frame_count(len(self.audio), self.rate, self.fps) if last else \
            max(first + 1, int(round((len(self.audio) + gap // 2) * self.fps / self.rate)))
        if not self.spans or self.spans[-1][0] is not self.segments[segment]:
            self.spans.append((self.segments[segment], first, end))
        self.spans[-1] = (self.spans[-1][0], self.spans[-1][1], end)
        self.frames = end
        known = [(seg.emotion, intensity_amount(seg.intensity), a, b) for seg, a, b in self.spans]
        if next_segment is not None and next_segment != segment:  # the change towards it begins before the border
            following = self.segments[next_segment]
            known.append((following.emotion, intensity_amount(following.intensity), end, end + 1))
        condition = emotion_track(known, end, self.fps)[first:end]
        samples = audio_length(end, self.rate, self.fps)
        spoken = np.pad(self.audio, (0, max(0, samples - len(self.audio))))[:samples]
        lively = None
        if self.life is not None:  # scheduled over the whole speech so far: no jump at the border
            lively = life_track(spoken, self.rate, end, self.fps, self.seed, self.life)[first:end]
        return Block(first, end, spoken[audio_length(first, self.rate, self.fps):], condition, lively)


def animate_block(generator, block: Block, sample_rate: int, crop: np.ndarray, seed: int, overlap: int | None,
                  landmarks: np.ndarray | None, batch: int = 16) -> Iterator[Animation]:
    """``infer.animate_chunks`` over one block (``batch`` windows a piece), each piece with its cut of the
    block's life track."""
    device = next(generator.parameters()).device
    done = 0
    for piece in animate_chunks(generator, block.audio, sample_rate, crop, block.condition, seed, overlap,
                                batch=batch, life=None, landmarks=landmarks):
        if block.life is not None:
            life = torch.from_numpy(np.ascontiguousarray(block.life[done:done + len(piece)])).to(device)
            piece = Animation({**piece.parts, "life": life}, piece.points)
        done += len(piece)
        yield piece


# ---------------------------------------------------------------- the encoder


def _tee_name(path: Path) -> str:
    """A file name as the tee muxer reads it: absolute, its special characters escaped."""
    name = str(path.resolve())
    for char in "\\|[]'":
        name = name.replace(char, "\\" + char)
    return f"file:{name}"


class LiveWriter(VideoWriter):
    """The finished mp4 and, given ``live``, a fragmented MP4 growing beside it, from one encode: frames
    come in chunks (``write``), the speech in pieces (``add_audio``: each before the frames it goes with),
    so neither needs the whole video at the start. The speech reaches ffmpeg through a named pipe fed by a
    thread of its own, so the frames and the speech never wait for each other. ``close`` (the end of the
    ``with`` block) finishes both files; on an error the mp4's temporary is removed (the live file is the
    caller's to remove: a reader may still be reading it). The rest is ``media.VideoWriter``'s."""

    def __init__(self, path: str | Path, fps: int, sample_rate: int, live: str | Path | None = None):
        super().__init__(path, fps, None, sample_rate)
        self.rate = sample_rate
        self.live = Path(live) if live else None
        self.fifo = Path(self.scratch.name) / "speech.pcm"
        os.mkfifo(self.fifo)
        self.sounds: queue.Queue[bytes | None] = queue.Queue()
        self.feeder: threading.Thread | None = None
        self.samples = 0

    def add_audio(self, audio: np.ndarray) -> None:
        """Mono float32 samples in [-1, 1] at the writer's rate, after those added before."""
        self.sounds.put((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())
        self.samples += len(audio)

    def _start(self, width: int, height: int) -> None:
        self.shape = (height, width)
        # Both inputs are raw, their formats given: nothing to probe (by default ffmpeg reads seconds of each
        # before it starts, and the speech comes sentence by sentence)
        quick = ["-probesize", "32", "-analyzeduration", "0"]
        inputs = [*quick, "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(self.fps), "-i",
                  "-", *quick, "-f", "s16le", "-ar", str(self.rate), "-ac", "1", "-i", str(self.fifo)]
        codecs = ["-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast",
                  "-crf", "18", "-c:a", "aac", "-b:a", "128k"]
        if self.live is None:
            outputs = ["-movflags", "+faststart", str(self.tmp)]
        else:  # one encode, two files; a keyframe every second; each fragment on disk as soon as it is complete
            fragments = f"frag_keyframe+empty_moov+default_base_moof:frag_duration={int(FRAGMENT_SECONDS * 1e6)}"
            # (zerolatency: a frame leaves the encoder as it comes, not after a lookahead of ten)
            outputs = ["-tune", "zerolatency", "-g", str(max(1, int(round(KEYFRAME_SECONDS * self.fps)))),
                       "-flags", "+global_header",
                       "-f", "tee", f"[f=mp4:movflags=+faststart]{_tee_name(self.tmp)}|"
                                    f"[f=mp4:movflags={fragments}:flush_packets=1]{_tee_name(self.live)}"]
        cmd = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *inputs, *codecs, *outputs]
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.errors)
        self.feeder = threading.Thread(target=self._feed, name="speech-feeder", daemon=True)
        self.feeder.start()

    def _feed(self) -> None:
        with contextlib.suppress(OSError), open(self.fifo, "wb") as pipe:  # (OSError: ffmpeg has gone)
            while (data := self.sounds.get()) is not None:
                pipe.write(data)

    def close(self) -> None:
        """Finish the files and move the mp4 into place (raises ``CalledProcessError`` if ffmpeg failed)."""
        if self.feeder is not None:  # the speech ends first: ffmpeg finishes when both inputs have
            self.sounds.put(None)
            self.feeder.join()
        super().close()

    def _cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.feeder is not None and self.feeder.is_alive():
            self.sounds.put(None)
            with contextlib.suppress(OSError):  # a feeder still waiting for ffmpeg to open the pipe: opened, so it ends
                os.close(os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK))
            self.feeder.join()
        super()._cleanup()


# ---------------------------------------------------------------- reading a growing file


def follow(path: Path, finished: Callable[[], bool], chunk: int = 1 << 16) -> Iterator[bytes]:
    """The bytes of ``path`` as it grows, until ``finished()`` says no more will come and all are read.
    Opened once: a file removed while it is read is read to its end."""
    with open(path, "rb") as handle:
        while True:
            data = handle.read(chunk)
            if data:
                yield data
                continue
            if finished():
                rest = handle.read()
                if rest:
                    yield rest
                return
            time.sleep(FOLLOW_POLL_SECONDS)


def serve_growing_file(path: Path, finished: threading.Event, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 (``port``, 0: any free one) that answers ``GET /live`` with ``path`` as
    it grows, to its end once ``finished`` is set. Runs in a thread; ``shutdown()`` it when done. Its
    ``readers`` counts the responses being sent."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            if self.path.split("?")[0] != "/live":
                self.send_error(404, "the stream is at /live")
                return
            while not path.is_file():
                if finished.is_set():
                    self.send_error(404, "the video was not made")
                    return
                time.sleep(FOLLOW_POLL_SECONDS)
            with server.lock:
                server.readers += 1
            try:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Connection", "close")
                self.end_headers()
                for data in follow(path, finished.is_set):
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the player went away
            finally:
                with server.lock:
                    server.readers -= 1

        def log_message(self, *args) -> None:
            pass  # quiet: the command prints its own lines

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.lock, server.readers = threading.Lock(), 0
    threading.Thread(target=server.serve_forever, name="live-stream", daemon=True).start()
    return server
