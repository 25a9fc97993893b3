"""The web page and HTTP API: photo + text + emotion -> a talking-face video, from the registry's champion.

The text may carry emotion tags (``Great news! [sad] But I'm sorry.``, ``synthtext.markup``), or a
recording of speech (wav, mp3, flac, ogg, m4a ...) may drive the face instead of synthesized speech.
The face blinks and its head moves with the speech unless the request says otherwise (``blinks``,
``head_motion`` 0..1), and ``intensity`` is LO, MD, HI or a number 0..1.5 (``synthtext.markup``).
Each finished job records its segments and the self-check of each (the emotion asked for, the one the
face shows, the evaluator's confidence), the warnings for mismatches, or why the check was skipped.

Every video is a ``synthtext.videojobs`` job run by ``make_video_safely``, the same code path as
``synthtext generate``. Jobs wait in a bounded queue (full: 429 with Retry-After) and run in a pool
of worker threads that share one loaded model (as ``generate-batch`` does). The model reference is
resolved again for each new job: when a retrain moves the ``champion`` alias, new jobs load and use
the new version, and every job records the version that made it. A job's id is its inputs hash
(``videojobs.job_key``), so identical requests share one render.

Everything the server keeps lies in one folder: ``photos/`` (uploads under server-made names, and
their aligned faces), ``recordings/`` (uploaded speech, under server-made names), ``videos/``
(``<id>.mp4``, ``.wav``, ``.json``, each written to a temporary name and renamed) and ``index.json``
(the gallery), so the gallery survives a restart; a job that was queued or running when the server
stopped shows as failed with the reason.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import io
import json
import math
import os
import queue
import re
import threading
import time
import urllib.parse
from pathlib import Path

import cv2
import torch
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image

from synthtext import lineage, parse_emotion, tracking
from synthtext.errors import SynthTextError
from synthtext.files import tmp_path, write_json_atomic
from synthtext.infer import REGISTRY_PREFIX, LoadedModel, check_model_ref, load_generator, prepare_face
from synthtext.landmarks import make_backend
from synthtext.markup import MAX_INTENSITY, parse_intensity, starts_with_tag
from synthtext.media import SPEECH_SUFFIXES, load_speech
from synthtext.selfcheck import attach_evaluator
from synthtext.videojobs import (
    Job,
    Options,
    engine_for,
    is_done,
    job_key,
    make_job,
    make_video_safely,
    parse_blinks,
    parse_head_motion,
)

MAX_UPLOAD_BYTES = 15 * 1024 * 1024
MAX_AUDIO_BYTES = 15 * 1024 * 1024
MAX_AUDIO_SECONDS = 600  # ten minutes of speech: about as long as the longest text (5000 characters)
MAX_PIXELS = 40_000_000  # a 40 MP photo is plenty; more is refused before it is decoded (decompression bombs)
MAX_TEXT_CHARS = 5000
STEPS = ("tts", "face", "generate", "encode")
FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tiff", "GIF": ".gif"}
SAMPLE_FOLDERS = ("heldout", "faces")
ASSETS = Path(__file__).resolve().parents[1] / "assets"
WEB = Path(__file__).resolve().parent / "web"
PHOTO_ID = re.compile(r"^[0-9a-f]{32}$")
JOB_ID = re.compile(r"^[0-9a-f]{24}$")
RECORDING_ID = re.compile(r"^[0-9a-f]{32}\.[a-z0-9]{2,5}$")
INTERRUPTED = "interrupted: the server stopped before this video was finished; submit it again"


class BadInput(Exception):
    """A request the user can fix: answered with ``status`` and the message, and nothing kept."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- the model


