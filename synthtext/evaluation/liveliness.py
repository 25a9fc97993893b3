"""How alive a talking-face video looks, from dlib's 68 landmarks on every frame.

- blinks: the eye aspect ratio (EAR, both eyes averaged) dipping well below its running median;
  the rate per minute and each blink's duration;
- head motion: roll from the eye line, yaw and pitch from ``cv2.solvePnP`` on a generic 3D face;
  their standard deviations over the video, and the jitter of the eye-centre track;
- the open mouth: on frames where the inner lips are apart, how sharp the mouth interior is next
  to the rest of the face, how much of it is brighter than the skin (teeth), and its colour.

Real talking faces blink every few seconds, move their head by a few degrees, and show a dark red
mouth interior, as sharp as the face, with teeth in it; a generated video can be compared with the
real clips of ``../shared/realdata`` (``measure_reference``) on each of these figures.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from synthtext.data.align import shape_error
from synthtext.data.geometry import inner_lip_distance
from synthtext.data.landmarks import Box, DlibBackend, LandmarkBackend
from synthtext.data.media import iter_frames, probe
from synthtext.data.template import LEFT_EYE, RIGHT_EYE, eye_centres
from synthtext.ops.errors import SynthTextError
from synthtext.ops.hashing import file_md5

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
REFERENCE_GLOBS = ("crema-d/*.flv", "grid/*.mpg", "expressions/*.flv")

BLINK_DROP = 0.30  # a blink: EAR at least this far below its running median ...
BLINK_MIN_FRAMES = 2  # ... for at least this many consecutive frames
BLINK_EXTENT_DROP = 0.15  # the blink lasts while EAR stays this far below the median
BLINK_WINDOW_S = 2.0  # the running median's window
OPEN_MOUTH_GAP = 0.3  # inner-lip gap (IOD units) from which a frame counts as an open mouth
MOUTH_IOD_PX = 64  # open-mouth frames are measured at this inter-ocular distance

# A generic head in millimetres, nose tip at the origin, axes as the camera's (x right, y down, z away
# from the viewer), so that a frontal face has no rotation. x and y: the project's landmark template
# (synthtext.data.template) scaled to a 63 mm inter-ocular distance; z: typical depths behind the nose tip.
# Only points that speech does not move: with the chin (8) and the mouth corners (48, 54) in the
# model, solvePnP reads the jaw opening as the head nodding (on the GRID clips the pitch then follows
# the lip gap, correlation -0.7 to -0.8, and its spread is 1.5-2x that of the rigid points alone).
POSE_POINTS = np.array([27, 30, 31, 33, 35, 36, 39, 42, 45])
POSE_MODEL = np.array([
    (0.0, -35.7, 25.0),  # 27 nose bridge between the eyes
    (0.0, 0.0, 0.0),  # 30 nose tip
    (-13.7, 10.9, 22.0),  # 31 nose base, image left
    (0.0, 14.6, 17.0),  # 33 below the nose tip
    (13.7, 10.9, 22.0),  # 35 nose base, image right
    (-43.8, -31.8, 45.0),  # 36 outer eye corner, image left
    (-18.5, -30.6, 30.0),  # 39 inner eye corner, image left
    (18.5, -30.6, 30.0),  # 42 inner eye corner, image right
    (43.8, -31.8, 45.0),  # 45 outer eye corner, image right
])
_OUTER_CORNERS = (5, 8)  # rows of 36 and 45 in POSE_POINTS: the span that sets the starting distance
_NOSE_TIP = 1


@functools.cache
def default_backend() -> LandmarkBackend:
    """dlib's detector (faces of 80 px and up, smaller ones upsampled) and 68-point model, loaded once."""
    return DlibBackend(upsample=0)


def _overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return width * height / (area - width * height)


