"""Clip names: CREMA-D ``ActorID_Sentence_Emotion_Level`` and GRID ``bbaf2n`` style."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from synthtext import EMOTIONS, INTENSITIES
from synthtext.ops.errors import ClipRejected, SynthTextError

CREMA_SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}

VIDEO_SUFFIXES = (".flv", ".mp4", ".mpg", ".mov", ".avi")

_CREMA = re.compile(r"^(?P<actor>10\d\d)_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")
# GRID: command, colour, preposition, letter, digit, adverb — one character each.
_GRID = re.compile(r"^[blps][bgrw][abiw][a-z][0-9z][anps]$")
_GRID_SPEAKER = re.compile(r"^s\d{1,2}$")


@dataclass(frozen=True)
class ClipName:
    """Labels parsed from a clip's file name."""

    clip_id: str
    actor: str
    sentence: str
    emotion: str
    intensity: str
    corpus: str


def parse_clip_name(path: str | Path) -> ClipName:
    """Parse a CREMA-D (or GRID) clip path into its labels.

    Raises :class:`ClipRejected` with reason ``bad_name`` when the name fits neither corpus.
    """
    path = Path(path)
    stem = path.stem
    m = _CREMA.match(stem)
    if m:
        actor = int(m["actor"])
        if not 1001 <= actor <= 1091:
            raise ClipRejected("bad_name", f"{path.name}: actor {actor} is outside CREMA-D's 1001-1091")
        if m["sentence"] not in CREMA_SENTENCES:
            raise ClipRejected("bad_name", f"{path.name}: unknown sentence code {m['sentence']!r}")
        if m["emotion"] not in EMOTIONS:
            raise ClipRejected("bad_name", f"{path.name}: unknown emotion {m['emotion']!r}; expected one of "
                               f"{', '.join(EMOTIONS)}")
        if m["level"] not in INTENSITIES:
            raise ClipRejected("bad_name", f"{path.name}: unknown intensity {m['level']!r}; expected one of "
                               f"{', '.join(INTENSITIES)}")
        return ClipName(stem, m["actor"], m["sentence"], m["emotion"], m["level"], "crema-d")
    if _GRID.match(stem):
        # GRID keeps each speaker in a folder s1..s34; a flat folder is one unnamed speaker.
        speaker = path.parent.name if _GRID_SPEAKER.match(path.parent.name) else "grid"
        clip_id = stem if speaker == "grid" else f"{speaker}_{stem}"
        return ClipName(clip_id, speaker, stem, "NEU", "XX", "grid")
    raise ClipRejected(
        "bad_name",
        f"{path.name}: expected a CREMA-D name ActorID_Sentence_Emotion_Level (e.g. 1001_DFA_ANG_XX) "
        "or a GRID name (e.g. bbaf2n)",
    )


def find_videos(folder: str | Path) -> list[Path]:
    """All video files under ``folder`` (recursively), sorted for a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SynthTextError(
            f"raw clip folder {folder} does not exist: set data.source in params.yaml to a folder of clips"
        )
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