class ModelSource:
    """The model reference (``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a folder), resolved to
    an exact version for each job, and the loaded models by version (loaded once, shared by the workers)."""

    def __init__(self, ref: str, repo: Path):
        self.ref, self.repo = check_model_ref(ref), repo
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._client = None

    def resolve(self) -> dict:
        """What the reference names now: ``uri`` (an exact version or the folder), ``version``, ``alias``."""
        if not self.ref.startswith(REGISTRY_PREFIX):
            return {"ref": self.ref, "uri": self.ref, "name": self.ref, "version": None, "alias": None}
        name, _, alias = self.ref[len(REGISTRY_PREFIX):].partition("@")
        if not alias:
            name, _, number = name.partition("/")
            return {"ref": self.ref, "uri": self.ref, "name": name, "version": number, "alias": None}
        version = self._mlflow_client().get_model_version_by_alias(name, alias)
        return {"ref": self.ref, "uri": f"{REGISTRY_PREFIX}{name}/{version.version}", "name": name,
                "version": version.version, "alias": alias, "run_id": version.run_id}

    def _mlflow_client(self):
        # mlflow is imported here, not at the top: it takes seconds, and only registry URIs need it.
        import mlflow
        from mlflow.tracking import MlflowClient

        if self._client is None:
            mlflow.set_tracking_uri(tracking.tracking_uri(self.repo))
            self._client = MlflowClient()
        return self._client

    def current(self) -> tuple[dict, LoadedModel]:
        """The version the reference names now, loaded (a registry error is the user's to fix)."""
        if self.ref.startswith(REGISTRY_PREFIX):  # a tracking server that is down: say so, not minutes of retries
            tracking.require_server(tracking.tracking_uri(self.repo))
        try:
            about = self.resolve()
        except Exception as exc:  # MlflowException and its causes: the alias or the store is missing
            raise SynthTextError(f"model {self.ref} cannot be resolved: {str(exc).splitlines()[0][:200]}") from exc
        return about, self.load(about["uri"])

    def load(self, uri: str) -> LoadedModel:
        with self._lock:
            if uri not in self._loaded:
                model = attach_evaluator(load_generator(uri, self.repo), None, self.repo)
                self._loaded = {**dict(list(self._loaded.items())[-1:]), uri: model}  # this one and the last
            return self._loaded[uri]

    def describe(self) -> dict:
        """Name, version, alias, hash, the run's metrics and the evaluation figures (``metrics/evaluate.json``)."""
        about, model = self.current()
        info = {**about, "md5": model.md5, "fps": model.cfg.fps, "preprocess": model.preprocess}
        if about.get("run_id"):
            run = self._mlflow_client().get_run(about["run_id"])
            info["run_metrics"] = {k: round(v, 4) for k, v in sorted(run.data.metrics.items())}
            info["stage"] = run.data.tags.get("stage")
        evaluation = self.repo / "metrics" / "evaluate.json"
        if about["version"] and evaluation.is_file():  # the last evaluation of the registry's candidate
            figures = json_file(evaluation)
            info["evaluation"] = {k: v for k, v in figures.items() if isinstance(v, dict) and k != "promotion"
                                  and all(isinstance(x, int | float) for x in v.values())}
            info["promotion"] = figures.get("promotion")
        return info

    def lineage(self) -> dict:
        """The ``synthtext lineage`` record of the version in use, summarised."""
        about = self.resolve()
        record, found = lineage.load_for(about["uri"], self.repo)
        return {"model": found, "stage": record["stage"], "commit": record["commit"], "dirty": record["dirty"],
                "params": record["params"].get(record["stage"]), "inputs": record["inputs"],
                "raw_source": record["raw_source"], "raw_md5": record["raw_md5"],
                "train_clips": len(record["train_clips"]),
                "upstream": {stage: {"mlflow_run_id": e.get("mlflow_run_id"), "outs": e["outs"]}
                             for stage, e in record["upstream"].items()}}


def json_file(path: Path) -> dict:
    return json.loads(path.read_text())


