"""The server's photos, recordings and jobs: the job index, the queue and the worker threads.

Every video is a ``synthtext.inference.videojobs`` job run by ``make_video_safely``, the same code path as
``synthtext generate``. Jobs wait in a bounded queue (full: 429 with Retry-After) and run in a pool of
worker threads that share one loaded model (as ``generate-batch`` does). The model reference is resolved
again for each new job, and every job records the version that made it. A job's id is its inputs hash
(``videojobs.job_key``), with its owner's name on a server with tokens, so identical requests of one owner
share one render and never another owner's. Each owner may have ``max_queued`` jobs waiting or running.

Retention (``keep_days``, ``max_disk_gb``) deletes finished jobs, oldest first, never a queued or running one:
at start, after each job and every ten minutes.

Everything lies in one folder: ``photos/`` (uploads under server-made names, and their aligned faces),
``recordings/`` (uploaded speech, under server-made names), ``videos/`` (``<id>.mp4``, ``.wav``, ``.json``,
each written to a temporary name and renamed) and ``index.json`` (the gallery), so the gallery survives a
restart; a job that was queued or running when the server stopped shows as failed with the reason.

While a job runs, its video is also written to ``videos/.<id>.live.mp4``, a fragmented MP4 that grows as
the frames are encoded (``synthtext.inference.live``): ``live_stream`` follows it for ``GET /api/videos/{id}/live``.
It is written in place, not renamed (it is read while it grows), and removed when the job ends: a reader
that has it open reads it to its end; later ones get the finished mp4.
"""

from __future__ import annotations

import hashlib
import math
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from synthtext import parse_emotion
from synthtext.app.access import OPEN, Access
from synthtext.app.model import ModelSource
from synthtext.app.retention import PENDING, Retention
from synthtext.app.schema import VideoRequest
from synthtext.app.store import Uploads
from synthtext.app.uploads import MAX_TEXT_CHARS, BadInput, json_file
from synthtext.inference.jobs import Job, Options, make_job, parse_blinks, parse_head_motion
from synthtext.inference.live import FOLLOW_POLL_SECONDS, follow
from synthtext.inference.markup import parse_intensity, starts_with_tag
from synthtext.inference.videojobs import engine_for, is_done, job_key, make_video_safely
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_json_atomic

STEPS = ("tts", "face", "generate", "encode")
INTERRUPTED = "interrupted: the server stopped before this video was finished; submit it again"


