"""Face tracking and similarity alignment of a clip to the canonical template.

The face is detected once and then tracked: each frame's landmarks are predicted inside a box
derived from the previous frame's landmarks, and the detector runs again only when tracking
degrades (the fitted shape stops looking like a face, or it jumps). The per-frame-detection
approach it replaces (detect on every raw frame, then again on every aligned frame) is kept as
``baseline_landmarks`` for benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from synthtext.data import media
from synthtext.data.clipfile import SCHEMA_VERSION, AlignedClip, audio_length, write_clip
from synthtext.data.geometry import similarity, transform_points
from synthtext.data.landmarks import Box, LandmarkBackend
from synthtext.data.naming import ClipName
from synthtext.data.template import LEFT_EYE, RIGHT_EYE, RIGID_POINTS, TEMPLATE_IOD, template
from synthtext.ops.config import AlignParams
from synthtext.ops.errors import ClipRejected


@dataclass
class Track:
    """Landmarks of one clip in raw-frame pixels; NaN where no face was found."""

    landmarks: np.ndarray  # [T, 68, 2]
    detections: int = 0  # how many times the detector ran
    max_faces: int = 0  # most faces seen in one detection
    redetections: list[int] = field(default_factory=list)

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.landmarks[:, 0, 0])


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre of the rigid points and the inter-ocular distance: a frame that ignores the mouth."""
    between = points[RIGHT_EYE].mean(0) - points[LEFT_EYE].mean(0)  # eye_centres without the stacking
    return points[RIGID_POINTS].mean(0), float(np.sqrt(between @ between))


_RIGID = TEMPLATE_IOD[RIGID_POINTS] - TEMPLATE_IOD[RIGID_POINTS].mean(0)  # the template's rigid points, centred
_RIGID_SS = float((_RIGID * _RIGID).sum())
_DOT_CROSS = np.stack([_RIGID.ravel(), np.stack([-_RIGID[:, 1], _RIGID[:, 0]], 1).ravel()], 1)  # [2n, 2]


def shape_error(points: np.ndarray, iod: float | None = None) -> float:
    """RMS distance of the rigid points from the template after a similarity fit, in IOD units
    (``iod``: the points' inter-ocular distance, when already known).

    The fit's residual in closed form (the tracker asks this every frame): with the template centred,
    the best similarity leaves |b|^2 - (dot^2 + cross^2) / |a|^2 of the points' centred sum of squares,
    where dot and cross are the template's products with the points (which centring does not change).
    """
    rigid = points[RIGID_POINTS]
    flat = rigid.ravel()
    centre = rigid.mean(0)
    dot, cross = flat @ _DOT_CROSS
    residual = flat @ flat - len(rigid) * (centre @ centre) - (dot * dot + cross * cross) / _RIGID_SS
    if iod is None:
        _, iod = _face_frame(points)
    return float(np.sqrt(max(residual, 0.0) / len(rigid)) / max(iod, 1e-6))


class FaceTracker:
    """Detect once, then predict each frame's landmarks from the previous frame's face."""

    def __init__(self, backend: LandmarkBackend, params: AlignParams):
        self.backend = backend
        self.params = params
        self._box_in_face: np.ndarray | None = None  # detector box relative to the face frame
        self._previous: np.ndarray | None = None
        self._previous_frame: tuple[np.ndarray, float] = (np.zeros(2), 0.0)  # _face_frame(self._previous)
        self._start_box: Box | None = None

    def start_at(self, box: Box) -> FaceTracker:
        """Begin the track in a face box already known (the detector's box for this face, found on
        another image of it where the face sits at the same place, such as the aligned crop a video is
        generated from): the next frame that needs a detection takes the box instead of running the
        detector. Returns the tracker."""
        self._start_box, self._previous = box, None
        return self

    def _box_from_previous(self) -> Box:
        centre, iod = self._previous_frame
        left, top, right, bottom = self._box_in_face * iod + np.r_[centre, centre]
        return float(left), float(top), float(right), float(bottom)

    def _detect(self, frame: np.ndarray, track: Track) -> tuple[np.ndarray, tuple[np.ndarray, float]] | None:
        """The largest face's landmarks and face frame, or None."""
        if self._start_box is not None:
            boxes, self._start_box = [self._start_box], None
        else:
            track.detections += 1
            boxes = self.backend.detect(frame)
        track.max_faces = max(track.max_faces, len(boxes))
        if not boxes:
            return None
        box = boxes[0]  # largest face
        points = self.backend.landmarks(frame, box)
        centre, iod = face_frame = _face_frame(points)
        self._box_in_face = (np.asarray(box) - np.r_[centre, centre]) / max(iod, 1e-6)
        return points, face_frame

    def _degraded(self, points: np.ndarray, face_frame: tuple[np.ndarray, float],
                  frame_shape: tuple[int, ...]) -> bool:
        height, width = frame_shape[:2]
        if not (np.all(points >= -0.25 * width) and np.all(points[:, 0] <= 1.25 * width)
                and np.all(points[:, 1] <= 1.25 * height)):
            return True
        centre, iod = face_frame
        if shape_error(points, iod) > self.params.max_shape_error:
            return True
        old_centre, old_iod = self._previous_frame
        return (np.linalg.norm(centre - old_centre) / old_iod > self.params.max_jump
                or abs(iod / old_iod - 1) > self.params.max_jump)

    def track(self, frames: Iterable[np.ndarray],
              seen: Callable[[int, np.ndarray, np.ndarray | None], None] | None = None) -> Track:
        """Landmarks for every frame; frames without a face are NaN. ``seen(index, frame, points)``, if
        given, is called with each frame once its landmarks (None: no face) are known."""
        rows: list[np.ndarray] = []
        track = Track(landmarks=np.empty((0, 68, 2)))
        for index, frame in enumerate(frames):
            found = None
            if self._previous is not None:
                points = self.backend.landmarks(frame, self._box_from_previous())
                face_frame = _face_frame(points)
                if self._degraded(points, face_frame, frame.shape):
                    track.redetections.append(index)
                else:
                    found = points, face_frame
            if found is None:
                found = self._detect(frame, track)
            if found is None:
                self._previous = None
                rows.append(np.full((68, 2), np.nan))
            else:
                self._previous, self._previous_frame = found
                rows.append(self._previous)
            if seen is not None:
                seen(index, frame, self._previous)
        track.landmarks = np.stack(rows) if rows else np.empty((0, 68, 2))
        return track