# ---------------------------------------------------------------- uploads


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``multipart/form-data`` (or a urlencoded form or a JSON object, which have no files) -> {field:
    (file name or None, bytes)}, with the standard library."""
    if content_type.lower().startswith("application/x-www-form-urlencoded"):
        return {k: (None, v.encode()) for k, v in urllib.parse.parse_qsl(body.decode("utf-8", "replace"))}
    if content_type.lower().startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise BadInput(f"the JSON body could not be read: {exc}") from exc
        if not isinstance(data, dict):
            raise BadInput("send a JSON object of fields ({\"photo\": ..., \"text\": ...})")
        return {k: (None, (json.dumps(v) if isinstance(v, bool) else str(v)).encode())
                for k, v in data.items() if v is not None}
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise BadInput("send the form as multipart/form-data (an image file plus the text fields), or a JSON "
                       "object with a photo id", 415)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadInput("the multipart form could not be read")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


async def read_form(request: Request, recording: bool = False) -> dict[str, tuple[str | None, bytes]]:
    """The request's form, refused (413) as soon as it is larger than the upload limit (a photo, plus a
    recording where one may come)."""
    limit = MAX_UPLOAD_BYTES + (MAX_AUDIO_BYTES if recording else 0) + 64 * 1024  # plus the text fields
    what = "a smaller photo or recording" if recording else "a smaller photo"
    too_large = f"the upload is larger than {limit // 2**20} MB: send {what}"
    if int(request.headers.get("content-length") or 0) > limit:
        raise BadInput(too_large, 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadInput(too_large, 413)
    return parse_multipart(request.headers.get("content-type", ""), bytes(body))


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


def write_atomic(path: Path, data: bytes) -> None:
    tmp = tmp_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def samples() -> dict[str, Path]:
    """The bundled photos (held-out people first) by file name."""
    found = {}
    for folder in SAMPLE_FOLDERS:
        for path in sorted((ASSETS / folder).glob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                found.setdefault(path.name, path)
    return found


# ---------------------------------------------------------------- the service


class VideoService:
    """Photos, the job index, the queue and the workers; everything kept under ``folder``."""

    def __init__(self, models: ModelSource, folder: Path, workers: int = 1, queue_size: int = 8,
                 voices: dict[str, str | None] | None = None):
        if workers < 1 or queue_size < 1:
            raise SynthTextError("--workers and the queue size must be at least 1")
        self.models, self.folder, self.workers = models, Path(folder), workers
        self.photos, self.videos = self.folder / "photos", self.folder / "videos"
        self.recordings = self.folder / "recordings"
        self.voices = voices or {"default": None}
        self.queue: queue.Queue[str | None] = queue.Queue(maxsize=queue_size)
        self.jobs: dict[str, dict] = {}
        self.lock, self.saving = threading.Lock(), threading.Lock()
        self.engines: dict[str | None, object] = {}
        self.backends: dict[tuple, object] = {}
        self.backend_lock, self.upload_lock = threading.Lock(), threading.Lock()
        self.seconds_per_job = 5.0  # a first guess for Retry-After, then the running mean
        self.threads: list[threading.Thread] = []
        for sub in (self.photos, self.videos, self.recordings):
            sub.mkdir(parents=True, exist_ok=True)
        self._recover()

    # ---- lifetime

    def _recover(self) -> None:
        """Read the gallery; a job that never finished is failed (or done, if its files are complete);
        partial files from a killed process are removed."""
        for partial in [*self.videos.glob(".*.tmp*"), *self.photos.glob(".*.tmp*"), *self.recordings.glob(".*.tmp*")]:
            partial.unlink(missing_ok=True)
        index = self.folder / "index.json"
        for record in (json_file(index).get("jobs", []) if index.is_file() else []):
            if record["status"] in ("queued", "running"):
                if self._finished(record):
                    record.update(status="done", step=None, progress=1.0)
                else:
                    record.update(status="failed", error=INTERRUPTED, step=None)
            self.jobs[record["id"]] = record
        self._save()

    def _finished(self, record: dict) -> bool:
        try:
            return is_done(self._job(record), record["key"])
        except BadInput:  # its photo or recording is gone
            return False

    def start(self) -> None:
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"video-worker-{number}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        """Finish the running jobs; the waiting ones fail as interrupted (they can be submitted again)."""
        while True:
            try:
                job_id = self.queue.get_nowait()
            except queue.Empty:
                break
            if job_id is not None:
                self._update(job_id, status="failed", error=INTERRUPTED, step=None, finished=time.time())
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join(timeout=60)
        self.threads = []

    def _save(self) -> None:
        with self.saving:  # one writer at a time: they share the temporary file name
            with self.lock:
                records = [dict(r) for r in sorted(self.jobs.values(), key=lambda r: r["created"])]
            write_json_atomic(self.folder / "index.json", {"jobs": records})

    # ---- photos

    def add_photo(self, data: bytes) -> dict:
        """Keep a photo under its hash, with its aligned face as PNG; refused if no face is found."""
        suffix = check_image(data)
        photo_id = hashlib.md5(data).hexdigest()
        path = self.photos / f"{photo_id}{suffix}"
        face_png = self.photos / f"{photo_id}.face.png"
        if path.is_file() and face_png.is_file():
            return {**self.photo_info(photo_id), "new": False}
        write_atomic(path, data)
        try:
            _, model = self.models.current()
            with self.upload_lock:  # uploads share one landmark backend
                face = prepare_face(path, model.preprocess, self._backend(model.preprocess, "upload"))
        except SynthTextError as exc:
            path.unlink(missing_ok=True)
            raise BadInput(str(exc).replace(str(path), "the photo")) from exc
        _, png = cv2.imencode(".png", cv2.cvtColor(face.crop, cv2.COLOR_RGB2BGR))
        write_atomic(face_png, png.tobytes())
        write_json_atomic(self.photos / f"{photo_id}.meta.json", {
            "faces": face.faces, "width": int(face.image.shape[1]), "height": int(face.image.shape[0])})
        return {**self.photo_info(photo_id), "new": True}

    def _backend(self, preprocess: dict, owner: str):
        """A landmark backend per worker (and one for uploads), loaded once: dlib's predictor takes a second."""
        key = (owner, preprocess["landmark_backend"], int(preprocess.get("detect_upsample", 1)))
        with self.backend_lock:
            if key not in self.backends:
                self.backends[key] = make_backend(*key[1:])
            return self.backends[key]

    def forget_photo(self, photo_id: str) -> None:
        """Remove a photo that no job uses (one that came with a refused request)."""
        with self.lock:
            if any(r["inputs"]["photo"] == photo_id for r in self.jobs.values()):
                return
        for path in self.photos.glob(f"{photo_id}.*"):
            path.unlink(missing_ok=True)

    def photo_path(self, photo_id: str) -> Path:
        if not PHOTO_ID.match(photo_id or ""):
            raise BadInput(f"unknown photo {photo_id!r}: upload it first (POST /api/photos)", 404)
        found = [p for p in self.photos.glob(f"{photo_id}.*") if p.suffix in FORMATS.values()
                 and not p.name.endswith(".face.png")]
        if not found or not (self.photos / f"{photo_id}.face.png").is_file():
            raise BadInput(f"unknown photo {photo_id!r}: upload it first (POST /api/photos)", 404)
        return found[0]

    def photo_info(self, photo_id: str) -> dict:
        self.photo_path(photo_id)
        meta = json_file(self.photos / f"{photo_id}.meta.json")
        return {"photo": photo_id, **meta, "face_url": f"/api/photos/{photo_id}/face",
                "warning": f"{meta['faces']} faces in the photo; the largest is used" if meta["faces"] > 1 else None}

    # ---- recordings

    def add_recording(self, data: bytes, filename: str | None) -> dict:
        """Keep an uploaded recording under its hash (and its format's suffix), checked: one ffmpeg
        decodes, with sound in it, at most ``MAX_AUDIO_SECONDS`` long. Returns its id and whether it is new."""
        suffix = recording_suffix(filename, data)
        recording_id = f"{hashlib.md5(data).hexdigest()}{suffix}"
        path = self.recordings / recording_id
        new = not path.is_file()
        if new:
            write_atomic(path, data)
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
        with self.lock:
            if any(r["inputs"].get("audio") == recording_id for r in self.jobs.values()):
                return
        if RECORDING_ID.match(recording_id or ""):
            (self.recordings / recording_id).unlink(missing_ok=True)

    def recording_path(self, recording_id: str) -> Path:
        path = self.recordings / recording_id if RECORDING_ID.match(recording_id or "") else None
        if path is None or not path.is_file():
            raise BadInput(f"unknown recording {recording_id!r}: send it with the request", 404)
        return path

    # ---- jobs

    def submit(self, fields: dict[str, str], photo_id: str, recording_id: str | None = None) -> tuple[dict, bool]:
        """Validate a request, then queue it, or share the job with the same inputs. Returns (record, new).
        The text may carry emotion tags; with a recording (``recording_id``) there is no text."""
        text = fields.get("text", "")
        if recording_id and text.strip():
            if "[" in text or "]" in text:
                raise BadInput("emotion tags mark text that the voice speaks, and a recording has no text: send the "
                               "recording without text (the emotion setting holds throughout) or the tagged text alone")
            raise BadInput("give text or a recording, not both: a recording is the speech, with no text to speak")
        if not recording_id and not text.strip():
            raise BadInput("the text is empty: give some words to speak (or a recording)")
        if len(text) > MAX_TEXT_CHARS:
            raise BadInput(f"the text has {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted")
        all_emotions = fields.get("all_emotions", "").lower() in ("1", "true", "on", "yes")
        emotion = fields.get("emotion", "")
        try:  # text that starts with an emotion tag needs no emotion: its tags say every word's
            if not all_emotions and (emotion.strip() or recording_id or not starts_with_tag(text)):
                parse_emotion(emotion)
            intensity = parse_intensity(fields.get("intensity"))
            head_motion = parse_head_motion(fields.get("head_motion"))
            blinks = parse_blinks(fields.get("blinks"))
        except SynthTextError as exc:
            raise BadInput(str(exc)) from exc
        voice = fields.get("voice") or "default"
        if voice not in self.voices:
            raise BadInput(f"unknown voice {voice!r}: use one of {', '.join(self.voices)}")
        try:
            speed, seed = float(fields.get("speed") or 1.0), int(fields.get("seed") or 0)
        except ValueError as exc:
            raise BadInput("speed must be a number and seed a whole number") from exc
        if not (0.25 <= speed <= 4.0 and math.isfinite(speed)):
            raise BadInput(f"speed {speed} is out of range: use 0.25 to 4 (1 = the voice's normal rate)")
        paste_back = fields.get("paste_back", "").lower() in ("1", "true", "on", "yes")
        photo = self.photo_path(photo_id)
        audio = self.recording_path(recording_id) if recording_id else None
        if audio:  # a recording is spoken already: no voice, no speed (the same recording shares one job)
            voice, speed = None, 1.0
        about, model = self.models.current()
        options = Options(speed=speed, seed=seed, paste_back=paste_back)
        try:  # the checks `synthtext generate` makes: emotion tags, text or recording; the same job, the same key
            job = make_job(str(photo), text if not audio else None, emotion, str(self.videos / "new.mp4"),
                           intensity, self.voices.get(voice), all_emotions, audio=str(audio) if audio else None,
                           head_motion=head_motion, blinks=blinks)
        except SynthTextError as exc:
            raise BadInput(self._hide_paths(str(exc), photo, audio)) from exc
        key = job_key(job, options, model.md5)
        job_id = key[:24]
        record = {"id": job_id, "key": key, "status": "queued", "step": None, "progress": 0.0, "error": None,
                  "created": time.time(), "started": None, "finished": None, "times": None, "seconds": None,
                  "segments": None, "warnings": None, "self_check": None,
                  "inputs": {"photo": photo_id, "text": job.text, "audio": recording_id, "emotions": job.emotions,
                             "intensity": intensity, "voice": voice, "speed": speed, "seed": seed,
                             "paste_back": paste_back, "all_emotions": all_emotions, "head_motion": head_motion,
                             "blinks": blinks},
                  "model": {k: about.get(k) for k in ("ref", "uri", "name", "version", "alias")} | {"md5": model.md5}}
        with self.lock:
            existing = self.jobs.get(job_id)
            if existing and existing["status"] in ("queued", "running", "done"):
                return existing, False
            self.jobs[job_id] = record
        try:
            self.queue.put_nowait(job_id)
        except queue.Full:
            with self.lock:
                if existing:
                    self.jobs[job_id] = existing
                else:
                    del self.jobs[job_id]
            raise
        self._save()
        return record, True

    def retry_after(self) -> int:
        return max(1, math.ceil(self.seconds_per_job * (self.queue.qsize() + 1) / self.workers))

    @staticmethod
    def _hide_paths(message: str, photo: Path | str | None, audio: Path | str | None) -> str:
        """A message without the server's paths: the photo and the recording are named as such."""
        if audio:
            message = message.replace(f"audio file {audio}", "the recording").replace(str(audio), "the recording")
        return message.replace(str(photo), "the photo") if photo else message

    def _job(self, record: dict) -> Job:
        inputs = record["inputs"]
        audio = inputs.get("audio")
        # (a record from before head motion and blinks were settings was still: neither)
        return Job(image=str(self.photo_path(inputs["photo"])), text=inputs["text"], emotions=inputs["emotions"],
                   out=str(self.videos / f"{record['id']}.mp4"), intensity=inputs["intensity"],
                   voice=None if audio else self.voices.get(inputs["voice"]),
                   audio=str(self.recording_path(audio)) if audio else None,
                   head_motion=inputs.get("head_motion", 0.0), blinks=inputs.get("blinks", False))

    def _update(self, job_id: str, save: bool = True, **changes) -> None:
        with self.lock:
            self.jobs[job_id].update(changes)
        if save:
            self._save()

    def _work(self) -> None:
        while (job_id := self.queue.get()) is not None:
            try:
                self._run(job_id)
            except Exception as exc:  # a bug or a broken machine: this job fails with the reason, the server goes on
                self._update(job_id, status="failed", error=f"{type(exc).__name__}: {exc}", step=None,
                             finished=time.time())

    def _run(self, job_id: str) -> None:
        with self.lock:
            record = dict(self.jobs[job_id])
        self._update(job_id, status="running", started=time.time())
        inputs = record["inputs"]
        options = Options(speed=inputs["speed"], seed=inputs["seed"], paste_back=inputs["paste_back"])
        job = self._job(record)
        model = self.models.load(record["model"]["uri"])

        def progress(step: str, fraction: float = 0.0) -> None:
            self._update(job_id, save=False, step=step, progress=(STEPS.index(step) + fraction) / len(STEPS))

        if is_done(job, record["key"]):
            side = json_file(Path(job.out).with_suffix(".json"))
            segments = side.get("segments") or []
            result = {"status": "ok", "times": {}, "seconds": side["seconds"], "segments": segments,
                      "self_check": side.get("self_check"), "warnings": side.get("warnings", [])}
        else:
            engine = None if job.audio else engine_for(self.engines, job.voice, options)  # a recording needs no voice
            backend = self._backend(model.preprocess, threading.current_thread().name)
            result = make_video_safely(job, model, engine, options, record["key"], progress, backend)
        finished = time.time()
        if result["status"] == "ok":
            self.seconds_per_job = 0.7 * self.seconds_per_job + 0.3 * (finished - record["created"])
            self._update(job_id, status="done", step=None, progress=1.0, finished=finished,
                         times={k: round(v, 3) for k, v in result["times"].items()}, seconds=result["seconds"],
                         fps=model.cfg.fps, segments=result.get("segments"), warnings=result.get("warnings"),
                         self_check=result.get("self_check"))
        else:
            self._update(job_id, status="failed", step=None, error=self._hide_paths(result["reason"], job.image,
                                                                                     job.audio), finished=finished)

    def public(self, record: dict) -> dict:
        """A job as the API shows it (no paths on the server)."""
        shown = {k: v for k, v in record.items() if k != "key"}
        shown["url"] = f"/api/videos/{record['id']}"
        shown["video_url"] = f"/api/videos/{record['id']}/video" if record["status"] == "done" else None
        shown["face_url"] = f"/api/photos/{record['inputs']['photo']}/face"
        return shown

    def get(self, job_id: str) -> dict:
        with self.lock:
            record = self.jobs.get(job_id) if JOB_ID.match(job_id) else None
            if record is None:
                raise BadInput(f"no video job {job_id!r}", 404)
            return dict(record)

    def listing(self) -> list[dict]:
        with self.lock:
            records = sorted(self.jobs.values(), key=lambda r: r["created"], reverse=True)
        return [self.public(dict(r)) for r in records]