def _start_box(frames: Sequence[np.ndarray], detections: list[list[Box]], backend: LandmarkBackend) -> Box:
    """The speaker's box to start following: boxes overlapping by half are one object; of the objects
    found on at least half as many frames as the most found, the one whose landmarks look most like
    a face (``align.shape_error``). The detector also fires on face-like patches (a badge on a suit),
    on some frames or all, and they may be larger than the face."""
    objects: list[tuple[Box, int, set[int]]] = []  # (first box, its frame, frames where it is found)
    for t, boxes in enumerate(detections):
        for box in boxes:
            match = next((seen for first, _, seen in objects if _overlap(first, box) >= 0.5), None)
            if match is None:
                objects.append((box, t, {t}))
            else:
                match.add(t)
    most = max(len(seen) for _, _, seen in objects)
    frequent = [(box, t) for box, t, seen in objects if 2 * len(seen) >= most]
    return min(frequent, key=lambda item: shape_error(backend.landmarks(frames[item[1]], item[0])))[0]


def _follow_face(frames: Sequence[np.ndarray], detections: list[list[Box]],
                 backend: LandmarkBackend) -> list[Box | None]:
    """The speaker's box on each frame (None where it is not found): from ``_start_box``, on each frame
    the detected box that overlaps the last one taken most."""
    if not any(detections):
        return [None] * len(detections)
    previous = _start_box(frames, detections, backend)
    chosen: list[Box | None] = []
    for boxes in detections:
        best = max(boxes, key=lambda box: _overlap(box, previous), default=None)
        if best is not None and _overlap(best, previous) > 0:
            previous = best
            chosen.append(best)
        else:
            chosen.append(None)
    return chosen


def frame_landmarks(frames: Sequence[np.ndarray], backend: LandmarkBackend) -> np.ndarray:
    """The speaker's 68 points on each frame, [T, 68, 2], NaN where the face is not found. The face is
    detected afresh on every frame, so that no tracking smooths the motion being measured, and
    followed from frame to frame by its box (``_follow_face``)."""
    boxes = _follow_face(frames, [backend.detect(frame) for frame in frames], backend)
    rows = [backend.landmarks(frame, box) if box is not None else np.full((68, 2), np.nan)
            for frame, box in zip(frames, boxes, strict=True)]
    return np.stack(rows) if rows else np.empty((0, 68, 2))


def interocular(points: np.ndarray) -> np.ndarray:
    """Distance between the eye centres [...] of landmarks [..., 68, 2]."""
    left, right = np.moveaxis(eye_centres(points), -2, 0)
    return np.linalg.norm(right - left, axis=-1)


def eye_aspect_ratio(points: np.ndarray) -> np.ndarray:
    """EAR (|p2-p6| + |p3-p5|) / (2 |p1-p4|) per frame [T], averaged over both eyes."""
    ratios = []
    for eye in (LEFT_EYE, RIGHT_EYE):
        p = points[:, eye]
        height = np.linalg.norm(p[:, 1] - p[:, 5], axis=-1) + np.linalg.norm(p[:, 2] - p[:, 4], axis=-1)
        ratios.append(height / (2 * np.linalg.norm(p[:, 0] - p[:, 3], axis=-1)))
    return np.mean(ratios, axis=0)


