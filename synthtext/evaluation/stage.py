"""The evaluate stage's steps, in the order the flow (``flows/evaluate.py``) calls them: the inputs, the
candidate and the champion on the validation clips, the held-out photos, the gate, the report, the MLflow
run and the metrics files. The measuring is ``synthtext.evaluation.runs``'s."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from synthtext import EMOTIONS
from synthtext.data.landmarks import make_backend
from synthtext.data.split import read_split
from synthtext.evaluation import outside, promote
from synthtext.evaluation.evaluator import EmotionEvaluator, Measurer
from synthtext.evaluation.face_metrics import FaceJudge
from synthtext.evaluation.judge import ABOUT, OutsideJudge
from synthtext.evaluation.report import (
    filmstrip,
    generated_sheet,
    heldout_sheet,
    heldout_video,
    outside_html,
    sample_video,
    write_index,
)
from synthtext.evaluation.runs import (
    Instruments,
    Speech,
    clip_inputs,
    evaluate_clip,
    evaluate_photo,
    evaluator_sample,
    generated_confusion,
    heldout_breakdown,
    per_emotion_accuracy,
    reference_clips,
    spread_clips,
)
from synthtext.evaluation.sync_metrics import load_syncnet
from synthtext.evaluation.table import HELDOUT_COLUMNS, json_ready
from synthtext.inference.infer import load_generator
from synthtext.inference.life import Life
from synthtext.ops import tracking
from synthtext.ops.config import EvaluateParams, PromoteParams
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_csv_atomic, write_json_atomic
from synthtext.ops.plots import write_confusion

LONG_SECONDS = 16.0
"""How long the held-out photos speak for the liveliness measures (blinks a minute, head motion)."""


@dataclass
class Evaluation:
    """What the evaluate stage reads, and what it has found so far."""

    root: Path
    settings: EvaluateParams
    gate: PromoteParams
    source: Path
    train_files: list[str]
    all_val: list[str]
    val_files: list[str]
    references: dict[str, str]
    model: object
    measurer: Measurer
    syncnet: object | None = None
    tools: Instruments | None = None
    table: dict = field(default_factory=dict)
    results: list = field(default_factory=list)
    photos: list = field(default_factory=list)
    speeches: list = field(default_factory=list)
    champion_results: list | None = None
    judged: dict | None = None
    lively: dict | None = None


def prepare(root: Path, settings: EvaluateParams, gate: PromoteParams, data_source: str) -> Evaluation:
    """The splits, the validation clips to evaluate and their references, the candidate generator."""
    clips, splits = root / "data/processed/clips", root / "data/processed/splits"
    train_files, all_val = read_split(splits, clips, "train"), read_split(splits, clips, "val")
    val_files = spread_clips(all_val, settings.max_clips)
    references = reference_clips(all_val, settings.reference)
    model = load_generator(root / "models/generator")
    measurer = Measurer(make_backend(model.preprocess["landmark_backend"]), int(model.preprocess["size"]))
    syncnet = load_syncnet(root / settings.syncnet_weights) if settings.syncnet_weights else None
    return Evaluation(root, settings, gate, root / data_source, train_files, all_val, val_files, references,
                      model, measurer, syncnet)


def train_evaluator(files: list[str], measurer, seconds: float, seed: int):
    """The independent evaluator: fitted on real training clips only (each relative to its actor's
    neutral frame), measured as every video is."""
    references = reference_clips(files, "neutral")
    samples = [evaluator_sample(f, references[f], measurer, seconds)
               for f in tqdm(files, desc="evaluator: real training clips", unit="clip")]
    return EmotionEvaluator.fit(np.array([s[0] for s in samples]), [s[1] for s in samples], seed)


def instruments(run: Evaluation, evaluator: EmotionEvaluator) -> Instruments:
    return Instruments(run.measurer, evaluator, FaceJudge(), run.settings.face_frames, run.syncnet,
                       life=Life(), outside=OutsideJudge())


def evaluate_clips(files: list[str], references: dict[str, str], generator, tools, seconds: float, seed: int,
                   baselines: bool, source: Path | None, desc: str, samples: int = 0, fid: bool = False) -> list:
    """Every validation clip (``evaluate_clip``); frames kept for the first ``samples`` clips
    (the report's) and, with ``fid``, the real, static and own-emotion frames of every clip."""
    out = []
    for index, path in enumerate(tqdm(files, desc=desc, unit="clip")):
        keep = ("real", "static", *EMOTIONS) if index < samples else ("real", "static", "own") if fid else ()
        out.append(evaluate_clip(path, references.get(path, path), generator, tools, seconds, seed, baselines, source,
                                 keep))
    return out


def evaluate_photos(photos: list[Path], speeches: list, model, tools, size: int, seed: int, long_speech=None) -> list:
    """Every held-out photo (``evaluate_photo``)."""
    return [evaluate_photo(p, speeches, model, tools, size, seed, long_speech=long_speech)
            for p in tqdm(photos, desc="evaluate: held-out photos", unit="photo")]


def long_speech(files: list[str], seconds: float):
    """Validation clips' whole speech joined until it lasts ``seconds`` (for blinks a minute and head motion)."""
    pieces, total, speech = [], 0.0, None
    for path in files:
        _, _, speech = clip_inputs(path, None)
        pieces.append(speech.audio)
        total += len(speech.audio) / speech.sample_rate
        if total >= seconds:
            break
    if speech is None:
        return None
    return Speech("long", np.concatenate(pieces), speech.sample_rate, speech.fps)


def outside_readings(photos: list, judge) -> tuple[dict, dict]:
    """The outside judge's section (calibration, held-out readings, targets) and the liveliness section."""
    calibrated = outside.calibration(judge)
    judged = {"about": ABOUT,
              "calibration": calibrated, "targets": {}}
    for kind, column in (("face", "heldout_face"), ("photo", "heldout_photo")):
        judged[column] = outside.summarise_judge({p.name: p.judged[kind] for p in photos if p.judged})
        judged["targets"][column] = outside.check_judge(judged[column], calibrated)
    real = outside.real_liveliness()
    lively = {"real": real, "note": "" if real else "../shared/realdata is absent: no real clips to compare with",
              "seconds": LONG_SECONDS, "photos": {p.name: p.lively for p in photos if p.lively}, "targets": {}}
    for p in photos:
        for kind, measures in p.lively.items():
            lively["targets"][f"{p.name}, {kind}"] = outside.check_liveliness(measures, real)
    return judged, lively


# ---------------------------------------------------------------- the registry and the gate


def registry_versions(run: Evaluation) -> tuple[str, object, object | None]:
    """The registered generator's name, its candidate (which must be ``models/generator``) and champion."""
    import mlflow  # imported here, not at the top: it takes seconds to import

    tracking.require_server(tracking.tracking_uri(run.root))
    name = tracking.MODEL_NAMES["generator"]
    candidate, champion = promote.registry_state(name)
    if candidate is None:
        raise SynthTextError(f"no {name}@candidate in the registry: run the train_gan stage first")
    if mlflow.get_run(candidate.run_id).data.tags.get("model_md5") != run.model.md5:
        raise SynthTextError(f"{name}@candidate (v{candidate.version}) is not models/generator: dvc repro train_gan")
    return name, candidate, champion


@contextmanager
def champion_generator(champion) -> Iterator[object]:
    """The champion's generator, downloaded from the registry into a temporary folder for the block."""
    import mlflow  # imported here, not at the top: it takes seconds to import

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(mlflow.artifacts.download_artifacts(champion.source, dst_path=scratch))
        yield load_generator(folder).generator


def at_rest_identity(photos: list) -> dict[str, float] | None:
    """Held-out column -> the NEU videos' median identity distance (None without held-out photos)."""
    if not photos:
        return None
    neutral = heldout_breakdown(photos)["emotions"].get("NEU", {})
    return {column: neutral[kind]["identity_median"] for kind, column in (("face", "heldout_face"),
                                                                          ("photo", "heldout_photo"))
            if kind in neutral}


def decide(run: Evaluation, candidate, champion) -> tuple[promote.Decision, dict]:
    """The gate's decision on the candidate, and the promotion record the report and metrics show."""
    table, gate, judged = run.table, run.gate, run.judged
    if champion is not None and champion.version == candidate.version:
        decision = promote.Decision(promote=True, reasons=[f"v{candidate.version} is the champion already"])
    else:
        decision = promote.decide(
            table["generated"], table["static"], table.get("champion"),
            list(gate.metrics), gate.margin, gate.against_static, list(gate.static_floor),
            {k: v for k, v in table.items() if k in HELDOUT_COLUMNS}, gate.max_identity,
            {c: judged[c]["accuracy"] for c in HELDOUT_COLUMNS if judged and c in judged}
            if gate.outside_judge else None,
            at_rest_identity(run.photos), table.get("real", {}).get("identity_median"), gate.identity_over_real)
    promotion = {"promoted": decision.promote, "candidate_version": int(candidate.version),
                 "champion_version_before": int(champion.version) if champion else None,
                 "reasons": decision.reasons}
    return decision, promotion


# ---------------------------------------------------------------- what the stage writes


def write_report(folder: Path, clips: list, photos: list, picked: int, table: dict, targets: dict, promotion: dict,
                 evaluator, about: dict, judged: dict | None = None, lively: dict | None = None) -> None:
    for emotion in EMOTIONS:
        samples = [{"real": c.frames["real"], "static": c.frames["static"], "generated": c.frames[emotion],
                    "audio": c.speech.audio, "fps": c.speech.fps, "sample_rate": c.speech.sample_rate}
                   for c in clips[:picked]]
        sample_video(samples, emotion, folder / f"emotion_{emotion}.mp4")
        generated_sheet(samples, folder / f"emotion_{emotion}.png")
    for photo in photos:
        heldout_sheet(photo.region, photo.peaks, folder / f"heldout_{photo.name}.png")
        heldout_video(photo.clips, photo.speech.audio, photo.speech.sample_rate, photo.speech.fps,
                      folder / f"heldout_{photo.name}.mp4")
    evaluator.save(folder / "evaluator.json")
    strip = None
    if photos and photos[0].strip:
        strip = f"filmstrip_{photos[0].name}.png"
        filmstrip(photos[0].strip, folder / strip)
    write_index(folder, table, promotion, per_emotion_accuracy(clips),
                generated_confusion(clips), about, targets,
                heldout_breakdown(photos) if photos else None, outside_html(judged, lively, strip))


def write_reports(folder: Path, run: Evaluation, name: str, candidate, promotion: dict, targets: dict) -> None:
    """``reports/`` (written into ``folder``): the page, its videos and sheets, the evaluator, heldout.json."""
    settings, model = run.settings, run.model
    about = {"model": f"{name} v{candidate.version} (models/generator, md5 {model.md5[:12]})",
             "validation clips": f"{len(run.results)} of {len(run.all_val)}, {settings.seconds:g} s each, at the "
                                 f"crop size ({model.preprocess['size']} px)",
             "held-out photos": f"{len(run.photos)} ({settings.photos}), each speaking {len(run.speeches)} "
                                f"validation clip(s) in 6 emotions, at {settings.size} px and pasted back",
             "identity and re-detection": f"on {run.tools.face_frames} frames spread over each video",
             "evaluator": f"trained on {len(run.train_files)} real training clips"}
    write_report(folder, run.results, run.photos, settings.sample_clips, run.table, targets, promotion,
                 run.tools.evaluator, about, run.judged, run.lively)
    if run.photos:
        write_json_atomic(folder / "heldout.json", json_ready(heldout_breakdown(run.photos)))


def record_run(run: Evaluation, experiment: str, reports: Path, name: str, candidate, decision: promote.Decision,
               promotion: dict) -> str:
    """One MLflow run: the metrics, the report, the gate's decision; the registry's aliases follow the
    decision. Returns the run's id."""
    table = run.table
    with tracking.stage_run(run.root, experiment, "evaluate") as mlrun:
        mlrun.tags({**tracking.git_state(run.root), "candidate_version": candidate.version,
                    "promotion": "promoted" if decision.promote else "refused",
                    "promotion_reasons": "; ".join(decision.reasons)[:5000]})
        mlrun.params(tracking.flatten({"evaluate": run.settings.as_dict(), "promote": run.gate.as_dict()}))
        mlrun.metrics({f"{kind}.{k}": v for kind, values in table.items() for k, v in values.items()
                       if np.isfinite(v)})
        mlrun.artifacts(reports, "report")
        # The evaluator goes with the model version it judged: inference reads every video's segments
        # with it (synthtext.inference.selfcheck), whichever version an alias points to.
        mlrun.client.set_model_version_tag(name, candidate.version, "evaluator",
                                           f"runs:/{mlrun.id}/report/evaluator.json")
        mlrun.dict(promotion, "promotion.json")
        promote.apply(name, candidate.version, decision,
                      {**table["generated"], **{f"{column}.{k}": v for column in HELDOUT_COLUMNS
                                                for k, v in table.get(column, {}).items()}})
        return mlrun.id


def write_metrics(run: Evaluation, targets: dict, promotion: dict, run_id: str) -> dict:
    """``metrics/evaluate.json`` (returned), the per-emotion accuracy and the confusion matrix (DVC plots)."""
    root, judged = run.root, run.judged
    metrics = {**json_ready(run.table), "targets": targets,
               **({"outside_judge": json_ready(judged), "liveliness": json_ready(run.lively)}
                  if judged else {}),
               "promotion": {k: v for k, v in promotion.items() if k != "reasons"}, "evaluate_run_id": run_id}
    write_json_atomic(root / "metrics/evaluate.json", metrics)
    per_emotion = per_emotion_accuracy(run.results)
    write_csv_atomic(root / "metrics/evaluate_per_emotion.csv",
                     [["emotion", "generated", "real", "static"],
                      *([e, round(per_emotion[e]["generated"], 4), round(per_emotion[e]["real"] or 0, 4),
                         round(1 / len(EMOTIONS), 4)] for e in EMOTIONS)])
    write_confusion(root / "metrics/evaluate_confusion.csv", generated_confusion(run.results).tolist())
    return metrics
