"""Evaluation of a generator on people it never trained on: the validation speakers (against a static
and a real baseline) and held-out photos of people in neither split.

Validation clips: every video (generated under each of the six emotions, the static reference frame
repeated, the real clip) is measured the same way at the aligned crop size, the clips' own
resolution (a motion decoder moves the reference's own pixels at that size; a pixel decoder's
frames are scaled up to it): landmarks by the pipeline's own backend (detected once, then tracked,
as in the align stage).

Held-out photos: each photo speaks the speech of a few validation clips in all six emotions, as the
aligned face at ``size`` px (``infer.face_frames``) and pasted back into the photo at its own
resolution (``infer.paste_back``); landmarks of pasted-back frames are tracked in the photo's
face region, at the photo's resolution.

``METRICS`` is the one table of metrics: the summaries, the promotion gate (``synthtext.evaluation.promote``)
and the report (``synthtext.evaluation.report``) all read it, so a new metric is one entry there.

- image: PSNR and SSIM against the real frames, whole frame and mouth region;
- motion: M-LMD / F-LMD, mean landmark distance to the real clip's (mouth points / all 68),
  divided by the real face's inter-ocular distance;
- sync: Pearson r between mouth opening and the speech RMS envelope at the best offset within
  +-5 frames, and that offset (positive: the mouth moves after the sound);
- emotion: an independent evaluator (logistic regression on landmark geometry relative to the face
  the video starts from, trained here on real training clips only, each relative to its actor's
  neutral frame) classifies every video; generated videos are made under each of the six emotion
  conditions and scored against the condition;
- face (``synthtext.evaluation.face_metrics``): identity distance to the reference (median frame, and the share
  of frames within 0.45), sharpness over the reference's, and the share of frames in which dlib
  finds the face again; identity and re-detection on ``face_frames`` frames spread over each video.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np
from skimage.metrics import structural_similarity

from synthtext import EMOTIONS
from synthtext.data.clipfile import audio_length, read_attrs, read_clip
from synthtext.data.frames import frames_at_height
from synthtext.data.geometry import INNER_LIP_PAIRS
from synthtext.data.template import LEFT_EYE, RIGHT_EYE
from synthtext.evaluation.evaluator import EmotionEvaluator, Measurer, measured_features
from synthtext.evaluation.face_metrics import IDENTITY_KEPT, FaceJudge, Reference
from synthtext.evaluation.liveliness import measure_video as liveliness
from synthtext.evaluation.sync_metrics import frechet_distance, inception_features, load_inception, lse
from synthtext.inference.infer import animate, face_frames, generate_frames, paste_back, prepare_face
from synthtext.inference.life import Life
from synthtext.ops.config import EVALUATE_REFERENCES
from synthtext.ops.errors import SynthTextError

MOUTH = slice(48, 68)
MAX_OFFSET = 5
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# ---------------------------------------------------------------- the metric table


@dataclass(frozen=True)
class Metric:
    """One metric: how videos are summarised into it, which way is better, and its targets."""

    name: str
    label: str
    better: str  # higher | lower | near0
    aggregate: str  # own | mean | median | share | accuracy | separate (see ``summarise``)
    groups: tuple[str, ...] = ("validation",)  # validation people and/or heldout photos
    key: str = ""  # the per-video or per-frame value summarised (default: the name)
    at_most: float | None = None  # share: of frames whose value is at most this (default: truthy frames)
    target: float | str | None = None  # validation people: a value, or "static" (beat the static baseline)
    heldout_target: float | None = None  # held-out photos, at both sizes

    @property
    def source(self) -> str:
        return self.key or self.name


BOTH = ("validation", "heldout")
METRICS: tuple[Metric, ...] = (
    Metric("emotion_accuracy", "evaluator emotion accuracy (6 conditions)", "higher", "accuracy", BOTH,
           target=0.85, heldout_target=0.75),  # issue 26: validation 0.85, held-out 0.75
    Metric("sync_r", "mouth-speech correlation at best offset", "higher", "mean", BOTH, target=0.6, heldout_target=0.5),
    Metric("sync_offset", "best offset, frames", "near0", "mean", BOTH),
    Metric("identity_median", "identity distance to the reference, median frame (< 0.6: same person)", "lower",
           "median", BOTH, key="identity"),
    Metric("identity_kept", f"frames within {IDENTITY_KEPT} identity distance of the reference", "higher", "share",
           BOTH, key="identity", at_most=IDENTITY_KEPT, heldout_target=0.95),
    Metric("sharpness", "sharpness: face Laplacian variance over the reference's", "higher", "mean", BOTH,
           heldout_target=0.8),
    Metric("redetected", "frames in which dlib finds the face again", "higher", "share", BOTH, key="found",
           heldout_target=0.99),
    Metric("face_found", "frames with landmarks tracked", "higher", "mean", BOTH),
    Metric("gt_opening_r", "mouth opening vs ground truth (sample corpus)", "higher", "mean"),
    Metric("psnr", "PSNR, dB", "higher", "own", target="static"),
    Metric("ssim", "SSIM", "higher", "own", target="static"),
    Metric("psnr_mouth", "PSNR mouth, dB", "higher", "own"),
    Metric("ssim_mouth", "SSIM mouth", "higher", "own"),
    Metric("m_lmd", "M-LMD (IOD units)", "lower", "own", target="static"),
    Metric("f_lmd", "F-LMD (IOD units)", "lower", "own"),
    Metric("lse_d", "LSE-D (SyncNet distance)", "lower", "mean"),
    Metric("lse_c", "LSE-C (SyncNet confidence)", "higher", "mean"),
    Metric("lse_offset", "LSE offset, frames", "near0", "mean"),
    Metric("fid", "FID (Inception)", "lower", "separate"),
)
HELDOUT_COLUMNS = {"heldout_face": "held-out, aligned face", "heldout_photo": "held-out, pasted back"}


def metric(name: str) -> Metric:
    """The table's entry for ``name``."""
    for entry in METRICS:
        if entry.name == name:
            return entry
    raise SynthTextError(f"unknown metric {name!r}: use one of {', '.join(m.name for m in METRICS)}")