def fill_gaps(landmarks: np.ndarray, params: AlignParams) -> np.ndarray:
    """Interpolate short runs of face-less frames; reject clips with too many or too long gaps."""
    found = ~np.isnan(landmarks[:, 0, 0])
    total = len(landmarks)
    if not found.any():
        raise ClipRejected("no_face", f"no face found in any of {total} frames")
    missing = total - int(found.sum())
    if missing / total > params.max_missing:
        raise ClipRejected("face_missing", f"no face in {missing} of {total} frames "
                           f"(more than align.max_missing={params.max_missing:.0%})")
    longest, run = 0, 0
    for ok in found:
        run = 0 if ok else run + 1
        longest = max(longest, run)
    if longest > params.max_gap:
        raise ClipRejected("face_missing", f"face lost for {longest} consecutive frames "
                           f"(more than align.max_gap={params.max_gap})")
    if missing == 0:
        return landmarks
    t = np.arange(total)
    flat = landmarks.reshape(total, -1).copy()
    for column in range(flat.shape[1]):
        flat[~found, column] = np.interp(t[~found], t[found], flat[found, column])
    return flat.reshape(landmarks.shape)


def alignment_transforms(landmarks: np.ndarray, params: AlignParams) -> np.ndarray:
    """Per-frame 2x3 transforms [T, 2, 3] from raw frames to the aligned crop."""
    if params.mode == 1:
        return np.repeat(first_frame_transform(landmarks[0], params)[None], len(landmarks), axis=0)
    target = template(params.size)[RIGID_POINTS]
    smooth = gaussian_filter1d(landmarks, params.smooth_sigma, axis=0, mode="nearest") \
        if params.smooth_sigma > 0 else landmarks
    return np.stack([similarity(points[RIGID_POINTS], target) for points in smooth])