# ---------------------------------------------------------------- the app

VIDEO_FIELDS = {
    "image": {"type": "string", "format": "binary", "description": "the photo (or give `photo`)"},
    "photo": {"type": "string", "description": "a photo id from POST /api/photos"},
    "text": {"type": "string", "maxLength": MAX_TEXT_CHARS,
             "description": "the words to speak; emotion tags change the emotion from that point on: "
                            "`Great news! [sad] But I'm sorry.` ([happy], [SAD], [anger:LO], [happy:0.8]); text "
                            "before the first tag has `emotion`. Leave it out when sending `audio`"},
    "audio": {"type": "string", "format": "binary",
              "description": "or recorded speech (wav, mp3, flac, ogg, m4a; at most "
                             f"{MAX_AUDIO_BYTES // 2**20} MB and {MAX_AUDIO_SECONDS} s) that drives the "
                             "face instead of text; the face shows `emotion` throughout"},
    "emotion": {"type": "string", "description": "ANG DIS FEA HAP NEU SAD or a name (the default emotion of tagged "
                                                 "text; may be left out when the text starts with a tag)"},
    "all_emotions": {"type": "boolean"},
    "intensity": {"oneOf": [{"type": "string", "enum": ["LO", "MD", "HI"]},
                            {"type": "number", "minimum": 0.0, "maximum": MAX_INTENSITY}], "default": "HI",
                  "description": "how strongly the face shows the emotion: LO, MD, HI (0.5, 0.75, 1.0) or a number "
                                 f"from 0.0 (neutral) to {MAX_INTENSITY} (beyond the trained expression); the "
                                 "voice takes the nearest of LO, MD, HI"},
    "head_motion": {"type": "number", "minimum": 0.0, "maximum": 1.0, "default": 1.0,
                    "description": "how much the head moves with the speech: 0 still, 1 fully"},
    "blinks": {"type": "boolean", "default": True, "description": "natural blinking (false: eyes that never blink)"},
    "voice": {"type": "string"}, "speed": {"type": "number"}, "seed": {"type": "integer"},
    "paste_back": {"type": "boolean"}}
