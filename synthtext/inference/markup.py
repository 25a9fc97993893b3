"""Emotion tags in the text: ``Great news! [sad] But I'm sorry about the dog.``

A tag sets the emotion, and optionally the intensity, from that point on: ``[happy]``, ``[SAD]``,
``[anger:LO]``, ``[happy:0.8]``, with the names and codes ``--emotion`` takes. Text before the first
tag has the default emotion (``--emotion``). Each segment is spoken with its emotion's prosody, and the
face's emotion follows the segments with a smooth change at each border (``emotion_track``).

An intensity is a named point, ``LO``, ``MD`` or ``HI`` (``INTENSITY_SCALE``: 0.5, 0.75, 1.0), or a
number from 0 (neutral) to 1.5 (beyond the trained expression): ``intensity_amount`` gives the face's
amount, ``voice_level`` the voice's nearest named level (the voice's prosody has three levels).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from synthtext import EMOTIONS, parse_emotion
from synthtext.inference.tts.prosody import INTENSITY_SCALE
from synthtext.ops.errors import SynthTextError

TAG = re.compile(r"\[([^\[\]]*)\]")
TRANSITION_SECONDS = 0.4  # the face's emotion changes over this long, centred on the segment border
NAMED_INTENSITIES = ("LO", "MD", "HI")
MAX_INTENSITY = 1.5  # above 1 the face goes beyond the trained expression (extrapolated): this far at most
INTENSITY_HELP = f"use LO, MD or HI, or a number from 0.0 (neutral) to {MAX_INTENSITY}"

Intensity = str | float  # a named point (LO, MD, HI) or a number 0..MAX_INTENSITY


@dataclass(frozen=True)
class Segment:
    text: str
    emotion: str
    intensity: Intensity


def parse_intensity(value: Intensity | None) -> Intensity:
    """An intensity as given by a user (``hi``, ``LO``, ``0.8``, ``1``; empty: ``HI``) -> its named point
    when it is one (``1.0`` is ``HI``: the same video), else the number. Anything else raises an error
    that says what is accepted."""
    if value is None or isinstance(value, str) and not value.strip():
        return "HI"
    if isinstance(value, str) and value.strip().upper() in NAMED_INTENSITIES:
        return value.strip().upper()
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise SynthTextError(f"unknown intensity {value!r}: {INTENSITY_HELP}") from None
    if not (math.isfinite(amount) and 0.0 <= amount <= MAX_INTENSITY):
        raise SynthTextError(f"intensity {value!r} is out of range: {INTENSITY_HELP}")
    return next((name for name in NAMED_INTENSITIES if INTENSITY_SCALE[name] == amount), amount)


def intensity_amount(intensity: Intensity) -> float:
    """How much of the emotion the face shows: the named point's number, or the number itself."""
    return INTENSITY_SCALE[intensity] if isinstance(intensity, str) else float(intensity)


def voice_level(intensity: Intensity) -> str:
    """The named level the voice speaks at: the intensity's own, or the nearest to its number."""
    if isinstance(intensity, str):
        return intensity
    return min(NAMED_INTENSITIES, key=lambda name: abs(INTENSITY_SCALE[name] - float(intensity)))


def has_tags(text: str) -> bool:
    return "[" in text or "]" in text


def starts_with_tag(text: str) -> bool:
    """Whether the text's first words follow a tag: then the default emotion colours none of them."""
    return text.lstrip().startswith("[")


def parse_markup(text: str, emotion: str = "NEU", intensity: Intensity = "HI") -> list[Segment]:
    """The text's segments in order, each with its emotion and intensity; text without tags is one
    segment. Neighbouring segments with the same emotion and intensity are joined, and a tag with no
    words after it (before the next tag or the end) has no segment. An unknown or malformed tag raises
    an error naming it and its position (the character, counted from 1)."""
    current = (parse_emotion(emotion), parse_intensity(intensity))
    segments: list[Segment] = []
    position = 0
    for match in TAG.finditer(text):
        _check_brackets(text, position, match.start())
        _add(segments, text[position:match.start()], *current)
        current = _read_tag(match.group(0), match.group(1), match.start() + 1, current[1])
        position = match.end()
    _check_brackets(text, position, len(text))
    _add(segments, text[position:], *current)
    if not segments:
        raise SynthTextError("the text is empty: give some words to speak (tags alone say nothing)")
    return segments