def warp_frame(frame: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The aligned ``size`` x ``size`` crop of one frame."""
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class AlignedFrames:
    video: np.ndarray  # uint8 [T, S, S, 3]
    landmarks: np.ndarray  # float32 [T, 68, 2] in crop pixels
    track: Track


BUFFER_BYTES = 256 * 2**20
"""Where warping needs a second pass (``align.mode: 0``, or no face on the first frame), frames of a
clip up to this size are kept from the tracking pass for it (one decode; a CREMA-D clip is 30-65 MB);
a longer clip is decoded again instead, so memory stays bounded."""


class _Buffered:
    """Pass frames through while keeping them, until they add up to more than ``limit`` bytes."""

    def __init__(self, frames: Iterable[np.ndarray], limit: int):
        self.frames, self.limit, self.kept, self.size = frames, limit, [], 0

    def __iter__(self):
        for frame in self.frames:
            if self.kept is not None:
                self.size += frame.nbytes
                if self.size > self.limit:
                    self.kept = None
                else:
                    self.kept.append(frame)
            yield frame

    def stop_keeping(self) -> None:
        """Drop the frames kept so far and keep no more (nothing will need a second pass)."""
        self.kept = None


def first_frame_transform(points: np.ndarray, params: AlignParams) -> np.ndarray:
    """The 2x3 transform of ``align.mode: 1`` (every frame's): the first frame's landmarks to the template."""
    return similarity(points[RIGID_POINTS], template(params.size)[RIGID_POINTS])


class _WarpWhileTracking:
    """``align.mode: 1`` where the first frame has a face: its transform is known as soon as that frame
    is tracked, so each frame is warped as it passes (a 128 px crop kept, not a full frame)."""

    def __init__(self, params: AlignParams, buffered: _Buffered):
        self.params, self.buffered = params, buffered
        self.matrix: np.ndarray | None = None
        self.crops: list[np.ndarray] = []

    def __call__(self, index: int, frame: np.ndarray, points: np.ndarray | None) -> None:
        if index == 0:
            if self.params.mode != 1 or points is None:
                return
            self.matrix = first_frame_transform(points, self.params)
            self.buffered.stop_keeping()
        if self.matrix is not None:
            self.crops.append(warp_frame(frame, self.matrix, self.params.size))


def align_frames(frames_twice, backend: LandmarkBackend, params: AlignParams,
                 buffer_bytes: int = BUFFER_BYTES) -> AlignedFrames:
    """Track, fill gaps and warp. ``frames_twice()`` returns a fresh frame iterator on each call.

    With ``align.mode: 1`` and a face on the first frame (the usual case) frames are warped while
    they are tracked, one decode. Otherwise the tracking pass keeps the frames for warping while they
    fit in ``buffer_bytes``; a longer clip streams twice (landmarks, then warping), which keeps memory
    flat in the clip's length.
    """
    buffered = _Buffered(frames_twice(), buffer_bytes)
    early = _WarpWhileTracking(params, buffered)
    track = FaceTracker(backend, params).track(buffered, early)
    total = len(track.landmarks)
    if total < params.min_frames:
        raise ClipRejected("too_short", f"{total} frames, fewer than one training window "
                           f"(align.min_frames={params.min_frames})")
    landmarks = fill_gaps(track.landmarks, params)
    matrices = alignment_transforms(landmarks, params)
    if early.matrix is not None:
        video = np.stack(early.crops)
    else:
        video = np.empty((total, params.size, params.size, 3), dtype=np.uint8)
        count = 0
        for index, frame in enumerate(buffered.kept if buffered.kept is not None else frames_twice()):
            if index == total:
                break
            video[index] = warp_frame(frame, matrices[index], params.size)
            count += 1
        if count != total:
            raise ClipRejected("corrupt", f"video decoded to {total} frames, then to {count}")
    aligned = np.stack([transform_points(m, p) for m, p in zip(matrices, landmarks, strict=True)])
    return AlignedFrames(video=video, landmarks=aligned.astype(np.float32), track=track)


def baseline_landmarks(frames: Iterable[np.ndarray], backend: LandmarkBackend,
                       params: AlignParams) -> np.ndarray:
    """The per-frame-detection approach this module replaces, for benchmarks.

    Detect and fit on every raw frame, align with the same ``params.mode``, then detect and fit
    again on every aligned crop. Returns crop landmarks [T, 68, 2] (NaN where a detection failed).
    """
    frames = list(frames)
    raw = []
    for frame in frames:
        boxes = backend.detect(frame)
        raw.append(backend.landmarks(frame, boxes[0]) if boxes else np.full((68, 2), np.nan))
    matrices = alignment_transforms(fill_gaps(np.stack(raw), params), params)
    out = []
    for frame, matrix in zip(frames, matrices, strict=True):
        crop = warp_frame(frame, matrix, params.size)
        boxes = backend.detect(crop)
        out.append(backend.landmarks(crop, boxes[0]) if boxes else np.full((68, 2), np.nan))
    return np.stack(out)

def align_clip(name: ClipName, video: Path, wav: Path, dst: Path, backend: LandmarkBackend,
               params: AlignParams, fps: float, source_md5: str, key: str, start: float | None = None) -> dict:
    """Align one converted clip and write its HDF5 file (schema v1) atomically. ``start``: for a video
    at its source's rate (``convert_fps.video: copy``), its first timestamp in seconds, and the frames
    are resampled to ``fps`` as they are decoded; None for a video already at ``fps``.

    Returns what was measured; raises ClipRejected when the clip can't be used.
    """
    resample_to = fps if start is not None else None
    aligned = align_frames(lambda: media.iter_frames(video, resample_to, start or 0.0), backend, params)
    audio, sample_rate = media.read_audio(wav)
    samples = audio_length(len(aligned.video), sample_rate, fps)
    audio = np.pad(audio[:samples], (0, max(0, samples - audio.size)))
    attrs = {"schema_version": SCHEMA_VERSION, "clip_id": name.clip_id, "actor": name.actor,
             "sentence": name.sentence, "emotion": name.emotion, "intensity": name.intensity,
             "fps": fps, "sample_rate": sample_rate, "source_md5": source_md5,
             "landmark_backend": backend.name, "align_mode": params.mode, "size": params.size,
             "cache_key": key}
    write_clip(dst, AlignedClip(video=aligned.video, landmarks=aligned.landmarks, audio=audio, attrs=attrs),
               params.compression)
    track = aligned.track
    return {"frames": len(aligned.video), "frames_with_face": int(track.found.sum()),
            "detections": track.detections, "faces_in_frame": track.max_faces,
            "redetections": len(track.redetections)}

