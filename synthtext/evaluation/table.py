"""The one table of metrics: what each measures, which way is better, its targets, and how videos are
summarised into it.

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

from dataclasses import dataclass

import numpy as np

from synthtext.evaluation.face_metrics import IDENTITY_KEPT
from synthtext.ops.errors import SynthTextError

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


def entries() -> tuple[Metric, ...]:
    """The table's entries, read when called: every reader sees the same table, an entry added at run time
    included."""
    return METRICS


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