def _check_brackets(text: str, start: int, end: int) -> None:
    for index in range(start, end):
        if text[index] in "[]":
            rest = text[index:index + 20].split("]")[0] if text[index] == "[" else text[max(0, index - 19):index + 1]
            what = "is never closed" if text[index] == "[" else "closes no tag"
            raise SynthTextError(f"malformed emotion tag {rest!r} at character {index + 1}: the bracket {what} "
                                 "(tags look like [happy], [SAD:LO] or [happy:0.8])")


def _read_tag(tag: str, inside: str, at: int, intensity: Intensity) -> tuple[str, Intensity]:
    name, _, level = inside.partition(":")
    if not name.strip():
        raise SynthTextError(f"empty emotion tag {tag!r} at character {at}: use e.g. [happy], [SAD:LO] or "
                             "[happy:0.8]")
    try:
        emotion = parse_emotion(name)
    except SynthTextError:
        raise SynthTextError(f"unknown emotion tag {tag!r} at character {at}: use one of {', '.join(EMOTIONS)} "
                             "or anger, disgust, fear, happiness, neutral, sadness") from None
    if ":" not in inside:
        return emotion, intensity
    wrong = f"unknown intensity in emotion tag {tag!r} at character {at}: {INTENSITY_HELP}"
    if not level.strip():  # (an empty level would be the default HI: a "[sad:]" is a slip, not a choice)
        raise SynthTextError(wrong)
    try:
        return emotion, parse_intensity(level)
    except SynthTextError:
        raise SynthTextError(wrong) from None


def _add(segments: list[Segment], text: str, emotion: str, intensity: Intensity) -> None:
    words = " ".join(text.split())
    if not words:
        return
    if segments and (segments[-1].emotion, segments[-1].intensity) == (emotion, intensity):
        segments[-1] = Segment(f"{segments[-1].text} {words}", emotion, intensity)
    else:
        segments.append(Segment(words, emotion, intensity))


def emotion_track(spans: list[tuple[str, float, int, int]], frames: int, fps: float,
                  transition: float = TRANSITION_SECONDS) -> np.ndarray:
    """Per-frame emotion weights [frames, 6] (float32) for segments ``(emotion, amount, first, end)``
    (frame spans in order; ``amount`` is the intensity: the emotion weighs ``amount``, neutral the rest,
    ``1 - amount``, which is negative above 1: the expression extrapolated beyond the trained one). At each
    border the weights move from one segment's to the next along a smooth step ``transition``
    seconds long, centred on the border: the face changes emotion gradually, never in a cut."""
    def weights(emotion: str, amount: float) -> np.ndarray:
        w = np.zeros(len(EMOTIONS), np.float32)
        w[EMOTIONS.index("NEU")] = 1.0 - amount
        w[EMOTIONS.index(emotion)] += amount
        return w

    if not spans:
        raise ValueError("no segments")
    track = np.repeat(weights(*spans[0][:2])[None], frames, axis=0)
    half = max(transition * fps / 2, 0.5)
    times = np.arange(frames, dtype=np.float64)
    for emotion, amount, first, _ in spans[1:]:
        border = first - 0.5  # between the last frame of one segment and the first of the next
        s = np.clip((times - (border - half)) / (2 * half), 0.0, 1.0)
        s = (s * s * (3 - 2 * s)).astype(np.float32)[:, None]  # smoothstep: no kink at either end
        track = track * (1 - s) + weights(emotion, amount)[None] * s
    return track


def segment_frames(ends: list[int], frames: int) -> list[tuple[int, int]]:
    """Frame spans ``[(first, end), ...]`` from each segment's last frame (exclusive), the last one
    running to ``frames``."""
    spans, first = [], 0
    for index, end in enumerate(ends):
        end = frames if index == len(ends) - 1 else min(max(end, first), frames)
        spans.append((first, end))
        first = end
    return spans