MULTIPART_SCHEMA = {
    "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": VIDEO_FIELDS,
                                           "description": "`text` or `audio`, not both"}},
        "application/json": {"schema": {"type": "object", "properties": {
            k: v for k, v in VIDEO_FIELDS.items() if k not in ("image", "audio")},
            "description": "a photo uploaded before (`photo`) and `text`: no files"}}}}}
PHOTO_SCHEMA = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": {
            "image": {"type": "string", "format": "binary"},
            "sample": {"type": "string", "description": "or the name of a bundled sample photo"}}}}}}}


def create_app(model: str = tracking.CHAMPION_URI, folder: str | Path = "data/app", repo: str | Path = ".",
               workers: int = 1, queue_size: int = 8, voices: dict[str, str | None] | None = None) -> FastAPI:
    """The FastAPI app; its workers start and stop with the app's lifespan."""
    repo = Path(repo).resolve()
    # The workers share the cores: each job's network gets its share of them (one worker: all of them;
    # more threads than cores make every job slower).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    service = VideoService(ModelSource(model, repo), Path(folder), workers, queue_size, voices)
    service.models.current()  # a missing model or alias is said now, not at the first request

    async def lifespan(app: FastAPI):
        service.start()
        yield
        await asyncio.to_thread(service.stop)

    app = FastAPI(title="SynthText", summary="photo + text + emotion -> a talking-face video",
                  version="1", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(SynthTextError)
    async def synthtext_error(request: Request, exc: SynthTextError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/api/samples", summary="The bundled sample photos")
    def list_samples() -> list[dict]:
        return [{"name": name, "url": f"/api/samples/{name}"} for name in samples()]

    @app.get("/api/samples/{name}", summary="One bundled sample photo")
    def sample(name: str) -> FileResponse:
        found = samples().get(name)
        if found is None:
            raise BadInput(f"no sample photo {name!r}", 404)
        return FileResponse(found)

    @app.get("/api/voices", summary="The voices a job may name")
    def list_voices() -> list[str]:
        return list(service.voices)

    @app.post("/api/photos", status_code=201, openapi_extra=PHOTO_SCHEMA,
              summary="Upload a photo (or pick a sample): its id and the aligned face, or why there is none")
    async def add_photo(request: Request) -> dict:
        fields = await read_form(request)
        name = fields.get("sample", (None, b""))[1].decode("utf-8", "replace")
        if name:
            found = samples().get(name)
            if found is None:
                raise BadInput(f"no sample photo {name!r}", 404)
            data = found.read_bytes()
        else:
            data = fields.get("image", (None, b""))[1]
        return await run_in_threadpool(service.add_photo, data)

    @app.get("/api/photos/{photo_id}/face", summary="The aligned face of an uploaded photo (PNG)")
    def photo_face(photo_id: str) -> FileResponse:
        service.photo_path(photo_id)
        return FileResponse(service.photos / f"{photo_id}.face.png", media_type="image/png")

    @app.post("/api/videos", status_code=202, openapi_extra=MULTIPART_SCHEMA,
              summary="Ask for a video from text (emotion tags allowed) or a recording: 202 and the job "
                      "(identical requests share one job); 429 when the queue is full")
    async def add_video(request: Request) -> JSONResponse:
        form = await read_form(request, recording=True)
        fields = {k: v.decode("utf-8", "replace") for k, (filename, v) in form.items() if k not in ("image", "audio")}
        photo = {"photo": fields.get("photo", ""), "new": False}
        recording = {"recording": None, "new": False}
        if form.get("image", (None, b""))[1]:
            photo = await run_in_threadpool(service.add_photo, form["image"][1])
        try:
            if "audio" in form and (form["audio"][0] or form["audio"][1]):  # a file input left empty sends neither
                recording = await run_in_threadpool(service.add_recording, form["audio"][1], form["audio"][0])
            record, new = await run_in_threadpool(service.submit, fields, photo["photo"], recording["recording"])
        except (BadInput, queue.Full) as exc:
            if photo["new"]:  # a refused request keeps nothing
                service.forget_photo(photo["photo"])
            if recording["new"]:
                service.forget_recording(recording["recording"])
            if isinstance(exc, BadInput):
                raise
            return JSONResponse({"detail": "the queue is full: try again later"}, status_code=429,
                                headers={"Retry-After": str(service.retry_after())})
        shown = service.public(record)
        shown["shared"] = not new
        return JSONResponse(shown, status_code=202, headers={"Location": shown["url"]})

    @app.get("/api/videos", summary="Every job, newest first (the gallery)")
    def list_videos() -> list[dict]:
        return service.listing()

    @app.get("/api/videos/{job_id}", summary="A job: status, step, progress, error, inputs, model version; when "
             "done its segments with the emotion each asked for and the one the face shows (the self-check), "
             "the warnings for mismatches, or why the check was skipped")
    def get_video(job_id: str) -> dict:
        return service.public(service.get(job_id))

    @app.get("/api/videos/{job_id}/video", summary="The finished mp4", response_class=FileResponse)
    def video_file(job_id: str, download: bool = False) -> FileResponse:
        record = service.get(job_id)
        if record["status"] != "done":
            raise BadInput(f"video {job_id} is {record['status']}, not done", 409)
        return FileResponse(service.videos / f"{job_id}.mp4", media_type="video/mp4",
                            filename=f"synthtext-{job_id}.mp4" if download else None)

    @app.get("/api/model", summary="The model new jobs use: name, version, alias, evaluation figures")
    def model_info() -> dict:
        return service.models.describe()

    @app.get("/api/model/lineage", summary="The `synthtext lineage` record of the model in use")
    def model_lineage() -> dict:
        try:
            return service.models.lineage()
        except SynthTextError as exc:
            return {"error": str(exc)}

    return app
