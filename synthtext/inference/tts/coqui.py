"""Coqui TTS (the ``coqui-tts`` package, imported as ``TTS``): any Coqui model name or local model.

An optional extra with its own environment (``make coqui``): it needs torchaudio and torchcodec in
lock-step with its own torch. With a voice-cloning model such as XTTS-v2, a folder of reference
clips, one per emotion (``ANG.wav`` ... ``SAD.wav``, or full names such as ``happy.wav``), makes
each emotion speak in the style of its clip; otherwise the emotion prosody presets shared with
Piper are applied to the synthesised speech.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from synthtext import EMOTION_NAMES, EMOTIONS
from synthtext.inference.tts.prosody import Prosody, apply_rate_and_prosody, prosody_for
from synthtext.ops.errors import SynthTextError

DEFAULT_MODEL = "tts_models/multilingual/multi-dataset/xtts_v2"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


def find_references(folder: str | Path | None) -> dict[str, Path]:
    """Reference clips by emotion code from a folder (``ANG.wav``, ``anger.flac``, ``happy.wav`` ...)."""
    if folder is None:
        return {}
    folder = Path(folder)
    if not folder.is_dir():
        raise SynthTextError(f"reference folder {folder} not found")
    found = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        stem = path.stem.strip()
        code = stem.upper() if stem.upper() in EMOTIONS else EMOTION_NAMES.get(stem.lower())
        if code:
            found.setdefault(code, path)
    if not found:
        raise SynthTextError(f"no reference clips in {folder}: name them ANG.wav, DIS.wav, FEA.wav, HAP.wav, "
                             "NEU.wav, SAD.wav (or anger.wav, happy.wav ...)")
    return found


def model_files(path: Path) -> tuple[Path, Path]:
    """(checkpoint, config.json) of a local Coqui model: a folder, or a checkpoint with config.json beside it."""
    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    checkpoints = [path] if path.is_file() else sorted(folder.glob("*.pth")) + sorted(folder.glob("*.pt"))
    if not checkpoints or not config.is_file():
        raise SynthTextError(f"{path} is not a Coqui model: it needs a .pth checkpoint and config.json")
    return checkpoints[0], config


class CoquiEngine:
    name = "coqui"

    def __init__(self, model: str | Path | None = None, references: str | Path | None = None, language: str = "en"):
        try:
            from TTS.api import TTS
        except ImportError as exc:
            raise SynthTextError("the coqui engine needs the coqui extra in its own environment: "
                                 "make coqui (then use .venv-coqui/bin/synthtext)") from exc
        model = str(model or DEFAULT_MODEL)
        self.model = model
        self.references = find_references(references)
        try:
            if Path(model).exists():
                checkpoint, config = model_files(Path(model))
                self.tts = TTS(model_path=str(checkpoint), config_path=str(config), progress_bar=False)
            else:
                self.tts = TTS(model_name=model, progress_bar=False)
        except SynthTextError:
            raise
        except Exception as exc:  # downloads, bad configs and checkpoints fail in many ways
            raise SynthTextError(f"could not load the Coqui model {model}: {type(exc).__name__}: {exc} "
                                 "(offline? give a local model folder)") from exc
        self.sample_rate = int(self.tts.synthesizer.output_sample_rate)
        self.language = language if self.tts.is_multi_lingual else None
        self.clones = bool(getattr(self.tts.synthesizer.tts_model.config, "supports_cloning", False))
        if self.clones and not self.references:
            raise SynthTextError(f"{model} clones a voice: give --references, a folder with a clip per emotion")
        # A multi-speaker model without cloning speaks with its first speaker.
        self.speaker = None if self.clones or not self.tts.is_multi_speaker else self.tts.speakers[0]
        self._lock = threading.Lock()

    def speak(self, text: str, emotion: str, intensity: str = "HI", speed: float = 1.0,
              seed: int | None = None) -> np.ndarray:
        if not text.strip():
            raise SynthTextError("the text is empty: give some words to speak")
        reference = self.references.get(emotion) or self.references.get("NEU")
        kwargs = {"split_sentences": False}
        if self.language:
            kwargs["language"] = self.language
        if self.clones and reference is not None:
            kwargs["speaker_wav"] = str(reference)
        elif self.speaker:
            kwargs["speaker"] = self.speaker
        with self._lock:
            if seed is not None:
                torch.manual_seed(seed)
            audio = np.asarray(self.tts.tts(text, **kwargs), np.float32)
        if audio.size == 0:
            raise SynthTextError(f"the Coqui model produced no audio for {text!r}")
        # A reference clip of the emotion carries its style; without one, the shared presets do.
        styled = "speaker_wav" in kwargs and emotion in self.references
        prosody = Prosody() if styled else prosody_for(emotion, intensity)
        return apply_rate_and_prosody(audio, self.sample_rate, prosody, speed)
