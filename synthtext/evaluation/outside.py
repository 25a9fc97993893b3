"""Judges from outside the pipeline, for the held-out photos: what a reader trained by others on real
faces sees (``synthtext.evaluation.judge``), and how alive the face is next to real talkers
(``synthtext.evaluation.liveliness``).

Our own evaluator learnt emotion from our own corpus; the outside judge did not, so it tells whether
a face shows an emotion to anyone. It is calibrated on real clips (one CREMA-D actor in all six
emotions) when ``../shared/realdata`` is present; the report says so when it is not.

Targets (issues 26 and 27; ``check``):
- outside judge on the held-out photos, at both sizes: accuracy at least its accuracy on the real
  actor minus 0.1; HAP and ANG each read as asked on at least 2 of 3 photos; the asked emotion's
  probability above the same photo's NEU video for every emotion, on average over the photos;
- liveliness on a long speech (15 s or more): 10-40 blinks a minute, each 100-400 ms; head roll std
  0.5-3 degrees, yaw and pitch moving; jitter at most the real clips' median; where the mouth opens
  (inner lips >= 0.3 IOD apart) sharpness >= 2, teeth >= 0.1 of it, Lab L <= 50 and a +5..+30.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthtext import EMOTIONS
from synthtext.evaluation.judge import calibrate
from synthtext.evaluation.liveliness import measure_reference, reference_clips

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
BLINKS_PER_MIN = (10.0, 40.0)
BLINK_MS = (100.0, 400.0)
ROLL_STD_DEG = (0.5, 3.0)
MOVING_DEG = 0.2  # yaw and pitch "moving": std at least this
# The open mouth (frames with the inner lips >= 0.3 IOD apart): sharper than 2 (real median 5.5), teeth
# in at least a tenth of it, and a dark red inside (real clips: L <= 50, a between +5 and +30).
MOUTH_SHARPNESS, TEETH_SHARE, MOUTH_L, MOUTH_A = 2.0, 0.1, 50.0, (5.0, 30.0)


def calibration(judge, root: Path = REALDATA) -> dict:
    """The judge on the real actor's six emotions, or why there is no such reading."""
    folder = root / "expressions"
    if not folder.is_dir():
        return {"present": False, "note": f"{folder} is absent: no calibration on real faces in this run"}
    result = calibrate(folder, judge)
    return {"present": True, "folder": str(folder), "accuracy": result.accuracy,
            "emotions": {r.emotion: {"read": r.top1, "probability": r.probability, "lift": r.lift}
                         for r in result.rows}}


def readings(judge, videos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Emotion -> the judge's clip reading [6] of that emotion's video of one photo."""
    return {emotion: judge.clip_probabilities(frames) for emotion, frames in videos.items()}


def summarise_judge(per_photo: dict[str, dict[str, np.ndarray]]) -> dict:
    """Per emotion over the photos: how many read as asked and the mean lift of the asked emotion's
    probability over the same photo's NEU video; the accuracy over every video."""
    out: dict = {"emotions": {}}
    hits = []
    for i, emotion in enumerate(EMOTIONS):
        read = [EMOTIONS[int(np.argmax(p[emotion]))] for p in per_photo.values()]
        lifts = [float(p[emotion][i] - p["NEU"][i]) for p in per_photo.values()]
        hits += [r == emotion for r in read]
        out["emotions"][emotion] = {"hits": int(sum(r == emotion for r in read)), "photos": len(read),
                                    "read": read, "lift": float(np.mean(lifts)) if lifts else float("nan")}
    out["accuracy"] = float(np.mean(hits)) if hits else float("nan")
    return out


def check_judge(summary: dict, calibrated: dict) -> dict[str, dict]:
    """The outside judge's targets: name -> {target, value, pass}."""
    checks = {}
    if calibrated.get("present"):
        floor = calibrated["accuracy"] - 0.1
        checks["accuracy"] = {"target": floor, "value": summary["accuracy"], "pass": summary["accuracy"] >= floor}
    for emotion in ("HAP", "ANG"):
        row = summary["emotions"][emotion]
        need = int(np.ceil(2 / 3 * row["photos"]))
        checks[f"{emotion}_hits"] = {"target": need, "value": row["hits"], "pass": row["hits"] >= need}
    for emotion in EMOTIONS:
        if emotion != "NEU":
            lift = summary["emotions"][emotion]["lift"]
            checks[f"{emotion}_lift"] = {"target": 0.0, "value": lift, "pass": bool(lift > 0)}
    return checks


def check_liveliness(measures: dict, real: dict | None) -> dict[str, dict]:
    """Liveliness targets of one video's measures (``liveliness.measure_video``)."""
    checks = {}

    def within(name: str, value, low: float, high: float) -> None:
        ok = value is not None and np.isfinite(value) and low <= value <= high
        checks[name] = {"target": [low, high], "value": value, "pass": bool(ok)}

    within("blinks_per_min", measures.get("blinks_per_min"), *BLINKS_PER_MIN)
    lengths = measures.get("blink_ms") or []
    checks["blink_ms"] = {"target": list(BLINK_MS), "value": lengths,
                          "pass": bool(lengths) and all(BLINK_MS[0] <= v <= BLINK_MS[1] for v in lengths)}
    within("roll_std_deg", measures.get("roll_std_deg"), *ROLL_STD_DEG)
    for name in ("yaw_std_deg", "pitch_std_deg"):
        within(name, measures.get(name), MOVING_DEG, 90.0)
    if measures.get("open_mouth_frames"):
        within("mouth_sharpness", measures.get("mouth_sharpness"), MOUTH_SHARPNESS, float("inf"))
        within("teeth_share", measures.get("teeth_share"), TEETH_SHARE, 1.0)
        within("mouth_L", measures.get("mouth_L"), 0.0, MOUTH_L)
        within("mouth_a", measures.get("mouth_a"), *MOUTH_A)
    limit = ((real or {}).get("jitter") or {}).get("median")
    if limit is not None and measures.get("jitter") is not None:
        checks["jitter"] = {"target": limit, "value": measures["jitter"], "pass": measures["jitter"] <= limit}
    return checks


def real_liveliness(root: Path = REALDATA) -> dict | None:
    """The liveliness measures' medians and ranges over the real talking clips, or None without them."""
    if not reference_clips(root):
        return None
    return measure_reference(root)["summary"]