class VideoService(Retention):
    """Photos, the job index, the queue and the workers; everything kept under ``folder``."""

    def __init__(self, models: ModelSource, folder: Path, workers: int = 1, queue_size: int = 8,
                 voices: dict[str, str | None] | None = None, max_queued: int | None = None,
                 keep_days: float | None = None, max_disk_gb: float | None = None):
        if workers < 1 or queue_size < 1:
            raise SynthTextError("--workers and the queue size must be at least 1")
        self.models, self.folder, self.workers = models, Path(folder), workers
        self.uploads = Uploads(self.folder, models, self.in_use)
        self.photos, self.videos = self.folder / "photos", self.folder / "videos"
        self.recordings = self.folder / "recordings"
        self.max_queued, self.keep_days, self.max_disk_gb = max_queued, keep_days, max_disk_gb
        self.voices = voices or {"default": None}
        self.queue: queue.Queue[str | None] = queue.Queue(maxsize=queue_size)
        self.jobs: dict[str, dict] = {}
        self.lock, self.saving = threading.Lock(), threading.Lock()
        self.engines: dict[str | None, object] = {}
        self.sweeping = threading.Event()
        self.seconds_per_job = 5.0  # a first guess for Retry-After, then the running mean
        self.threads: list[threading.Thread] = []
        self.videos.mkdir(parents=True, exist_ok=True)
        self._recover()
        self.sweep()

    # ---- lifetime

    def _recover(self) -> None:
        """Read the gallery; a job that never finished is failed (or done, if its files are complete);
        partial files from a killed process are removed."""
        for partial in [*self.videos.glob(".*.tmp*"), *self.videos.glob(".*.live.mp4"), *self.photos.glob(".*.tmp*"),
                        *self.recordings.glob(".*.tmp*")]:
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
        if self.keep_days or self.max_disk_gb:
            self.sweeping.clear()
            threading.Thread(target=self._sweep_now_and_then, name="retention", daemon=True).start()

    def _sweep_now_and_then(self) -> None:
        while not self.sweeping.wait(600):
            self.sweep()

    def stop(self) -> None:
        """Finish the running jobs; the waiting ones fail as interrupted (they can be submitted again)."""
        self.sweeping.set()
        while True:
            try:
                job_id = self.queue.get_nowait()
            except queue.Empty:
                break
            if job_id is not None and self.jobs.get(job_id, {}).get("status") == "queued":
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

    # ---- jobs

    def submit(self, request: VideoRequest, photo_id: str, recording_id: str | None = None,
               access: Access = OPEN) -> tuple[dict, bool]:
        """Validate a request, then queue it, or share the job with the same inputs. Returns (record, new).
        The text may carry emotion tags; with a recording (``recording_id``) there is no text. Raises
        ``queue.Full`` when the queue is full, ``TooMany`` when the owner has ``max_queued`` jobs pending."""
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
        photo = self.uploads.photo_path(photo_id, access)
        audio = self.uploads.recording_path(recording_id) if recording_id else None
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
        owned = key if access.name is None else hashlib.sha256(f"{access.name}\n{key}".encode()).hexdigest()
        job_id = owned[:24]  # (without tokens: the inputs hash, as `synthtext generate` records it)
        record = {"id": job_id, "key": key, "owner": access.name, "status": "queued", "step": None, "progress": 0.0,
                  "error": None,
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
            pending = sum(r.get("owner") == access.name and r["status"] in PENDING for r in self.jobs.values())
            if access.name is not None and self.max_queued and pending >= self.max_queued:
                raise TooMany(f"you have {pending} videos waiting or being made, the most one token may have: "
                              "wait for one to finish")
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
        return Job(image=str(self.uploads.photo_path(inputs["photo"])), text=inputs["text"],
                   emotions=inputs["emotions"],
                   out=str(self.videos / f"{record['id']}.mp4"), intensity=inputs["intensity"],
                   voice=None if audio else self.voices.get(inputs["voice"]),
                   audio=str(self.uploads.recording_path(audio)) if audio else None,
                   head_motion=inputs.get("head_motion", 0.0), blinks=inputs.get("blinks", False))

    def _update(self, job_id: str, save: bool = True, **changes) -> None:
        with self.lock:
            if job_id in self.jobs:  # (a queued job may have been deleted)
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
            if self.keep_days or self.max_disk_gb:
                self.sweep()

    def _run(self, job_id: str) -> None:
        with self.lock:
            if self.jobs.get(job_id, {}).get("status") != "queued":  # deleted while it waited
                return
            self.jobs[job_id].update(status="running", started=time.time())
            record = dict(self.jobs[job_id])
        self._save()
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
            backend = self.uploads.backend(model.preprocess, threading.current_thread().name)
            result = make_video_safely(job, model, engine, options, record["key"], progress, backend,
                                       live=self.live_path(job_id))
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
        self.live_path(job_id).unlink(missing_ok=True)  # after the status: its readers know it is complete

    def live_path(self, job_id: str) -> Path:
        return self.videos / f".{job_id}.live.mp4"

    def live_stream(self, job_id: str) -> Iterator[bytes]:
        """The job's video while it is made: the live file's bytes as they are written, from its start, until
        the job ends (waiting for it to begin if it is queued). A job that ended before its live file was
        seen gives its finished mp4, if it is done."""
        def pending() -> bool:
            with self.lock:
                return self.jobs.get(job_id, {}).get("status") in PENDING

        path = self.live_path(job_id)
        while True:
            if path.is_file():
                try:
                    yield from follow(path, lambda: not pending())
                    return
                except FileNotFoundError:  # removed between the look and the opening: the job has ended
                    pass
            if not pending():
                with self.lock:
                    done = self.jobs.get(job_id, {}).get("status") == "done"
                video = self.videos / f"{job_id}.mp4"
                if done and video.is_file():
                    yield from follow(video, lambda: True)
                return
            time.sleep(FOLLOW_POLL_SECONDS)

    def public(self, record: dict) -> dict:
        """A job as the API shows it (no paths on the server)."""
        shown = {k: v for k, v in record.items() if k != "key"}
        shown["url"] = f"/api/videos/{record['id']}"
        shown["video_url"] = f"/api/videos/{record['id']}/video" if record["status"] == "done" else None
        shown["live_url"] = f"/api/videos/{record['id']}/live" if record["status"] != "failed" else None
        shown["face_url"] = f"/api/photos/{record['inputs']['photo']}/face"
        return shown

    def get(self, job_id: str, access: Access = OPEN) -> dict:
        """A job its owner (or an admin) may see; any other is unknown (404), as one that does not exist."""
        with self.lock:
            return dict(self.get_locked(job_id, access))

    def listing(self, access: Access = OPEN) -> list[dict]:
        with self.lock:
            records = sorted((r for r in self.jobs.values() if access.sees(r.get("owner"))),
                             key=lambda r: r["created"], reverse=True)
        return [self.public(dict(r)) for r in records]

    def in_use(self, kind: str, upload_id: str) -> bool:
        """Whether a job uses the photo (``kind`` photo) or the recording (``audio``)."""
        with self.lock:
            return any(r["inputs"].get(kind) == upload_id for r in self.jobs.values())


class TooMany(Exception):
    """An owner asked for more videos than one may have waiting or running."""
