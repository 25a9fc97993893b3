"""What the server accepts from a client: the size limits, the checks of an uploaded photo and recording,
the bundled sample photos, and the guard that refuses a request body larger than its limit before it
is read (``BodyLimit``).

Form fields and files are parsed by FastAPI (``UploadFile``, ``Form``, python-multipart); these are the
checks that come after, whose messages say what was wrong and what to send instead.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image
from starlette.exceptions import HTTPException

from synthtext.data.media import SPEECH_SUFFIXES

MAX_UPLOAD_BYTES = 15 * 1024 * 1024
MAX_AUDIO_BYTES = 15 * 1024 * 1024
MAX_AUDIO_SECONDS = 600  # ten minutes of speech: about as long as the longest text (5000 characters)
MAX_PIXELS = 40_000_000  # a 40 MP photo is plenty; more is refused before it is decoded (decompression bombs)
MAX_TEXT_CHARS = 5000
FORM_FIELDS_BYTES = 64 * 1024  # the text fields beside the files
FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tiff", "GIF": ".gif"}
SAMPLE_FOLDERS = ("heldout", "faces")
ASSETS = Path(__file__).resolve().parents[2] / "assets"


class BadInput(Exception):
    """A request the user can fix: answered with ``status`` and the message, and nothing kept."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def check_image(data: bytes) -> str:
    """The file extension of an image's real format; refuses non-images and too many pixels, undecoded."""
    if not data:
        raise BadInput("no photo: attach an image file (JPEG, PNG, WebP ...) or choose a sample")
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadInput(f"the photo is larger than {MAX_UPLOAD_BYTES // 2**20} MB: send a smaller one", 413)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height, kind = image.width, image.height, image.format
            if width * height > MAX_PIXELS:
                raise BadInput(f"the photo has {width}x{height} pixels; at most {MAX_PIXELS // 10**6} million "
                               "are accepted", 413)
            image.verify()
    except BadInput:
        raise
    except Image.DecompressionBombError as exc:
        raise BadInput(f"the photo has too many pixels (at most {MAX_PIXELS // 10**6} million)", 413) from exc
    except Exception as exc:  # Pillow raises many types for what is not an image
        raise BadInput("the upload is not an image Pillow can read (JPEG, PNG, WebP, BMP, TIFF, GIF)") from exc
    if kind not in FORMATS:
        raise BadInput(f"{kind} images are not accepted: send JPEG, PNG, WebP, BMP, TIFF or GIF")
    return FORMATS[kind]


def recording_suffix(filename: str | None, data: bytes) -> str:
    """The suffix a recording is kept under: its name's, if it is a known audio format (ffmpeg reads
    the content whatever the name; the suffix only helps it guess)."""
    if not data:
        raise BadInput("the recording is empty (0 bytes): attach a wav, mp3, flac, ogg or m4a file")
    if len(data) > MAX_AUDIO_BYTES:
        raise BadInput(f"the recording is larger than {MAX_AUDIO_BYTES // 2**20} MB: send a shorter or compressed "
                       "one (mp3, ogg, m4a)", 413)
    suffix = Path(filename or "").suffix.lower()
    if suffix not in SPEECH_SUFFIXES:
        named = f"is a {suffix} file" if suffix else "has a file name without a suffix"
        raise BadInput(f"the recording {named}: send {', '.join(s[1:] for s in SPEECH_SUFFIXES)}", 415)
    return suffix


def json_file(path: Path) -> dict:
    return json.loads(path.read_text())


def samples() -> dict[str, Path]:
    """The bundled photos (held-out people first) by file name."""
    found = {}
    for folder in SAMPLE_FOLDERS:
        for path in sorted((ASSETS / folder).glob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                found.setdefault(path.name, path)
    return found


class BodyLimit:
    """ASGI middleware: a POST to one of ``limits`` (path -> bytes) whose body is larger than its limit is
    answered 413 at once (by its Content-Length) or as soon as the streamed bytes pass it, before the form
    is parsed or any upload is spooled to disk."""

    def __init__(self, app, limits: dict[str, int]):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        limit = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        message = f"the upload is larger than {limit // 2**20} MB: send a smaller photo" + (
            " or recording" if limit > MAX_UPLOAD_BYTES + FORM_FIELDS_BYTES else "")
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            body = json.dumps({"detail": message}).encode()
            await send({"type": "http.response.start", "status": 413, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})
        received = 0

        async def counted():
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > limit:  # raised while the form is read: the app's handler answers 413
                raise HTTPException(413, message)
            return event

        await self.app(scope, counted, send)
