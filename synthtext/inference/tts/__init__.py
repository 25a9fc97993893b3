"""Text to speech with emotional prosody (shared by the sample corpus and inference)."""

from synthtext.inference.tts.piper import PiperEngine, default_voice
from synthtext.inference.tts.prosody import INTENSITY_SCALE, PRESETS, Prosody, apply_prosody, prosody_for

__all__ = ["PiperEngine", "default_voice", "Prosody", "PRESETS", "INTENSITY_SCALE", "prosody_for", "apply_prosody"]
