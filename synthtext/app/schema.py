"""The API's request and response models: FastAPI reads the forms into them and generates ``/openapi.json``
from them, so the schema is what the server checks."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthtext import EMOTION_NAMES, EMOTIONS
from synthtext.app.uploads import MAX_AUDIO_BYTES, MAX_AUDIO_SECONDS, MAX_TEXT_CHARS
from synthtext.inference.markup import INTENSITY_HELP, MAX_INTENSITY, NAMED_INTENSITIES


def any_case(words) -> str:
    """A regular expression of ``words`` in any case, with spaces or tabs around (the same in Python, in
    pydantic's and in JSON Schema's regular expressions)."""
    cased = ("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in w) for w in words)
    return rf"^[ \t]*(?:{'|'.join(cased)})?[ \t]*$"


EMOTION_PATTERN = any_case([*EMOTIONS, *EMOTION_NAMES])
INTENSITY_PATTERN = any_case(NAMED_INTENSITIES)
NUMBER = r"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*"

# A switch that may be left out (then its default holds); FastAPI reads a bare ``bool | None`` left out of a
# form as an unchecked checkbox (false), which would turn blinking off.
Switch = Annotated[bool, Field(strict=False)] | None


class VideoRequest(BaseModel):
    """What a video job is made of, besides the files."""

    model_config = ConfigDict(extra="ignore")

    photo: str | None = Field(None, max_length=64, description="a photo id from POST /api/photos (or send `image`)")
    text: str = Field("", max_length=MAX_TEXT_CHARS, examples=["Great news! [sad] But I'm sorry."], description=(
        "the words to speak; emotion tags change the emotion from that point on: `Great news! [sad] But I'm "
        "sorry.` ([happy], [SAD], [anger:LO], [happy:0.8]); text before the first tag has `emotion`. Leave it "
        "out when sending `audio`"))
    emotion: str = Field("", max_length=64, examples=["happy"], json_schema_extra={"pattern": EMOTION_PATTERN},
                         description=("ANG DIS FEA HAP NEU SAD or a name, in any case (the default emotion of tagged "
                                      "text; may be left out when the text starts with a tag)"))
    all_emotions: Switch = Field(False, description="all six emotions in a grid, in turn")
    intensity: str | float = Field("HI", json_schema_extra={"anyOf": [
        {"type": "string", "pattern": INTENSITY_PATTERN},
        {"type": "number", "minimum": 0.0, "maximum": MAX_INTENSITY}]}, description=(
            "how strongly the face shows the emotion: LO, MD, HI (0.5, 0.75, 1.0) or a number from 0.0 (neutral) "
            f"to {MAX_INTENSITY} (beyond the trained expression); the voice takes the nearest of LO, MD, HI"))
    head_motion: float = Field(1.0, ge=0.0, le=1.0, allow_inf_nan=False,
                               description="how much the head moves with the speech: 0 still, 1 fully")
    blinks: Switch = Field(True, description="natural blinking (false: eyes that never blink)")
    voice: str = Field("default", max_length=200, description="one of GET /api/voices")
    speed: float = Field(1.0, ge=0.25, le=4.0, allow_inf_nan=False, description="the voice's rate (1 = normal)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="the random seed of the face's motion")
    paste_back: Switch = Field(False, description="paste the face back into the whole photo, at its size")


    @field_validator("all_emotions", "blinks", "paste_back", mode="before")
    @classmethod
    def null_is_left_out(cls, value: object) -> object:
        return None if value == "null" else value  # (a form's way to send a JSON null)

    @field_validator("emotion")
    @classmethod
    def known_emotion(cls, value: str) -> str:
        if not re.fullmatch(EMOTION_PATTERN, value):
            raise ValueError(f"unknown emotion {value!r}: use one of {', '.join(EMOTIONS)} or a name (anger, "
                             "disgust, fear, happiness, neutral, sadness)")
        return value

    @field_validator("intensity", mode="before")
    @classmethod
    def known_intensity(cls, value: object) -> str | float:
        if isinstance(value, str) and re.fullmatch(INTENSITY_PATTERN, value):
            return value
        written = isinstance(value, str) and re.fullmatch(NUMBER, value)  # (not float()'s wider grammar)
        amount = float(value) if written or isinstance(value, int | float) else math.nan
        if isinstance(value, bool) or not 0.0 <= amount <= MAX_INTENSITY:
            raise ValueError(f"intensity {value!r}: {INTENSITY_HELP}")
        return amount


class VideoForm(VideoRequest):
    """The form of POST /api/videos: the fields, and a photo and recorded speech as files."""

    image: UploadFile = Field(None, description="the photo (or give `photo`)")
    audio: UploadFile = Field(None, description=(
        f"or recorded speech (wav, mp3, flac, ogg, m4a; at most {MAX_AUDIO_BYTES // 2**20} MB and "
        f"{MAX_AUDIO_SECONDS} s) that drives the face instead of text; the face shows `emotion` throughout"))


class PhotoForm(BaseModel):
    """The form of POST /api/photos: an image file, or the name of a bundled sample photo."""

    model_config = ConfigDict(extra="ignore")

    image: UploadFile = Field(None, description="the photo")
    sample: str | None = Field(None, max_length=200, examples=["grace_hopper.jpg"],
                               description="or the name of a bundled sample photo (GET /api/samples)")


class PhotoSample(BaseModel):
    """POST /api/photos as a JSON object: a bundled sample photo by name (files come in a form)."""

    sample: str = Field(max_length=200, examples=["grace_hopper.jpg"], description="a name from GET /api/samples")


class Problem(BaseModel):
    """Why a request was refused, in one sentence that says what to do."""

    detail: str


class Photo(BaseModel):
    photo: str = Field(description="the photo's id, for POST /api/videos")
    faces: int = Field(description="faces found in the photo (the largest is used)")
    width: int
    height: int
    face_url: str = Field(description="the aligned face the model sees (PNG)")
    warning: str | None = None


class Session(BaseModel):
    auth: bool = Field(description="whether calls need Authorization: Bearer <token>")
    user: str | None = Field(description="the name of the token sent, if one was")
    admin: bool = Field(description="whether that token sees every owner's photos and videos")


class Sample(BaseModel):
    name: str
    url: str


class Job(BaseModel):
    """A video job: its status, step and progress; when done, its segments and self-check."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: str = Field(description="queued, running, done or failed")
    step: str | None
    progress: float
    error: str | None
    inputs: dict[str, Any]
    model: dict[str, Any]
    url: str
    video_url: str | None
    live_url: str | None = Field(None, description="the video while it is being made (a growing fragmented MP4), "
                                 "or once done the finished mp4; none for a failed job")
    face_url: str


class NewJob(Job):
    shared: bool = Field(description="true when an identical request made this job before (one render)")


def problems(*statuses: int) -> dict[int | str, dict]:
    """The ``responses`` entry of an operation's error statuses, each answered with a ``Problem``."""
    return {status: {"model": Problem} for status in statuses}
