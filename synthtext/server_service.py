"""The server's photos, recordings and jobs: the job index, the queue and the worker threads.

Every video is a ``synthtext.videojobs`` job run by ``make_video_safely``, the same code path as
``synthtext generate``. Jobs wait in a bounded queue (full: 429 with Retry-After) and run in a pool of
worker threads that share one loaded model (as ``generate-batch`` does). The model reference is resolved
again for each new job, and every job records the version that made it. A job's id is its inputs hash
(``videojobs.job_key``), so identical requests share one render.

Everything lies in one folder: ``photos/`` (uploads under server-made names, and their aligned faces),
``recordings/`` (uploaded speech, under server-made names), ``videos/`` (``<id>.mp4``, ``.wav``, ``.json``,
each written to a temporary name and renamed) and ``index.json`` (the gallery), so the gallery survives a
restart; a job that was queued or running when the server stopped shows as failed with the reason.
"""

from __future__ import annotations

import hashlib
import math
import queue
import re
import threading
import time
from pathlib import Path

import cv2

from synthtext import parse_emotion
from synthtext.errors import SynthTextError
from synthtext.files import write_json_atomic
from synthtext.infer import prepare_face
from synthtext.landmarks import make_backend
from synthtext.markup import parse_intensity, starts_with_tag
from synthtext.media import load_speech
from synthtext.server_model import ModelSource
from synthtext.server_schema import VideoRequest
from synthtext.server_uploads import (
    FORMATS,
    MAX_AUDIO_SECONDS,
    MAX_TEXT_CHARS,
    BadInput,
    check_image,
    json_file,
    recording_suffix,
    write_atomic,
)
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

STEPS = ("tts", "face", "generate", "encode")
PHOTO_ID = re.compile(r"^[0-9a-f]{32}$")
JOB_ID = re.compile(r"^[0-9a-f]{24}$")
RECORDING_ID = re.compile(r"^[0-9a-f]{32}\.[a-z0-9]{2,5}$")
INTERRUPTED = "interrupted: the server stopped before this video was finished; submit it again"


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

    def submit(self, request: VideoRequest, photo_id: str, recording_id: str | None = None) -> tuple[dict, bool]:
        """Validate a request, then queue it, or share the job with the same inputs. Returns (record, new).
        The text may carry emotion tags; with a recording (``recording_id``) there is no text."""
        text = request.text
        if recording_id and text.strip():
            if "[" in text or "]" in text:
                raise BadInput("emotion tags mark text that the voice speaks, and a recording has no text: send the "
                               "recording without text (the emotion setting holds throughout) or the tagged text alone")
            raise BadInput("give text or a recording, not both: a recording is the speech, with no text to speak")
        if not recording_id and not text.strip():
            raise BadInput("the text is empty: give some words to speak (or a recording)")
        if len(text) > MAX_TEXT_CHARS:
            raise BadInput(f"the text has {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted")
        all_emotions, emotion = bool(request.all_emotions), request.emotion
        try:  # text that starts with an emotion tag needs no emotion: its tags say every word's
            if not all_emotions and (emotion.strip() or recording_id or not starts_with_tag(text)):
                parse_emotion(emotion)
            intensity = parse_intensity(request.intensity)
            head_motion = parse_head_motion(request.head_motion)
            blinks = parse_blinks(request.blinks)
        except SynthTextError as exc:
            raise BadInput(str(exc)) from exc
        voice = request.voice or "default"
        if voice not in self.voices:
            raise BadInput(f"unknown voice {voice!r}: use one of {', '.join(self.voices)}")
        speed, seed, paste_back = request.speed, request.seed, bool(request.paste_back)
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