def running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of the ``window`` values centred on each one (fewer at the ends), NaN ignored."""
    half = max(window // 2, 1)
    out = np.full(len(values), np.nan)
    for t in range(len(values)):
        part = values[max(t - half, 0):t + half + 1]
        part = part[~np.isnan(part)]
        if part.size:
            out[t] = np.median(part)
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True (end exclusive)."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def find_blinks(ear: np.ndarray, fps: float, drop: float = BLINK_DROP, min_frames: int = BLINK_MIN_FRAMES,
                extent_drop: float = BLINK_EXTENT_DROP, window_s: float = BLINK_WINDOW_S) -> list[tuple[int, int]]:
    """Blinks as (first, end) frames (end exclusive). A blink is a run of at least ``min_frames`` frames
    whose EAR is ``drop`` below its running median; it lasts over the neighbouring frames at least
    ``extent_drop`` below the median (the lids closing and opening). Two such runs within one stretch
    of lowered frames are two blinks (a double blink, the lids half open between), split at the
    highest EAR between them. Frames without a face end a blink."""
    baseline = running_median(ear, max(int(round(window_s * fps)), 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.nan_to_num(ear / baseline, nan=np.inf)  # no face: never lowered
    deep = relative <= 1 - drop
    blinks: list[tuple[int, int]] = []
    for start, end in _runs(relative <= 1 - extent_drop):
        cores = [(start + s, start + e) for s, e in _runs(deep[start:end]) if e - s >= min_frames]
        bounds = [start]
        for (_, previous_end), (next_start, _) in zip(cores, cores[1:], strict=False):
            bounds.append(previous_end + int(np.argmax(relative[previous_end:next_start])))
        bounds.append(end)
        blinks += list(zip(bounds[:-1], bounds[1:], strict=True)) if cores else []
    return blinks


def blink_durations_ms(blinks: list[tuple[int, int]], frames: int, fps: float) -> list[float]:
    """Each blink's length in ms, leaving out those cut by the video's start or end (their length is unknown)."""
    return [round((end - start) / fps * 1000, 1) for start, end in blinks if start > 0 and end < frames]


def head_pose(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Roll, yaw and pitch in degrees per frame [T, 3] (NaN without a face). Roll is the eye line's
    angle (positive: clockwise in the image); yaw and pitch come from ``cv2.solvePnP`` of
    ``POSE_MODEL`` with a focal length of the image width and the principal point at its centre."""
    focal = float(width)
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)
    model_span = POSE_MODEL[_OUTER_CORNERS[1], 0] - POSE_MODEL[_OUTER_CORNERS[0], 0]
    angles = np.full((len(points), 3), np.nan)
    for t, frame_points in enumerate(points):
        if np.isnan(frame_points).any():
            continue
        left, right = eye_centres(frame_points)
        roll = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
        image = frame_points[POSE_POINTS]
        # Start every frame from a frontal head at the distance its eye-corner span implies: a few points
        # on a shallow face leave solvePnP two minima (head tilted up or down by ~12 degrees), and from
        # scratch it jumps between them from frame to frame (pitch std 5.4 instead of 1.1 degrees on
        # GRID lrwp9a); from the front it settles in the nearest one.
        left_corner, right_corner = image[list(_OUTER_CORNERS)]
        depth = focal * model_span / max(float(np.linalg.norm(right_corner - left_corner)), 1e-6)
        tip = image[_NOSE_TIP]
        start = np.array([(tip[0] - width / 2) * depth / focal, (tip[1] - height / 2) * depth / focal, depth])
        ok, rvec, _ = cv2.solvePnP(POSE_MODEL, image, camera, None, rvec=np.zeros(3), tvec=start,
                                   useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok:
            continue
        rotation, _ = cv2.Rodrigues(rvec)
        # rotation = Rz(roll) Ry(yaw) Rx(pitch): yaw turns the head about the vertical axis, pitch nods it
        yaw = np.degrees(np.arcsin(np.clip(-rotation[2, 0], -1, 1)))
        pitch = np.degrees(np.arctan2(rotation[2, 1], rotation[2, 2]))
        angles[t] = roll, yaw, pitch
    return angles


def eye_jitter(points: np.ndarray) -> float:
    """Median length of the second difference of the point midway between the eyes, in inter-ocular
    distances per frame^2 (frame-to-frame shake; smooth head motion scores near 0). NaN under 3 frames."""
    centre = eye_centres(points).mean(-2)
    accel = np.linalg.norm(centre[2:] - 2 * centre[1:-1] + centre[:-2], axis=-1) / interocular(points[1:-1])
    accel = accel[~np.isnan(accel)]
    return float(np.median(accel)) if accel.size else float("nan")


def _resampled_face(frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face's surroundings scaled so that the inter-ocular distance is ``MOUTH_IOD_PX``, and the points
    in that image."""
    scale = MOUTH_IOD_PX / float(interocular(points))
    margin = 0.25 * np.ptp(points, axis=0)
    height, width = frame.shape[:2]
    x0, y0 = np.maximum(np.floor(points.min(0) - margin), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(points.max(0) + margin), [width, height]).astype(int)
    size = (max(int(round((x1 - x0) * scale)), 1), max(int(round((y1 - y0) * scale)), 1))
    crop = cv2.resize(frame[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    factor = np.array(size) / np.array([x1 - x0, y1 - y0])
    return crop, (points - [x0, y0] + 0.5) * factor - 0.5  # pixel centres, as cv2.resize maps them


def _polygon_mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask.astype(bool)


def mouth_measures(frame: np.ndarray, points: np.ndarray) -> dict[str, float]:
    """One frame's mouth interior (the inner-lip polygon, points 60-67) at ``MOUTH_IOD_PX``: sharpness
    (its Laplacian variance over the face's), teeth share (pixels brighter in Lab L than the face's
    median), and median Lab L (0-100) and a (-128..127). The face is the landmarks' convex hull without
    the lips (48-59), kept 3 px inside its outline so the background's edge does not count as detail."""
    image, pts = _resampled_face(frame, points)
    shape = image.shape[:2]
    inner = _polygon_mask(shape, pts[60:68])
    hull = cv2.erode(_polygon_mask(shape, cv2.convexHull(pts.astype(np.float32))[:, 0]).astype(np.uint8),
                     np.ones((7, 7), np.uint8)).astype(bool)
    face = hull & ~_polygon_mask(shape, pts[48:60])
    if not inner.any() or not face.any():
        return {"sharpness": float("nan"), "teeth": float("nan"), "L": float("nan"), "a": float("nan")}
    laplacian = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float64)
    face_var = laplacian[face].var()
    return {
        "sharpness": float(laplacian[inner].var() / face_var) if face_var > 0 else float("nan"),
        "teeth": float(np.mean(lab[..., 0][inner] > np.median(lab[..., 0][face]))),
        "L": float(np.median(lab[..., 0][inner]) * 100 / 255),
        "a": float(np.median(lab[..., 1][inner]) - 128),
    }


def _median_or_none(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.median(values)) if values else None


def _std_or_none(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.std(values)) if values.size else None


def measure_landmarks(frames: np.ndarray, points: np.ndarray, fps: float) -> dict:
    """``measure_video`` on landmarks already found: ``points`` [T, 68, 2] of ``frames`` [T, H, W, 3]."""
    seconds = len(frames) / fps
    found = ~np.isnan(points[:, 0, 0])
    blinks = find_blinks(eye_aspect_ratio(points), fps)
    blink_ms = blink_durations_ms(blinks, len(frames), fps)
    pose = head_pose(points, frames.shape[2], frames.shape[1])
    with np.errstate(invalid="ignore"):
        open_mouth = np.flatnonzero(found & (inner_lip_distance(points) / interocular(points) >= OPEN_MOUTH_GAP))
    mouths = [mouth_measures(frames[t], points[t]) for t in open_mouth]
    jitter = eye_jitter(points)
    return {
        "frames": len(frames),
        "seconds": round(seconds, 3),
        "face_frames": int(found.sum()),
        "blinks": len(blinks),
        "blinks_per_min": len(blinks) / seconds * 60 if seconds > 0 else None,
        "blink_ms": blink_ms,
        "blink_ms_median": _median_or_none(blink_ms),
        "roll_std_deg": _std_or_none(pose[:, 0]),
        "yaw_std_deg": _std_or_none(pose[:, 1]),
        "pitch_std_deg": _std_or_none(pose[:, 2]),
        "jitter": None if np.isnan(jitter) else jitter,
        "open_mouth_frames": len(open_mouth),
        "mouth_sharpness": _median_or_none([m["sharpness"] for m in mouths]),
        "teeth_share": _median_or_none([m["teeth"] for m in mouths]),
        "mouth_L": _median_or_none([m["L"] for m in mouths]),
        "mouth_a": _median_or_none([m["a"] for m in mouths]),
    }


def measure_video(frames: np.ndarray, fps: float, backend: LandmarkBackend | None = None) -> dict:
    """The liveliness measures of RGB uint8 frames [T, H, W, 3] at ``fps``: ``frames``, ``seconds``,
    ``face_frames``; ``blinks``, ``blinks_per_min``, ``blink_ms`` (each blink) and ``blink_ms_median``;
    ``roll_std_deg``, ``yaw_std_deg``, ``pitch_std_deg`` and ``jitter`` (IOD / frame^2); and on the
    ``open_mouth_frames`` (inner-lip gap >= 0.3 IOD) the medians ``mouth_sharpness``, ``teeth_share``,
    ``mouth_L`` and ``mouth_a``. A measure with nothing to measure (no face, no open mouth) is None."""
    if fps <= 0:
        raise SynthTextError(f"cannot measure a video at {fps} fps: give its frame rate")
    if frames.ndim != 4 or not len(frames):
        raise SynthTextError(f"expected RGB frames [T, H, W, 3] with T > 0, got an array of shape {frames.shape}")
    points = frame_landmarks(frames, backend or default_backend())
    return measure_landmarks(frames, points, fps)


def measure_file(path: str | Path, backend: LandmarkBackend | None = None) -> dict:
    """``measure_video`` of a video file at its own frame rate."""
    info = probe(path)
    frames = list(iter_frames(path))
    if not frames:
        raise SynthTextError(f"{path}: no frames could be decoded")
    if info.fps <= 0:
        raise SynthTextError(f"{path}: ffmpeg reports no frame rate; read the frames and call measure_video")
    return measure_video(np.stack(frames), info.fps, backend)


def reference_clips(root: str | Path = REALDATA) -> list[Path]:
    """The real talking clips under ``root`` (``../shared/realdata``): CREMA-D, GRID and the expression
    set, each recording once (the expression set repeats three CREMA-D files byte for byte)."""
    seen: set[str] = set()
    clips = []
    for pattern in REFERENCE_GLOBS:
        for path in sorted(Path(root).glob(pattern)):
            digest = file_md5(path)
            if digest not in seen:
                seen.add(digest)
                clips.append(path)
    return clips


SCALAR_MEASURES = ("blinks_per_min", "blink_ms_median", "roll_std_deg", "yaw_std_deg", "pitch_std_deg", "jitter",
                   "open_mouth_frames", "mouth_sharpness", "teeth_share", "mouth_L", "mouth_a")


def summarize(results: list[dict]) -> dict[str, dict[str, float | int | None]]:
    """Median, min and max of each scalar measure over several videos' results (those where it is not None)."""
    summary = {}
    for key in SCALAR_MEASURES:
        values = [r[key] for r in results if r.get(key) is not None]
        summary[key] = {"median": float(np.median(values)) if values else None,
                        "min": float(min(values)) if values else None,
                        "max": float(max(values)) if values else None, "n": len(values)}
    return summary


def measure_reference(root: str | Path = REALDATA, backend: LandmarkBackend | None = None) -> dict:
    """The real clips' measures: ``clips`` (name -> ``measure_file``) and ``summary`` (``summarize``)."""
    clips = reference_clips(root)
    if not clips:
        raise SynthTextError(f"no real clips under {root}: expected crema-d/*.flv, grid/*.mpg or expressions/*.flv")
    results = {path.name: measure_file(path, backend) for path in clips}
    return {"clips": results, "summary": summarize(list(results.values()))}
