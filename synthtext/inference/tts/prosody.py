"""Emotion prosody presets: speaking rate, pitch shift, energy and pitch variation, scaled by intensity."""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import soxr

from synthtext import EMOTIONS, INTENSITIES
from synthtext.ops.errors import SynthTextError


@dataclass(frozen=True)
class Prosody:
    """How to speak: ``rate`` x normal speed, ``pitch`` semitones, ``energy`` dB, ``variation`` x the
    voice's own pitch/duration variability."""

    rate: float = 1.0
    pitch: float = 0.0
    energy: float = 0.0
    variation: float = 1.0

    def scaled(self, amount: float) -> Prosody:
        """Interpolate from neutral (0) to this preset (1)."""
        return Prosody(rate=1 + (self.rate - 1) * amount, pitch=self.pitch * amount, energy=self.energy * amount,
                       variation=1 + (self.variation - 1) * amount)


# Directions follow the vocal-emotion literature: anger and happiness louder, faster and higher with
# more pitch movement; fear highest and fastest; sadness slow, low, quiet and flat; disgust slow and low.
PRESETS: dict[str, Prosody] = {
    "ANG": Prosody(rate=1.12, pitch=1.5, energy=5.0, variation=1.35),
    "DIS": Prosody(rate=0.86, pitch=-1.5, energy=0.0, variation=0.85),
    "FEA": Prosody(rate=1.22, pitch=3.5, energy=-1.0, variation=1.45),
    "HAP": Prosody(rate=1.08, pitch=3.0, energy=2.5, variation=1.5),
    "NEU": Prosody(),
    "SAD": Prosody(rate=0.80, pitch=-2.5, energy=-5.0, variation=0.6),
}
REFERENCE_DB = -24.0  # RMS level of neutral speech, dBFS: leaves headroom for louder presets
INTENSITY_SCALE: dict[str, float] = {"LO": 0.5, "MD": 0.75, "HI": 1.0, "XX": 0.75}


def prosody_for(emotion: str, intensity: str = "HI") -> Prosody:
    """The preset for an emotion code at an intensity level."""
    if emotion not in PRESETS:
        raise SynthTextError(f"unknown emotion {emotion!r}: use one of {', '.join(EMOTIONS)}")
    if intensity not in INTENSITY_SCALE:
        raise SynthTextError(f"unknown intensity {intensity!r}: use one of {', '.join(INTENSITIES)}")
    return PRESETS[emotion].scaled(INTENSITY_SCALE[intensity])


def pitch_factor(prosody: Prosody) -> float:
    """Frequency ratio of the preset's pitch shift."""
    return float(2 ** (prosody.pitch / 12))


def apply_prosody(audio: np.ndarray, sample_rate: int, prosody: Prosody) -> np.ndarray:
    """Pitch and energy after synthesis.

    The engine synthesises ``pitch_factor`` times slower; reading those samples as if recorded at
    ``sample_rate * factor`` and resampling to ``sample_rate`` restores the duration and raises the
    pitch by the factor (formants move with it, as in a tape-speed change; cheap and deterministic).
    """
    out = audio.astype(np.float32)
    factor = pitch_factor(prosody)
    if abs(factor - 1) > 1e-4:
        out = soxr.resample(out, sample_rate * factor, sample_rate, quality="HQ").astype(np.float32)
    rms = float(np.sqrt(np.mean(np.square(out)))) if out.size else 0.0
    if rms > 0:  # a fixed speech level, then the preset's energy change
        out = out * np.float32(10 ** ((REFERENCE_DB + prosody.energy) / 20) / rms)
    peak = float(np.abs(out).max()) if out.size else 0.0
    return (out / peak * 0.99 if peak > 0.99 else out).astype(np.float32)


def apply_rate_and_prosody(audio: np.ndarray, sample_rate: int, prosody: Prosody, speed: float = 1.0) -> np.ndarray:
    """The whole preset after synthesis, for engines without a duration control: time-stretch so that
    the pitch step of :func:`apply_prosody` ends at ``prosody.rate * speed`` x the original rate."""
    stretch = prosody.rate * speed / pitch_factor(prosody)
    out = audio.astype(np.float32)
    if abs(stretch - 1) > 1e-4 and out.size:
        out = librosa.effects.time_stretch(out, rate=stretch).astype(np.float32)
    return apply_prosody(out, sample_rate, prosody)
