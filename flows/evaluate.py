"""Stage evaluate: the candidate generator on the validation speakers against a static and a real
baseline (and the current champion), on held-out photos of people in neither split, an independent
emotion evaluator, the promotion gate, and ``reports/index.html``. One MLflow run records the
metrics, the report and the gate's decision. The measuring is ``synthtext.evaluation.runs``'s; this
module wires it."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import mlflow
import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from flows.train import read_split, write_confusion, write_csv_atomic
from synthtext import EMOTIONS
from synthtext.data.landmarks import make_backend
from synthtext.evaluation import outside, promote
from synthtext.evaluation import runs as evaluation
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
from synthtext.evaluation.runs import EmotionEvaluator, evaluate_clip, evaluate_photo, evaluator_sample, reference_clips
from synthtext.evaluation.sync_metrics import load_syncnet
from synthtext.inference.infer import load_generator
from synthtext.inference.life import Life
from synthtext.ops import tracking
from synthtext.ops.config import EvaluateParams, PromoteParams
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_json_atomic


@task(name="train-evaluator", cache_policy=NO_CACHE)
def train_evaluator(files: list[str], measurer, seconds: float, seed: int):
    """The independent evaluator: fitted on real training clips only (each relative to its actor's
    neutral frame), measured as every video is."""
    references = reference_clips(files, "neutral")
    samples = [evaluator_sample(f, references[f], measurer, seconds)
               for f in tqdm(files, desc="evaluator: real training clips", unit="clip")]
    return EmotionEvaluator.fit(np.array([s[0] for s in samples]), [s[1] for s in samples], seed)


@task(name="evaluate-clips", cache_policy=NO_CACHE)
def evaluate_clips(files: list[str], references: dict[str, str], generator, tools, seconds: float, seed: int,
                   baselines: bool, source: Path | None, desc: str, samples: int = 0, fid: bool = False) -> list:
    """Every validation clip (``evaluation.evaluate_clip``); frames kept for the first ``samples`` clips
    (the report's) and, with ``fid``, the real, static and own-emotion frames of every clip."""
    out = []
    for index, path in enumerate(tqdm(files, desc=desc, unit="clip")):
        keep = ("real", "static", *EMOTIONS) if index < samples else ("real", "static", "own") if fid else ()
        out.append(evaluate_clip(path, references.get(path, path), generator, tools, seconds, seed, baselines, source,
                                 keep))
    return out


@task(name="evaluate-photos", cache_policy=NO_CACHE)
def evaluate_photos(photos: list[Path], speeches: list, model, tools, size: int, seed: int, long_speech=None) -> list:
    """Every held-out photo (``evaluation.evaluate_photo``)."""
    return [evaluate_photo(p, speeches, model, tools, size, seed, long_speech=long_speech)
            for p in tqdm(photos, desc="evaluate: held-out photos", unit="photo")]


def long_speech(files: list[str], seconds: float):
    """Validation clips' whole speech joined until it lasts ``seconds`` (for blinks a minute and head motion)."""
    pieces, total, speech = [], 0.0, None
    for path in files:
        _, _, speech = evaluation.clip_inputs(path, None)
        pieces.append(speech.audio)
        total += len(speech.audio) / speech.sample_rate
        if total >= seconds:
            break
    if speech is None:
        return None
    return evaluation.Speech("long", np.concatenate(pieces), speech.sample_rate, speech.fps)


@task(name="outside-readings", cache_policy=NO_CACHE)
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


LONG_SECONDS = 16.0


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
    write_index(folder, table, promotion, evaluation.per_emotion_accuracy(clips),
                evaluation.generated_confusion(clips), about, targets,
                evaluation.heldout_breakdown(photos) if photos else None, outside_html(judged, lively, strip))


@flow(name="evaluate")
def evaluate_flow(repo: str, evaluate_params: dict, promote_params: dict, data_source: str) -> dict:
    """The evaluate stage: metrics, plots, report, promotion. Returns the metrics written. ``evaluate_params``
    and ``promote_params``: ``asdict`` of EvaluateParams and PromoteParams; ``data_source``: data.source."""
    root = Path(repo)
    experiment = tracking.setup(root)  # a tracking server that is down: one clear error now, not after the work
    settings = EvaluateParams.from_dict(evaluate_params)
    gate = PromoteParams.from_dict(promote_params)
    seconds, seed = settings.seconds, settings.seed
    clips, splits = root / "data/processed/clips", root / "data/processed/splits"
    train_files, all_val = read_split(splits, clips, "train"), read_split(splits, clips, "val")
    val_files = evaluation.spread_clips(all_val, settings.max_clips)
    references = evaluation.reference_clips(all_val, settings.reference)
    model = load_generator(root / "models/generator")
    measurer = evaluation.Measurer(make_backend(model.preprocess["landmark_backend"]), int(model.preprocess["size"]))
    syncnet = None
    if settings.syncnet_weights:
        syncnet = load_syncnet(root / settings.syncnet_weights)
    evaluator = train_evaluator(train_files, measurer, seconds, seed)
    tools = evaluation.Instruments(measurer, evaluator, FaceJudge(), settings.face_frames, syncnet,
                                   life=Life(), outside=OutsideJudge())
    picked, fid = settings.sample_clips, bool(settings.inception)
    source = root / data_source
    results = evaluate_clips(val_files, references, model.generator, tools, seconds, seed, True, source,
                             "evaluate: candidate", picked, fid)
    table = evaluation.validation_columns(results)
    photos, speeches = [], [r.speech for r in results[:max(1, settings.photo_clips)]]
    if settings.photos:
        photos = evaluate_photos(evaluation.heldout_photos(root / settings.photos), speeches, model, tools,
                                 settings.size, seed, long_speech(all_val, LONG_SECONDS))
        table.update(evaluation.heldout_columns(photos))
    judged, lively = outside_readings(photos, tools.outside) if photos else (None, None)

    tracking.require_server(tracking.tracking_uri(root))
    name = tracking.MODEL_NAMES["generator"]
    candidate, champion = promote.registry_state(name)
    if candidate is None:
        raise SynthTextError(f"no {name}@candidate in the registry: run the train_gan stage first")
    if mlflow.get_run(candidate.run_id).data.tags.get("model_md5") != model.md5:
        raise SynthTextError(f"{name}@candidate (v{candidate.version}) is not models/generator: dvc repro train_gan")
    champion_results = None
    if champion is not None and champion.version != candidate.version:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(mlflow.artifacts.download_artifacts(champion.source, dst_path=scratch))
            previous = load_generator(folder)
            champion_results = evaluate_clips(val_files, references, previous.generator, tools, seconds, seed, False,
                                              source, f"evaluate: champion v{champion.version}", fid=fid)
        table["champion"] = evaluation.validation_columns(champion_results)["generated"]
    if fid:
        evaluation.add_fid(table, results, root / settings.inception, champion_results)
    if champion is not None and champion.version == candidate.version:
        decision = promote.Decision(promote=True, reasons=[f"v{candidate.version} is the champion already"])
    else:
        decision = promote.decide(
            table["generated"], table["static"], table.get("champion"),
            list(gate.metrics), gate.margin, gate.against_static, list(gate.static_floor),
            {k: v for k, v in table.items() if k in evaluation.HELDOUT_COLUMNS}, gate.max_identity,
            {c: judged[c]["accuracy"] for c in evaluation.HELDOUT_COLUMNS if judged and c in judged}
            if gate.outside_judge else None)
    promotion = {"promoted": decision.promote, "candidate_version": int(candidate.version),
                 "champion_version_before": int(champion.version) if champion else None,
                 "reasons": decision.reasons}
    targets = evaluation.check_targets(table)

    reports = root / "reports"
    scratch_reports = reports.with_name(".reports.tmp")
    shutil.rmtree(scratch_reports, ignore_errors=True)
    scratch_reports.mkdir(parents=True)
    about = {"model": f"{name} v{candidate.version} (models/generator, md5 {model.md5[:12]})",
             "validation clips": f"{len(results)} of {len(all_val)}, {seconds:g} s each, at the crop size "
                                 f"({model.preprocess['size']} px)",
             "held-out photos": f"{len(photos)} ({settings.photos}), each speaking {len(speeches)} "
                                f"validation clip(s) in 6 emotions, at {settings.size} px and pasted back",
             "identity and re-detection": f"on {tools.face_frames} frames spread over each video",
             "evaluator": f"trained on {len(train_files)} real training clips"}
    write_report(scratch_reports, results, photos, picked, table, targets, promotion, evaluator, about, judged,
                 lively)
    if photos:
        write_json_atomic(scratch_reports / "heldout.json", evaluation.json_ready(evaluation.heldout_breakdown(photos)))

    with tracking.stage_run(root, experiment, "evaluate") as run:
        run.tags({**tracking.git_state(root), "candidate_version": candidate.version,
                  "promotion": "promoted" if decision.promote else "refused",
                  "promotion_reasons": "; ".join(decision.reasons)[:5000]})
        run.params(tracking.flatten({"evaluate": asdict(settings), "promote": asdict(gate)}))
        run.metrics({f"{kind}.{k}": v for kind, values in table.items() for k, v in values.items() if np.isfinite(v)})
        run.artifacts(scratch_reports, "report")
        # The evaluator goes with the model version it judged: inference reads every video's segments
        # with it (synthtext.inference.selfcheck), whichever version an alias points to.
        run.client.set_model_version_tag(name, candidate.version, "evaluator", f"runs:/{run.id}/report/evaluator.json")
        run.dict(promotion, "promotion.json")
        promote.apply(name, candidate.version, decision,
                      {**table["generated"], **{f"{column}.{k}": v for column in evaluation.HELDOUT_COLUMNS
                                                for k, v in table.get(column, {}).items()}})
        run_id = run.id
    shutil.rmtree(reports, ignore_errors=True)
    scratch_reports.rename(reports)

    metrics = {**evaluation.json_ready(table), "targets": targets,
               **({"outside_judge": evaluation.json_ready(judged), "liveliness": evaluation.json_ready(lively)}
                  if judged else {}),
               "promotion": {k: v for k, v in promotion.items() if k != "reasons"}, "evaluate_run_id": run_id}
    write_json_atomic(root / "metrics/evaluate.json", metrics)
    per_emotion = evaluation.per_emotion_accuracy(results)
    write_csv_atomic(root / "metrics/evaluate_per_emotion.csv",
                     [["emotion", "generated", "real", "static"],
                      *([e, round(per_emotion[e]["generated"], 4), round(per_emotion[e]["real"] or 0, 4),
                         round(1 / len(EMOTIONS), 4)] for e in EMOTIONS)])
    write_confusion(root / "metrics/evaluate_confusion.csv", evaluation.generated_confusion(results).tolist())
    return metrics
