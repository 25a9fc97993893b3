"""Video jobs as users give them (the CLI, a batch CSV, the API): the job, its options, and their checks."""

from __future__ import annotations

import csv
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from synthtext import EMOTIONS, parse_emotion
from synthtext.data.media import load_speech
from synthtext.inference.infer import read_image
from synthtext.inference.life import Life
from synthtext.inference.markup import (
    Intensity,
    has_tags,
    parse_intensity,
    parse_markup,
    starts_with_tag,
)
from synthtext.inference.tts.text import read_text
from synthtext.ops.errors import SynthTextError


@dataclass
class Options:
    tts: str = "piper"
    speed: float = 1.0
    seed: int = 0
    paste_back: bool = False
    size: int | None = None  # output side for crops (default: twice the model's aligned crop size)
    overlap: int | None = None  # window overlap in frames (default a quarter window)
    feather: float = 0.1
    language: str = "en"  # coqui multilingual models
    references: str | None = None  # coqui XTTS: folder with one reference clip per emotion (ANG.wav, ...)
    evaluator: str | None = None  # an evaluator.json to check the videos with, instead of the model's own


@dataclass
class Job:
    image: str
    text: str
    emotions: list[str]  # one, or all six for a grid
    out: str
    intensity: Intensity = "HI"  # LO, MD, HI or a number 0..1.5 (markup.parse_intensity)
    voice: str | None = None
    row: int = 0
    audio: str | None = None  # recorded speech that drives the face instead of the text's synthesized speech
    head_motion: float = 1.0  # 0 (still) .. 1: the head moves with the speech
    blinks: bool = True

    @property
    def life(self) -> Life:
        return Life(blinks=self.blinks, head_motion=self.head_motion)


def parse_head_motion(value: str | float | None, default: float = 1.0) -> float:
    """Head motion as a user gives it (a number 0..1; empty: ``default``), checked."""
    if value is None or isinstance(value, str) and not value.strip():
        return default
    try:
        amount = float(value)
    except ValueError:
        raise SynthTextError(f"head motion {value!r} is not a number: use 0 (still) to 1") from None
    if not (math.isfinite(amount) and 0.0 <= amount <= 1.0):
        raise SynthTextError(f"head motion {value!r} is out of range: use 0 (still) to 1")
    return amount


def parse_blinks(value: str | bool | None, default: bool = True) -> bool:
    """Blinks on or off as a user gives them (yes/no, true/false, on/off, 1/0; empty: ``default``)."""
    if value is None or isinstance(value, bool):
        return default if value is None else value
    word = value.strip().lower()
    if not word:
        return default
    if word in ("1", "true", "yes", "on", "y"):
        return True
    if word in ("0", "false", "no", "off", "n"):
        return False
    raise SynthTextError(f"blinks {value!r}: use yes or no (true/false, on/off, 1/0)")


def make_job(image: str, text: str | None, emotion: str | None, out: str, intensity: Intensity | None = "HI",
             voice: str | None = None, all_emotions: bool = False, row: int = 0, audio: str | None = None,
             head_motion: float = 1.0, blinks: bool = True) -> Job:
    """A validated job: known emotion and intensity, some text (emotion tags checked) or a readable
    recording, an existing image, a writable output, head motion 0..1. Text that starts with an emotion
    tag needs no ``emotion``: its tags say every word's."""
    tagged = not audio and not all_emotions and not (emotion or "").strip() and starts_with_tag(text or "")
    emotions = list(EMOTIONS) if all_emotions else ["NEU" if tagged else parse_emotion(emotion or "")]
    intensity = parse_intensity(intensity)
    head_motion = parse_head_motion(head_motion)
    if audio:
        if text and has_tags(text):
            raise SynthTextError("emotion tags set the emotion of text the voice speaks; recorded speech (audio) "
                                 "has no text to tag: use the emotion setting instead")
        if text:
            raise SynthTextError("give text or a recording (audio), not both")
        load_speech(audio)  # missing, corrupt, empty or silent: said now, before a model is loaded
        text = ""
    else:
        text = read_text(text=text or "")
        segments = parse_markup(text, emotions[0], intensity)
        if all_emotions and len(segments) > 1 or all_emotions and has_tags(text):
            raise SynthTextError("emotion tags and all six emotions do not mix: drop the tags or the grid")
        if tagged:  # the default emotion colours no word: the job is the first tag's
            emotions = [segments[0].emotion]
    read_image(image)  # missing or corrupt: said now, before a model is loaded
    check_output(Path(out))
    return Job(image=str(image), text=text, emotions=emotions, out=str(out), intensity=intensity,
               voice=voice or None, row=row, audio=str(audio) if audio else None, head_motion=head_motion,
               blinks=bool(blinks))


def check_output(out: Path) -> None:
    """The output must be an .mp4 in an existing folder where files can be created (tried, not guessed:
    permission bits say nothing on read-only mounts or for root)."""
    if out.suffix.lower() != ".mp4":
        raise SynthTextError(f"output {out} must end in .mp4")
    folder = out.parent
    if not folder.is_dir():
        raise SynthTextError(f"output folder {folder} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".synthtext-probe-"):
            pass
    except OSError as exc:
        raise SynthTextError(f"output folder {folder} is not writable ({exc.strerror})") from exc


def read_jobs(csv_path: Path, out_dir: Path, head_motion: float = 1.0,
              blinks: bool = True) -> tuple[list[Job], list[dict]]:
    """Rows of a jobs CSV (image, text or audio, emotion[, intensity, voice, out, head_motion, blinks]) ->
    jobs, plus the rows that are wrong on their face (reported, not run). Relative image and audio paths
    are relative to the CSV. The text may carry emotion tags (the emotion may then be empty if the text
    starts with one). An empty or missing head_motion or blinks is ``head_motion``/``blinks``."""
    if not csv_path.is_file():
        raise SynthTextError(f"jobs file {csv_path} not found")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {c.strip().lower() for c in reader.fieldnames or []}
        missing = {"image", "emotion"} - columns
        if "text" not in columns and "audio" not in columns:
            missing.add("text (or audio)")
        if missing:
            raise SynthTextError(f"{csv_path} lacks the column(s) {', '.join(sorted(missing))} "
                                 "(needs image, text or audio, emotion; optional intensity, voice, out, "
                                 "head_motion, blinks)")
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise SynthTextError(f"{csv_path} has no jobs")
    jobs, failed = [], []
    for number, row in enumerate(rows, start=1):
        image = Path(row["image"]).expanduser()
        image = image if image.is_absolute() else csv_path.parent / image
        name = row.get("out") or f"{number:03d}_{image.stem}_{row['emotion'].upper() or 'X'}.mp4"
        audio = Path(row["audio"]).expanduser() if row.get("audio") else None
        audio = audio if audio is None or audio.is_absolute() else csv_path.parent / audio
        try:
            jobs.append(make_job(str(image), row.get("text") or None, row["emotion"], str(out_dir / name),
                                 row.get("intensity") or "HI", row.get("voice") or None, row=number,
                                 audio=str(audio) if audio else None,
                                 head_motion=parse_head_motion(row.get("head_motion"), head_motion),
                                 blinks=parse_blinks(row.get("blinks"), blinks)))
        except SynthTextError as exc:
            failed.append({"row": number, "status": "failed", "reason": str(exc), "out": str(out_dir / name)})
    return jobs, failed
