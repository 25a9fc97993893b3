"""One interface over the TTS engines: text + emotion in, one mono waveform out.

An engine has ``name``, ``sample_rate`` and ``speak(text, emotion, intensity, speed, seed)`` for one
sentence; :func:`synthesize_text` cuts longer text at sentence boundaries, speaks the pieces in
order and joins them with short pauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from synthtext.inference.tts.coqui import CoquiEngine
from synthtext.inference.tts.piper import PiperEngine
from synthtext.inference.tts.prosody import prosody_for
from synthtext.inference.tts.text import split_sentences
from synthtext.ops.errors import SynthTextError

ENGINES = ("piper", "coqui")


class Engine(Protocol):
    name: str
    sample_rate: int

    def speak(self, text: str, emotion: str, intensity: str = "HI", speed: float = 1.0,
              seed: int | None = None) -> np.ndarray:
        """Mono float32 speech at ``sample_rate`` for one sentence."""


@dataclass
class Speech:
    audio: np.ndarray  # float32 mono
    sample_rate: int
    sentences: list[str]

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


class PiperSpeaker:
    """Piper with the emotion prosody presets shared with the sample corpus."""

    name = "piper"

    def __init__(self, voice: str | Path | None = None):
        self.engine = PiperEngine(voice)
        self.sample_rate = self.engine.sample_rate
        self.voice = str(self.engine.voice_path)

    def speak(self, text: str, emotion: str, intensity: str = "HI", speed: float = 1.0,
              seed: int | None = None) -> np.ndarray:
        return self.engine.synthesize(text, prosody_for(emotion, intensity), speed=speed, seed=seed)


def make_engine(name: str = "piper", voice: str | Path | None = None, **options) -> Engine:
    """``piper`` (voice: a Piper ``.onnx``; default the bundled joe voice) or ``coqui`` (voice: a
    Coqui model name or a folder with ``config.json`` and a checkpoint; options: ``references``,
    ``language``)."""
    if name == "piper":
        return PiperSpeaker(voice)
    if name == "coqui":
        return CoquiEngine(voice, **options)
    raise SynthTextError(f"unknown TTS engine {name!r}: use one of {', '.join(ENGINES)}")


def synthesize_text(engine: Engine, text: str, emotion: str, intensity: str = "HI", speed: float = 1.0,
                    seed: int | None = 0, pause: float = 0.25, max_chars: int = 240) -> Speech:
    """All of ``text``, sentence by sentence, joined with ``pause`` seconds of silence."""
    if not 0.25 <= speed <= 4.0:
        raise SynthTextError(f"speed {speed} is out of range: use 0.25 to 4 (1 = the voice's normal rate)")
    sentences = split_sentences(text, max_chars)
    if not sentences:
        raise SynthTextError("the text is empty: give some words to speak")
    gap = np.zeros(int(round(pause * engine.sample_rate)), np.float32)
    pieces = []
    for index, sentence in enumerate(sentences):
        if index:
            pieces.append(gap)
        pieces.append(np.asarray(engine.speak(sentence, emotion, intensity, speed,
                                              None if seed is None else seed + index), np.float32))
    return Speech(audio=np.concatenate(pieces), sample_rate=engine.sample_rate, sentences=sentences)


def synthesize_segments(engine: Engine, segments: list, speed: float = 1.0, seed: int | None = 0,
                        pause: float = 0.25) -> tuple[Speech, list[int]]:
    """Text segments (``markup.Segment``: text, emotion, intensity) spoken in order, each with its own
    emotion's prosody, joined with ``pause`` seconds of silence; and the sample at which each segment
    ends (the middle of the pause after it; the last one at the end of the speech)."""
    pieces, ends, sentences, total = [], [], [], 0
    gap = int(round(pause * engine.sample_rate))
    for index, segment in enumerate(segments):
        speech = synthesize_text(engine, segment.text, segment.emotion, segment.intensity, speed,
                                 None if seed is None else seed + 1000 * index, pause)
        if index:
            pieces.append(np.zeros(gap, np.float32))
            ends.append(total + gap // 2)
            total += gap
        pieces.append(speech.audio)
        total += len(speech.audio)
        sentences.extend(speech.sentences)
    ends.append(total)
    return Speech(audio=np.concatenate(pieces), sample_rate=engine.sample_rate, sentences=sentences), ends
