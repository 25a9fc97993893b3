"""The server's uploads: photos (kept with their aligned face and a few facts) and recordings of speech,
each under a server-made name, and the landmark backends that find the faces.

A photo's id is the hash of its bytes, and of its owner's name on a server with tokens, so two owners who
upload the same photo get two ids, and one never learns that the other sent it. Recordings are named the
same way.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from pathlib import Path

import cv2

from synthtext.app.access import Access
from synthtext.app.uploads import (
    FORMATS,
    MAX_AUDIO_SECONDS,
    BadInput,
    check_image,
    json_file,
    recording_suffix,
)
from synthtext.data.landmarks import make_backend
from synthtext.data.media import load_speech
from synthtext.inference.infer import prepare_face
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_bytes_atomic, write_json_atomic

PHOTO_ID = re.compile(r"^[0-9a-f]{32}$")
RECORDING_ID = re.compile(r"^[0-9a-f]{32}\.[a-z0-9]{2,5}$")


def content_id(data: bytes, owner: str | None) -> str:
    return hashlib.md5(data if owner is None else f"{owner}\n".encode() + data).hexdigest()


class Uploads:
    """Photos under ``folder/photos``, recordings under ``folder/recordings``. ``in_use(kind, id)`` says
    whether a job uses a photo or a recording (``kind`` is ``photo`` or ``audio``): those are kept."""

    def __init__(self, folder: Path, models, in_use: Callable[[str, str], bool]):
        self.photos, self.recordings = folder / "photos", folder / "recordings"
        self.models, self.in_use = models, in_use
        self.backends: dict[tuple, object] = {}
        self.backend_lock, self.upload_lock = threading.Lock(), threading.Lock()
        for sub in (self.photos, self.recordings):
            sub.mkdir(parents=True, exist_ok=True)

    def backend(self, preprocess: dict, user: str):
        """A landmark backend per worker (and one for uploads), loaded once: dlib's predictor takes a second."""
        key = (user, preprocess["landmark_backend"], int(preprocess.get("detect_upsample", 1)))
        with self.backend_lock:
            if key not in self.backends:
                self.backends[key] = make_backend(*key[1:])
            return self.backends[key]

    # ---- photos

    def add_photo(self, data: bytes, access: Access) -> dict:
        """Keep a photo with its aligned face as PNG; refused if no face is found. Returns its facts and
        whether it is new."""
        suffix = check_image(data)
        photo_id = content_id(data, access.name)
        path = self.photos / f"{photo_id}{suffix}"
        face_png = self.photos / f"{photo_id}.face.png"
        with self.upload_lock:  # uploads share one landmark backend, and the same photo is written once
            if path.is_file() and face_png.is_file():
                return {**self.photo_info(photo_id, access), "new": False}
            write_bytes_atomic(path, data)
            try:
                _, model = self.models.current()
                face = prepare_face(path, model.preprocess, self.backend(model.preprocess, "upload"))
            except SynthTextError as exc:
                path.unlink(missing_ok=True)
                raise BadInput(str(exc).replace(str(path), "the photo")) from exc
            _, png = cv2.imencode(".png", cv2.cvtColor(face.crop, cv2.COLOR_RGB2BGR))
            write_json_atomic(self.photos / f"{photo_id}.meta.json", {
                "faces": face.faces, "width": int(face.image.shape[1]), "height": int(face.image.shape[0]),
                "owner": access.name})
            write_bytes_atomic(face_png, png.tobytes())  # last: a photo counts as kept once its face is there
        return {**self.photo_info(photo_id, access), "new": True}

    def photo_path(self, photo_id: str, access: Access | None = None) -> Path:
        """The photo's file; unknown (404) when it is not there or, given ``access``, not its to see."""
        unknown = BadInput(f"unknown photo {photo_id!r}: upload it first (POST /api/photos)", 404)
        if not PHOTO_ID.match(photo_id or ""):
            raise unknown
        found = [p for p in self.photos.glob(f"{photo_id}.*") if p.suffix in FORMATS.values()
                 and not p.name.endswith(".face.png")]
        if not found or not (self.photos / f"{photo_id}.face.png").is_file():
            raise unknown
        if access is not None and not access.sees(self.photo_owner(photo_id)):
            raise unknown
        return found[0]

    def photo_owner(self, photo_id: str) -> str | None:
        try:
            return json_file(self.photos / f"{photo_id}.meta.json").get("owner")
        except (OSError, ValueError):
            return None

    def photo_info(self, photo_id: str, access: Access) -> dict:
        self.photo_path(photo_id, access)
        meta = {k: v for k, v in json_file(self.photos / f"{photo_id}.meta.json").items() if k != "owner"}
        return {"photo": photo_id, **meta, "face_url": f"/api/photos/{photo_id}/face",
                "warning": f"{meta['faces']} faces in the photo; the largest is used" if meta["faces"] > 1 else None}

    def forget_photo(self, photo_id: str) -> bool:
        """Remove a photo that no job uses; False when one does."""
        if not PHOTO_ID.match(photo_id or "") or self.in_use("photo", photo_id):
            return False
        (self.photos / f"{photo_id}.face.png").unlink(missing_ok=True)  # first: it is what makes a photo known
        for path in self.photos.glob(f"{photo_id}.*"):
            path.unlink(missing_ok=True)
        return True

    # ---- recordings

    def add_recording(self, data: bytes, filename: str | None, access: Access) -> dict:
        """Keep an uploaded recording under its hash (and its format's suffix), checked: one ffmpeg
        decodes, with sound in it, at most ``MAX_AUDIO_SECONDS`` long. Returns its id and whether it is new."""
        suffix = recording_suffix(filename, data)
        recording_id = f"{content_id(data, access.name)}{suffix}"
        path = self.recordings / recording_id
        with self.upload_lock:
            new = not path.is_file()
            if new:
                write_bytes_atomic(path, data)
        try:
            audio, rate = load_speech(path)
        except SynthTextError as exc:
            if new:
                self.forget_recording(recording_id)
            raise BadInput(str(exc).replace(f"audio file {path}", "the recording").replace(str(path),
                                                                                           "the recording")) from exc
        if len(audio) > MAX_AUDIO_SECONDS * rate:
            if new:
                self.forget_recording(recording_id)
            raise BadInput(f"the recording lasts {len(audio) / rate:.0f} s; at most {MAX_AUDIO_SECONDS} s are "
                           "accepted", 413)
        return {"recording": recording_id, "seconds": round(len(audio) / rate, 3), "new": new}

    def forget_recording(self, recording_id: str) -> None:
        """Remove a recording that no job uses (one that came with a refused request)."""
        if RECORDING_ID.match(recording_id or "") and not self.in_use("audio", recording_id):
            (self.recordings / recording_id).unlink(missing_ok=True)

    def recording_path(self, recording_id: str) -> Path:
        path = self.recordings / recording_id if RECORDING_ID.match(recording_id or "") else None
        if path is None or not path.is_file():
            raise BadInput(f"unknown recording {recording_id!r}: send it with the request", 404)
        return path