def better(name: str, a: float, b: float, margin: float = 0.0) -> bool:
    """``a`` at least as good as ``b`` improved by ``margin``, in the metric's direction."""
    way = metric(name).better
    if way == "higher":
        return a >= b + margin
    if way == "lower":
        return a <= b - margin
    return abs(a) <= abs(b) - margin


@dataclass
class Video:
    """One video's measures: per-video values, per-frame values, and the evaluator's answer."""

    values: dict[str, float]
    per_frame: dict[str, np.ndarray]
    predicted: str
    hit: float  # share of the video's emotion conditions that the evaluator's answer matches
    condition: str | None = None  # the emotion it was generated under (None: a baseline video)
    own: bool = True  # the clip's own emotion, or a baseline (image and motion metrics compare only these)


def _nanmean(values: list[float]) -> float:
    values = np.asarray(values, float)
    return float(np.mean(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")


def _aggregate(entry: Metric, videos: list[Video]) -> float | None:
    key = entry.source
    if entry.aggregate == "accuracy":
        return float(np.mean([v.hit for v in videos])) if videos else None
    if entry.aggregate in ("own", "mean"):
        values = [v.values[key] for v in videos if key in v.values and (v.own or entry.aggregate == "mean")]
        return _nanmean(values) if values else None
    if entry.aggregate in ("median", "share"):
        frames = [np.asarray(v.per_frame[key], float) for v in videos if key in v.per_frame]
        if not frames or not sum(map(len, frames)):
            return None
        pooled = np.concatenate(frames)
        if entry.aggregate == "median":
            return float(np.median(pooled[np.isfinite(pooled)])) if np.isfinite(pooled).any() else float("nan")
        kept = pooled <= entry.at_most if entry.at_most is not None else pooled > 0  # NaN (no face) counts as not
        return float(np.mean(kept))
    return None  # separate: computed over all the frames at once (FID, ``add_fid``)


def summarise(videos: list[Video], group: str = "validation") -> dict[str, float]:
    """One column of the table: every metric of ``group`` measured on these videos.

    own: mean over the clips' own emotion and the baselines (image and motion metrics need the real
    clip); mean: over every video; median / share: over the sampled frames of every video pooled;
    accuracy: the evaluator's answers against the conditions.
    """
    out = {}
    for entry in METRICS:
        if group in entry.groups:
            value = _aggregate(entry, videos)
            if value is not None:
                out[entry.name] = value
    return out


def check_targets(table: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """Pass or fail against the targets (information for people; the gate is ``promote.decide``):
    column -> metric -> {target, value, pass}. ``static`` targets must beat the static column."""
    out: dict[str, dict[str, dict]] = {}
    for entry in METRICS:
        checks = []
        if entry.target is not None and "generated" in table:
            checks.append(("generated", table.get("static", {}).get(entry.name) if entry.target == "static"
                           else entry.target, entry.target == "static"))
        if entry.heldout_target is not None:
            checks += [(column, entry.heldout_target, False) for column in HELDOUT_COLUMNS if column in table]
        for column, target, strict in checks:
            value = table[column].get(entry.name)
            if value is None or target is None:
                continue
            ok = bool(np.isfinite(value) and better(entry.name, value, target) and not (strict and value == target))
            out.setdefault(column, {})[entry.name] = {"target": float(target), "value": float(value), "pass": ok}
    return out


def json_ready(data):
    """Nested tables with NaN (not measured) as null, so that JSON readers other than Python's accept them."""
    if isinstance(data, dict):
        return {k: json_ready(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_ready(v) for v in data]
    if isinstance(data, np.generic):
        data = data.item()
    if isinstance(data, float) and not np.isfinite(data):
        return None
    return data


def figure_text(value) -> str:
    """A figure as the report and the README's table write it: 3 decimals, "–" for none."""
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def target_text(entry: Metric) -> str:
    """The targets of a metric as a person reads them, e.g. ``>= 0.75 (held-out >= 0.65)``."""
    sign = {"higher": ">=", "lower": "<=", "near0": "|x| <="}[entry.better]
    parts = []
    if entry.target == "static":
        parts.append(f"{'>' if entry.better == 'higher' else '<'} static")
    elif entry.target is not None:
        parts.append(f"{sign} {entry.target:g}")
    if entry.heldout_target is not None:
        parts.append(f"held-out {sign} {entry.heldout_target:g}")
    return "; ".join(parts)


# ---------------------------------------------------------------- metrics on arrays


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of uint8-range arrays (100 for identical arrays)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else float(10 * np.log10(peak ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004; 7x7 windows) of two frames [H, W, 3] in 0..255."""
    side = min(a.shape[0], a.shape[1])
    window = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, data_range=255, channel_axis=-1, win_size=window))


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres per frame [T]."""
    return np.linalg.norm(landmarks[:, LEFT_EYE].mean(1) - landmarks[:, RIGHT_EYE].mean(1), axis=-1)


def landmark_distance(pred: np.ndarray, real: np.ndarray, points: slice | np.ndarray = slice(None)) -> float:
    """Mean point distance over frames where both have landmarks, in units of the real IOD."""
    dist = np.linalg.norm(pred[:, points] - real[:, points], axis=-1).mean(1) / interocular(real)
    return float(np.nanmean(dist)) if np.isfinite(dist).any() else float("nan")


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap per frame in IOD units [T] (NaN where no face)."""
    gap = np.mean([np.linalg.norm(landmarks[:, a] - landmarks[:, b], axis=-1) for a, b in INNER_LIP_PAIRS], axis=0)
    return gap / interocular(landmarks)


def speech_envelope(audio: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """RMS of the audio under each video frame [frames]."""
    hop = sample_rate / fps
    out = np.zeros(frames)
    for t in range(frames):
        chunk = audio[int(round(t * hop)):int(round((t + 1) * hop))]
        out[t] = np.sqrt(np.mean(np.square(chunk, dtype=np.float64))) if chunk.size else 0.0
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return 0.0
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def best_offset_correlation(motion: np.ndarray, envelope: np.ndarray,
                            max_offset: int = MAX_OFFSET) -> tuple[float, int]:
    """(r, offset) maximising corr(motion[t], envelope[t - offset]) for |offset| <= max_offset."""
    best = (-2.0, 0)
    for offset in range(-max_offset, max_offset + 1):
        if offset >= 0:
            a, b = motion[offset:], envelope[:len(envelope) - offset]
        else:
            a, b = motion[:offset], envelope[-offset:]
        r = _corr(a, b)
        if r > best[0]:
            best = (r, offset)
    return best


# ---------------------------------------------------------------- measuring videos


def mouth_box(landmarks: np.ndarray, size: int, scale: float, pad: float = 0.25) -> tuple[slice, slice]:
    """The mouth region (from real landmarks, times ``scale`` into the frame) in a ``size`` frame, padded."""
    mouth = landmarks[:, MOUTH].reshape(-1, 2) * scale
    mouth = mouth[np.isfinite(mouth).all(1)]
    if not len(mouth):
        return slice(size // 2, size), slice(size // 4, 3 * size // 4)
    (x0, y0), (x1, y1) = mouth.min(0), mouth.max(0)
    px, py = (x1 - x0) * pad, (y1 - y0) * pad
    clamp = lambda v: int(min(max(v, 0), size))  # noqa: E731
    return slice(clamp(y0 - py), clamp(y1 + py + 1)), slice(clamp(x0 - px), clamp(x1 + px + 1))


@dataclass
class Measured:
    landmarks: np.ndarray
    features: np.ndarray  # expression geometry for the evaluator
    size: int | None  # the frame size the landmarks' pixels belong to (None: the frames' own)


def measure(frames: np.ndarray, measurer: Measurer, aligned: bool = True) -> Measured:
    points = measurer.landmarks(frames, aligned)
    return Measured(landmarks=points, features=measured_features(points), size=measurer.size if aligned else None)


def video_metrics(frames: np.ndarray, real: np.ndarray, measured: Measured, real_measured: Measured,
                  audio: np.ndarray, sample_rate: int, fps: float) -> dict:
    """Image, motion and sync metrics of one video against the real clip (same length, aligned faces)."""
    size = frames.shape[1]
    rows, cols = mouth_box(real_measured.landmarks, size, size / (real_measured.size or size))
    metrics = {
        "psnr": float(np.mean([psnr(f, r) for f, r in zip(frames, real, strict=True)])),
        "ssim": float(np.mean([ssim(f, r) for f, r in zip(frames, real, strict=True)])),
        "psnr_mouth": float(np.mean([psnr(f[rows, cols], r[rows, cols]) for f, r in zip(frames, real, strict=True)])),
        "ssim_mouth": float(np.mean([ssim(f[rows, cols], r[rows, cols]) for f, r in zip(frames, real, strict=True)])),
        "m_lmd": landmark_distance(measured.landmarks, real_measured.landmarks, MOUTH),
        "f_lmd": landmark_distance(measured.landmarks, real_measured.landmarks),
    }
    metrics.update(sync_metrics(measured.landmarks, audio, sample_rate, fps))
    metrics["face_found"] = float(np.isfinite(measured.landmarks[:, 0, 0]).mean())
    return metrics


def sync_metrics(landmarks: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float) -> dict:
    opening = mouth_opening(landmarks)
    envelope = speech_envelope(audio, sample_rate, fps, len(landmarks))
    r, offset = best_offset_correlation(opening, envelope)
    return {"sync_r": r, "sync_offset": float(offset)}


# ---------------------------------------------------------------- the independent evaluator


def confusion(actual: list[str], predicted: list[str]) -> np.ndarray:
    matrix = np.zeros((len(EMOTIONS), len(EMOTIONS)), int)
    for a, p in zip(actual, predicted, strict=True):
        matrix[EMOTIONS.index(a), EMOTIONS.index(p)] += 1
    return matrix


def ground_truth_opening(sidecar: Path, frames: int, fps: float) -> np.ndarray | None:
    """The sample corpus's true mouth opening, resampled to the clip's frame times."""
    if not sidecar.is_file():
        return None
    data = json.loads(sidecar.read_text())
    opening = np.asarray(data.get("per_frame", {}).get("mouth_opening", []), float)
    if not opening.size:
        return None
    times = np.arange(frames) / fps
    return np.interp(times, np.arange(opening.size) / float(data["fps"]), opening)


# ---------------------------------------------------------------- validation clips


@dataclass
class Speech:
    clip: str
    audio: np.ndarray
    sample_rate: int
    fps: float


def clip_inputs(path: str | Path, seconds: float | None):
    """(the clip, its first ``seconds`` of real frames at the crop size, that speech)."""
    clip = read_clip(path)
    fps, rate = float(clip.attrs["fps"]), int(clip.attrs["sample_rate"])
    frames = min(len(clip.video), int(round(seconds * fps))) if seconds else len(clip.video)
    audio = clip.audio[:audio_length(frames, rate, fps)]
    return clip, clip.video[:frames], Speech(str(clip.attrs["clip_id"]), audio, rate, fps)


def neutral_features(frame: np.ndarray, measurer: Measurer, aligned: bool = True) -> np.ndarray:
    """The expression geometry of a reference frame or photo: the evaluator reads every video relative
    to the face it starts from, so that a person's face shape is not taken for an emotion."""
    return measure(frame[None], measurer, aligned).features


def evaluator_sample(path: str | Path, reference_file: str | Path, measurer: Measurer,
                     seconds: float | None) -> tuple[np.ndarray, str]:
    """The evaluator's features of a real clip (relative to the first frame of ``reference_file``, a
    neutral clip of the same actor), measured as every video is, and its emotion label."""
    clip, real, _ = clip_inputs(path, seconds)
    neutral = neutral_features(first_frame(str(reference_file)), measurer)
    return measure(real, measurer).features - neutral, str(clip.attrs["emotion"])


def spread_clips(files: list[str], count: int | None) -> list[str]:
    """``count`` clips spread over the people and the emotions: the actors in turn, each actor's clips
    in turn over the emotions, starting where the previous actor stopped (None: every clip, as given)."""
    if not count or count >= len(files):
        return list(files)
    attrs = {f: read_attrs(f) for f in files}
    actors = sorted({str(a["actor"]) for a in attrs.values()})
    per_actor = -(-count // len(actors))
    queues = []
    for index, actor in enumerate(actors):
        mine = [f for f in files if str(attrs[f]["actor"]) == actor]
        start = index * per_actor
        order = sorted(mine, key=lambda f: (sum(1 for g in mine[:mine.index(f)]
                                                if attrs[g]["emotion"] == attrs[f]["emotion"]),
                                            (EMOTIONS.index(attrs[f]["emotion"]) - start) % len(EMOTIONS)))
        queues.append(order)
    picked: list[str] = []
    while len(picked) < count:
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def reference_clips(files: list[str], kind: str) -> dict[str, str]:
    """The clip whose first frame is each clip's reference: a neutral clip of the same actor
    (``neutral``, as in training with ``reference: neutral``), or the clip itself (``clip``)."""
    if kind not in EVALUATE_REFERENCES:
        raise SynthTextError(f"evaluate.reference must be one of {', '.join(EVALUATE_REFERENCES)}, not {kind!r}")
    attrs = {f: read_attrs(f) for f in files}
    neutral = {}
    for f, a in sorted(attrs.items()):
        if a["emotion"] == "NEU":
            neutral.setdefault(str(a["actor"]), f)
    if kind == "clip":
        return {f: f for f in files}
    return {f: neutral.get(str(a["actor"]), f) for f, a in attrs.items()}


@functools.lru_cache(maxsize=64)
def first_frame(path: str) -> np.ndarray:
    """A clip file's first frame (a reference frame: read once per evaluation)."""
    with h5py.File(path, "r") as f:
        return f["video"][0]


@dataclass
class Instruments:
    """Everything that measures a video, built once per evaluation."""

    measurer: Measurer
    evaluator: EmotionEvaluator
    judge: FaceJudge
    face_frames: int = 4  # frames per video for identity and re-detection (the descriptor is slow)
    syncnet: object | None = None  # SyncNet for LSE-D / LSE-C
    references: dict = field(default_factory=dict)  # reference frame file -> (Reference, neutral features)
    life: Life | None = None  # held-out photos: blinks and head motion, as users get them by default
    outside: object | None = None  # the outside judge (``synthtext.evaluation.judge.OutsideJudge``) for held-out photos

    def reference(self, path: str) -> tuple[Reference, np.ndarray]:
        """The reference frame of a clip file: for identity and sharpness, and its expression geometry."""
        if path not in self.references:
            frame = first_frame(path)
            self.references[path] = (self.judge.reference(frame), neutral_features(frame, self.measurer))
        return self.references[path]


def measure_video(frames: np.ndarray, tools: Instruments, reference: Reference, neutral: np.ndarray, speech: Speech,
                  conditions: tuple[str, ...], real: tuple[np.ndarray, Measured] | None = None,
                  truth: np.ndarray | None = None, aligned: bool = True, face_frames: int | None = None,
                  condition: str | None = None, own: bool = True,
                  region: tuple[slice, slice] | None = None) -> tuple[Video, Measured]:
    """Every metric of one video; ``neutral``: the expression geometry of the face it starts from;
    ``conditions``: the emotions its evaluator answer is scored against; ``real``: the real clip and
    its landmarks, for the image and motion metrics; ``region``: where in the frames landmarks are
    tracked (a photo's face region: the same points, found without searching the whole photo)."""
    measured = measure(frames if region is None else frames[:, region[0], region[1]], tools.measurer, aligned)
    if real is not None:
        values = video_metrics(frames, real[0], measured, real[1], speech.audio, speech.sample_rate, speech.fps)
    else:
        values = sync_metrics(measured.landmarks, speech.audio, speech.sample_rate, speech.fps)
        values["face_found"] = float(np.isfinite(measured.landmarks[:, 0, 0]).mean())
    if truth is not None:
        values["gt_opening_r"] = best_offset_correlation(mouth_opening(measured.landmarks), truth, 0)[0]
    if tools.syncnet is not None and aligned:
        values.update(lse(tools.syncnet, frames, speech.audio, speech.sample_rate))
    faces = tools.judge.measure(frames, reference, face_frames or tools.face_frames)
    values["sharpness"] = faces.sharpness
    predicted = tools.evaluator.predict(measured.features - neutral)[0]
    video = Video(values=values, per_frame={"identity": faces.identity, "found": faces.found}, predicted=predicted,
                  hit=float(np.mean([predicted == c for c in conditions])), condition=condition, own=own)
    return video, measured


@dataclass
class ClipResult:
    clip: str
    emotion: str
    videos: dict[str, Video]  # each emotion's generated video; "static" and "real" with baselines
    frames: dict[str, np.ndarray]  # kept frames (report samples, FID): "real", "static", emotions
    speech: Speech


def evaluate_clip(path: str, reference_file: str, generator, tools: Instruments, seconds: float | None,
                  seed: int = 0, baselines: bool = True, source: Path | None = None,
                  keep: tuple[str, ...] = ()) -> ClipResult:
    """A validation clip: generated under each emotion from the reference frame (the first frame of
    ``reference_file``), and with ``baselines`` the static and real videos, all at the crop size.
    Frames named in ``keep`` ("real", "static", "own" or emotions) are kept; the rest are dropped
    once measured, so memory does not grow with the validation split."""
    clip, real, speech = clip_inputs(path, seconds)
    emotion = str(clip.attrs["emotion"])
    reference_frame = first_frame(reference_file)
    reference, neutral = tools.reference(reference_file)
    real_measured = measure(real, tools.measurer)
    truth = ground_truth_opening(source / f"{speech.clip}.json", len(real), speech.fps) if source else None
    videos, kept = {}, {}
    keep = tuple(emotion if k == "own" else k for k in keep)
    if baselines:
        candidates = {"real": (real, (emotion,), None), "static": (np.repeat(reference_frame[None], len(real), 0),
                                                                    EMOTIONS, None)}
    else:
        candidates = {}
    for condition in EMOTIONS:
        candidates[condition] = (None, (condition,), condition)
    for name, (frames, conditions, condition) in candidates.items():
        if frames is None:
            frames = generate_frames(generator, speech.audio, speech.sample_rate, reference_frame, condition, seed,
                                     size=real.shape[1])[:len(real)]
        own = condition in (None, emotion)  # image and motion metrics: only the own emotion is ever read
        videos[name], _ = measure_video(frames, tools, reference, neutral, speech, conditions,
                                        (real, real_measured) if own else None, truth,
                                        face_frames=1 if name == "static" else None, condition=condition, own=own)
        if name in keep:
            kept[name] = frames
    return ClipResult(clip=speech.clip, emotion=emotion, videos=videos, frames=kept, speech=speech)


def validation_columns(clips: list[ClipResult]) -> dict[str, dict]:
    """The generated, static and real columns of the table."""
    generated = [v for c in clips for name, v in c.videos.items() if name in EMOTIONS]
    columns = {"generated": summarise(generated)}
    for kind in ("static", "real"):
        if all(kind in c.videos for c in clips):
            columns[kind] = summarise([c.videos[kind] for c in clips])
    return columns


def per_emotion_accuracy(clips: list[ClipResult]) -> dict[str, dict]:
    out = {}
    for emotion in EMOTIONS:
        generated = [c.videos[emotion].predicted == emotion for c in clips]
        real = [c.videos["real"].predicted == emotion for c in clips if c.emotion == emotion]
        out[emotion] = {"generated": float(np.mean(generated)), "real": float(np.mean(real)) if real else None}
    return out


def generated_confusion(clips: list[ClipResult]) -> np.ndarray:
    """Rows: the emotion condition, columns: the evaluator's answer, over every generated video."""
    return confusion([e for _ in clips for e in EMOTIONS], [c.videos[e].predicted for c in clips for e in EMOTIONS])


def add_fid(table: dict, clips: list[ClipResult], inception: Path, champion: list[ClipResult] | None = None) -> None:
    """FID of the generated (own emotion) and static frames (and the champion's) against the real frames
    of the same clips (``evaluate_clip`` with keep ("real", "static", "own"))."""
    net = load_inception(inception)
    real = inception_features(net, np.concatenate([c.frames["real"] for c in clips]))
    columns = [("generated", clips, lambda c: c.frames[c.emotion]), ("static", clips, lambda c: c.frames["static"])]
    if champion is not None:
        columns.append(("champion", champion, lambda c: c.frames[c.emotion]))
    for kind, source, pick in columns:
        table[kind]["fid"] = frechet_distance(inception_features(net, np.concatenate([pick(c) for c in source])), real)
    table["real"]["fid"] = 0.0


# ---------------------------------------------------------------- held-out photos


def heldout_photos(folder: str | Path) -> list[Path]:
    """The photos of people the model never saw (every image in the folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SynthTextError(f"evaluate.photos: {folder} is not a folder of face photos (or set it to null)")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise SynthTextError(f"evaluate.photos: {folder} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
    return photos


@dataclass
class PhotoResult:
    """A held-out photo: its videos' measures at both sizes, and stills and clips for people to look at."""

    name: str
    region: np.ndarray  # the photo's face region at its own resolution (the part the motion can move)
    videos: dict[str, list[Video]]  # "face" (aligned, ``size`` px) and "photo" (pasted back) -> videos
    peaks: dict[str, np.ndarray]  # emotion -> pasted-back face region at peak mouth opening (first speech)
    clips: dict[str, np.ndarray]  # emotion -> pasted-back face region over the first speech, scaled to ``cell``
    speech: Speech  # the first speech
    judged: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # kind -> emotion -> outside reading [6]
    lively: dict[str, dict] = field(default_factory=dict)  # kind -> liveliness measures of the long speech
    strip: dict[str, np.ndarray] = field(default_factory=dict)  # "blink", "vowel" -> frames around them


def face_region(face) -> tuple[slice, slice]:
    """The photo box under the aligned crop: the part of the photo the generated motion can change."""
    side = face.crop.shape[0]
    corners = cv2.transform(np.array([[[0, 0], [side, 0], [0, side], [side, side]]], np.float32),
                            cv2.invertAffineTransform(face.matrix))[0]
    height, width = (face.image.shape[0] // 2) * 2, (face.image.shape[1] // 2) * 2
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int), (width, height))
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def peak_frame(measured: Measured, speech: Speech, frames: int) -> int:
    """The frame with the widest measured mouth opening (the loudest frame if no mouth was measured)."""
    opening = mouth_opening(measured.landmarks)
    if np.isfinite(opening).any():
        return int(np.nanargmax(opening))
    return int(np.argmax(speech_envelope(speech.audio, speech.sample_rate, speech.fps, frames)))


def evaluate_photo(path: str | Path, speeches: list[Speech], model, tools: Instruments, size: int = 256,
                   seed: int = 0, cell: int = 256, long_speech: Speech | None = None) -> PhotoResult:
    """A held-out photo speaking each speech in all six emotions, as the aligned face at ``size`` px and
    pasted back at the photo's resolution; identity is measured against the photo at both sizes. With
    ``tools.outside`` the outside judge reads the first speech's videos; with ``long_speech`` the photo
    also speaks it (NEU, blinks and head motion on) for the liveliness measures."""
    face = prepare_face(path, model.preprocess)
    photo = face.image[:(face.image.shape[0] // 2) * 2, :(face.image.shape[1] // 2) * 2]
    photo_ref = tools.judge.reference(photo)
    face_ref = tools.judge.reference(face.crop_at(size))
    face_ref.descriptor = photo_ref.descriptor  # the person in the photo is the yardstick at both sizes
    neutral = neutral_features(face.crop, tools.measurer)  # geometry is the same at any size, aligned or not
    region = face_region(face)
    videos: dict[str, list[Video]] = {"face": [], "photo": []}
    peaks, clips, judged = {}, {}, {"face": {}, "photo": {}}
    for index, speech in enumerate(speeches):
        for emotion in EMOTIONS:
            animation = animate(model.generator, speech.audio, speech.sample_rate, face.crop, emotion, seed,
                                life=tools.life, landmarks=face.landmarks)
            for kind, frames, reference in (("face", face_frames(animation, face, size), face_ref),
                                            ("photo", paste_back(animation, face), photo_ref)):
                video, measured = measure_video(frames, tools, reference, neutral, speech, (emotion,),
                                                aligned=kind == "face", condition=emotion,
                                                region=None if kind == "face" else region)
                videos[kind].append(video)
                if index == 0 and tools.outside is not None:
                    judged[kind][emotion] = tools.outside.clip_probabilities(
                        frames if kind == "face" else frames[:, region[0], region[1]])
                if index == 0 and kind == "photo":
                    peaks[emotion] = frames[peak_frame(measured, speech, len(frames))][region]
                    clips[emotion] = frames_at_height(frames[:, region[0], region[1]], cell)
    result = PhotoResult(name=Path(path).stem, region=photo[region], videos=videos, peaks=peaks, clips=clips,
                         speech=speeches[0], judged=judged if tools.outside is not None else {})
    if long_speech is not None:
        lively_photo(result, face, long_speech, model, tools, size, seed, region)
    return result


def lively_photo(result: PhotoResult, face, speech: Speech, model, tools: Instruments, size: int, seed: int,
                 region: tuple[slice, slice], around: int = 4) -> None:
    """The photo speaking a long speech in NEU with blinks and head motion: its liveliness measures at both
    sizes, and frames of the pasted-back face around the deepest blink and the widest-open mouth."""
    animation = animate(model.generator, speech.audio, speech.sample_rate, face.crop, "NEU", seed,
                        life=tools.life or Life(), landmarks=face.landmarks)
    pasted = paste_back(animation, face)[:, region[0], region[1]]
    result.lively = {"face": liveliness(face_frames(animation, face, size), speech.fps),
                     "photo": liveliness(pasted, speech.fps)}
    centres = {"vowel": int(np.argmax(speech_envelope(speech.audio, speech.sample_rate, speech.fps, len(pasted))))}
    if "life" in animation.parts and animation.parts["life"][:, 0].max() > 0:
        centres["blink"] = int(animation.parts["life"][:, 0].argmax())
    for name, t in centres.items():
        picked = np.clip(np.arange(t - around, t + around + 1), 0, len(pasted) - 1)
        result.strip[name] = frames_at_height(pasted[picked], 160)


def heldout_columns(photos: list[PhotoResult]) -> dict[str, dict]:
    """The two held-out columns of the table: the aligned face and the photo with the face pasted back."""
    return {"heldout_face": summarise([v for p in photos for v in p.videos["face"]], "heldout"),
            "heldout_photo": summarise([v for p in photos for v in p.videos["photo"]], "heldout")}


def heldout_breakdown(photos: list[PhotoResult]) -> dict[str, dict]:
    """Held-out metrics per photo and per emotion, at both sizes: {"photos": {name: {kind: column}},
    "emotions": {emotion: {kind: column}}}."""
    kinds = ("face", "photo")
    return {"photos": {p.name: {k: summarise(p.videos[k], "heldout") for k in kinds} for p in photos},
            "emotions": {e: {k: summarise([v for p in photos for v in p.videos[k] if v.condition == e], "heldout")
                             for k in kinds} for e in EMOTIONS}}
