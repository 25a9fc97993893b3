"""Deleting the server's jobs and photos: on request, and by retention (``keep_days``, ``max_disk_gb``).

``Retention`` is the part of ``synthtext.app.service.VideoService`` that deletes: it works on the service's
job index (``jobs``, under ``lock``), its folders and its uploads.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from synthtext.app.access import OPEN, Access
from synthtext.app.uploads import BadInput

JOB_ID = re.compile(r"^[0-9a-f]{24}$")
PENDING = ("queued", "running")


class Retention:
    """Deleting jobs, photos and their files; ``sweep`` applies the retention limits."""

    def delete(self, job_id: str, access: Access = OPEN) -> None:
        """Delete a job and its video; a queued one is taken off the queue; a running one is refused (409)."""
        with self.lock:
            record = self.get_locked(job_id, access)
            if record["status"] == "running":
                raise BadInput(f"video {job_id} is being made: delete it when it is done", 409)
            del self.jobs[job_id]
        self._remove_files(job_id)
        self._save()

    def get_locked(self, job_id: str, access: Access) -> dict:
        record = self.jobs.get(job_id) if JOB_ID.match(job_id) else None
        if record is None or not access.sees(record.get("owner")):
            raise BadInput(f"no video job {job_id!r}", 404)
        return record

    def delete_photo(self, photo_id: str, access: Access = OPEN) -> None:
        """Delete a photo and its face; refused (409) while a queued or running job uses it."""
        self.uploads.photo_path(photo_id, access)
        with self.lock:
            if any(r["inputs"]["photo"] == photo_id and r["status"] in PENDING for r in self.jobs.values()):
                raise BadInput(f"photo {photo_id} is used by a video being made: delete it when that is done", 409)
        for path in self.photos.glob(f"{photo_id}.*"):
            path.unlink(missing_ok=True)

    def _remove_files(self, job_id: str) -> None:
        for suffix in (".json", ".mp4", ".wav"):  # the sidecar first: without it a video is not done
            (self.videos / f"{job_id}{suffix}").unlink(missing_ok=True)
        self.live_path(job_id).unlink(missing_ok=True)

    def sweep(self) -> list[str]:
        """Retention: delete finished jobs older than ``keep_days`` (and uploads no job uses, as old), then the
        oldest finished jobs while the folder holds more than ``max_disk_gb``. Returns the deleted job ids."""
        if not (self.keep_days or self.max_disk_gb):
            return []
        now, deleted = time.time(), []
        with self.lock:
            finished = sorted((r for r in self.jobs.values() if r["status"] not in PENDING),
                              key=lambda r: r.get("finished") or r["created"])
        if self.keep_days:
            cutoff = now - self.keep_days * 86400
            deleted += [r["id"] for r in finished if (r.get("finished") or r["created"]) < cutoff]
            self._forget(deleted)
            for face in self.photos.glob("*.face.png"):
                if face.stat().st_mtime < cutoff:
                    self.uploads.forget_photo(face.name.removesuffix(".face.png"))
            for recording in self.recordings.iterdir():
                if recording.stat().st_mtime < cutoff:
                    self.uploads.forget_recording(recording.name)
        if self.max_disk_gb:
            limit, left = self.max_disk_gb * 2**30, [r for r in finished if r["id"] not in deleted]
            while left and folder_bytes(self.folder) > limit:
                record = left.pop(0)
                self._forget([record["id"]])
                self.uploads.forget_photo(record["inputs"]["photo"])
                if record["inputs"].get("audio"):
                    self.uploads.forget_recording(record["inputs"]["audio"])
                deleted.append(record["id"])
        return deleted

    def _forget(self, job_ids: list[str]) -> None:
        if not job_ids:
            return
        with self.lock:
            for job_id in job_ids:
                if self.jobs.get(job_id, {}).get("status") not in PENDING:  # (resubmitted since: kept)
                    self.jobs.pop(job_id, None)
        for job_id in job_ids:
            if job_id not in self.jobs:
                self._remove_files(job_id)
        self._save()


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder``."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # removed meanwhile
                pass
    return total
