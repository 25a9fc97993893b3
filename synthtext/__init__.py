"""SynthText: emotionally expressive talking faces from one photo, text and an emotion."""

__version__ = "0.1.0"

EMOTIONS: tuple[str, ...] = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
"""Emotion codes in the one index order used everywhere (tensors, one-hots, class ids)."""

GENERATED_CLASS = len(EMOTIONS)
"""The emotion discriminator's extra "generated" class id."""

INTENSITIES: tuple[str, ...] = ("LO", "MD", "HI", "XX")
