"""SynthText: emotionally expressive talking faces from one photo, text and an emotion."""

from synthtext.ops.errors import SynthTextError

__version__ = "0.1.0"

EMOTIONS: tuple[str, ...] = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
"""Emotion codes in the one index order used everywhere (tensors, one-hots, class ids)."""

GENERATED_CLASS = len(EMOTIONS)
"""The emotion discriminator's extra "generated" class id."""

INTENSITIES: tuple[str, ...] = ("LO", "MD", "HI", "XX")

EMOTION_NAMES: dict[str, str] = {
    "anger": "ANG", "angry": "ANG", "disgust": "DIS", "disgusted": "DIS", "fear": "FEA", "fearful": "FEA",
    "afraid": "FEA", "happiness": "HAP", "happy": "HAP", "neutral": "NEU", "sadness": "SAD", "sad": "SAD",
}
"""Full names a user may type for each code (any case)."""


def parse_emotion(text: str) -> str:
    """An emotion code from a code or a name in any case (``hap``, ``Happy``, ``HAPPINESS`` -> ``HAP``)."""
    key = str(text).strip()
    if key.upper() in EMOTIONS:
        return key.upper()
    if key.lower() in EMOTION_NAMES:
        return EMOTION_NAMES[key.lower()]
    raise SynthTextError(f"unknown emotion {text!r}: use one of {', '.join(EMOTIONS)} or "
                         "anger, disgust, fear, happiness, neutral, sadness")
