"""Stage evaluate: the candidate generator on the validation speakers against a static and a real
baseline (and the current champion), an independent emotion evaluator, the promotion gate, and
``reports/index.html``. One MLflow run records the metrics, the report and the gate's decision."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from synthtext import EMOTIONS
from synthtext.errors import SynthTextError
from synthtext.files import write_json_atomic

BASELINES = ("generated", "static", "real")


def _clip_inputs(path: str, seconds: float, size: int):
    """The clip, its real frames at the model's resolution (so every video is measured equally sharp),
    its audio, fps and sample rate."""
    from synthtext.clipfile import read_clip
    from synthtext.infer import resize_frames

    clip = read_clip(path)
    fps, rate = float(clip.attrs["fps"]), int(clip.attrs["sample_rate"])
    frames = min(len(clip.video), int(round(seconds * fps))) if seconds else len(clip.video)
    audio = clip.audio[:int(round(frames * rate / fps))]
    return clip, resize_frames(clip.video[:frames], size), audio, fps, rate


@task(name="train-evaluator", cache_policy=NO_CACHE)
def train_evaluator(files: list[str], measurer, size: int, seconds: float, seed: int):
    """The independent evaluator: fitted on real training clips only, measured as every video is."""
    from synthtext.evaluation import EmotionEvaluator, measure

    features, labels = [], []
    for path in tqdm(files, desc="evaluator: real training clips", unit="clip"):
        clip, real, _, _, _ = _clip_inputs(path, seconds, size)
        features.append(measure(real, measurer).features)
        labels.append(clip.attrs["emotion"])
    if len(set(labels)) < 2:
        raise SynthTextError("the training split has fewer than two emotions: the evaluator cannot be trained")
    return EmotionEvaluator.fit(np.array(features), labels, seed)


@task(name="evaluate-clips", cache_policy=NO_CACHE)
def evaluate_clips(files: list[str], references: dict[str, str], model, measurer, evaluator, seconds: float,
                   seed: int, with_baselines: bool, source: Path | None, desc: str, syncnet=None, keep: int = 0,
                   keep_for_fid: bool = False) -> dict:
    """Every clip: real, static (the reference frame repeated) and generated under each emotion from the
    reference frame (``references``: clip file -> the clip whose first frame is the reference);
    metrics and evaluator predictions. Frames are kept for the first ``keep`` clips (the report's
    samples) and, with ``keep_for_fid``, the real, static and own-emotion frames of every clip;
    the rest are dropped as soon as they are measured, so memory does not grow with the val split."""
    import h5py

    from synthtext.evaluation import (
        best_offset_correlation,
        ground_truth_opening,
        measure,
        mouth_opening,
        video_metrics,
    )
    from synthtext.infer import generate_frames, resize_frames

    size = model.cfg.image_size
    rows: list[dict] = []
    first_frames: dict[str, np.ndarray] = {}  # a neutral clip is the reference of all its actor's clips
    for index, path in enumerate(tqdm(files, desc=desc, unit="clip")):
        clip, real, audio, fps, rate = _clip_inputs(path, seconds, size)
        ref_file = references.get(path, path)
        if ref_file not in first_frames:
            with h5py.File(ref_file, "r") as f:
                first_frames[ref_file] = f["video"][0]
        reference = first_frames[ref_file]
        real_m = measure(real, measurer)
        row = {"clip": clip.attrs["clip_id"], "emotion": clip.attrs["emotion"], "real": real, "audio": audio,
               "fps": fps, "sample_rate": rate, "videos": {}}
        videos = {}
        if with_baselines:
            videos["real"] = real
            videos["static"] = np.repeat(resize_frames(reference[None], size), len(real), axis=0)
        for emotion in EMOTIONS:
            videos[emotion] = generate_frames(model.generator, audio, rate, reference, emotion, seed)[:len(real)]
        truth = ground_truth_opening(source / f"{row['clip']}.json", len(real), fps) if source else None
        for name, frames in videos.items():
            measured = measure(frames, measurer)
            metrics = video_metrics(frames, real, measured, real_m, audio, rate, fps)
            if truth is not None:
                metrics["gt_opening_r"] = best_offset_correlation(mouth_opening(measured.landmarks), truth, 0)[0]
            if syncnet is not None:
                from synthtext.sync_metrics import lse

                metrics.update(lse(syncnet, frames, audio, rate))
            kept = index < keep or (keep_for_fid and name in ("static", row["emotion"]))
            row["videos"][name] = {"metrics": metrics, "predicted": evaluator.predict(measured.features)[0],
                                   "frames": frames if kept and name != "real" else None}
        if not (index < keep or keep_for_fid):
            row["real"] = row["audio"] = None
        rows.append(row)
    return {"rows": rows}


def reference_clips(files: list[str], kind: str) -> dict[str, str]:
    """The clip whose first frame is each clip's reference: a neutral clip of the same actor
    (``neutral``, as in training with ``reference: neutral``), or the clip itself (``clip``)."""
    from synthtext.clipfile import read_attrs

    if kind not in ("neutral", "clip"):
        raise SynthTextError(f"evaluate.reference must be neutral or clip, not {kind!r}")
    attrs = {f: read_attrs(f) for f in files}
    neutral = {}
    for f, a in sorted(attrs.items()):
        if a["emotion"] == "NEU":
            neutral.setdefault(str(a["actor"]), f)
    if kind == "clip":
        return {f: f for f in files}
    return {f: neutral.get(str(a["actor"]), f) for f, a in attrs.items()}


def summarise(rows: list[dict], kind: str) -> dict:
    """The metrics table of one column (generated / static / real) over all clips.

    Image and motion metrics compare the clip's own emotion condition with the real clip; sync and
    ground-truth correlation average over every emotion condition; emotion accuracy scores the
    evaluator's answer against the condition (the clip's own emotion for real).
    """
    own, every, hits = [], [], []
    for row in rows:
        if kind == "generated":
            own.append(row["videos"][row["emotion"]]["metrics"])
            for emotion in EMOTIONS:
                every.append(row["videos"][emotion]["metrics"])
                hits.append(row["videos"][emotion]["predicted"] == emotion)
        elif kind == "static":
            video = row["videos"]["static"]
            own.append(video["metrics"])
            every.append(video["metrics"])
            hits.extend(video["predicted"] == emotion for emotion in EMOTIONS)
        else:
            video = row["videos"]["real"]
            own.append(video["metrics"])
            every.append(video["metrics"])
            hits.append(video["predicted"] == row["emotion"])
    mean = lambda items, key: float(np.nanmean([m[key] for m in items if key in m])) \
        if any(key in m for m in items) else None  # noqa: E731
    table = {key: mean(own, key) for key in ("psnr", "ssim", "psnr_mouth", "ssim_mouth", "m_lmd", "f_lmd")}
    for key in ("sync_r", "sync_offset", "gt_opening_r", "face_found", "lse_d", "lse_c", "lse_offset"):
        table[key] = mean(every, key)
    table["emotion_accuracy"] = float(np.mean(hits))
    return {k: v for k, v in table.items() if v is not None}


def add_fid(table: dict, rows: list[dict], inception: Path, champion_rows: list[dict] | None = None) -> None:
    """FID of the generated (own emotion) and static frames (and the champion's) against the real frames
    of the same clips."""
    from synthtext.sync_metrics import frechet_distance, inception_features, load_inception

    net = load_inception(inception)
    real = inception_features(net, np.concatenate([r["real"] for r in rows]))
    own = lambda r: r["videos"][r["emotion"]]["frames"]  # noqa: E731
    columns = [("generated", rows, own), ("static", rows, lambda r: r["videos"]["static"]["frames"])]
    if champion_rows is not None:
        columns.append(("champion", champion_rows, own))
    for kind, source, pick in columns:
        table[kind]["fid"] = frechet_distance(inception_features(net, np.concatenate([pick(r) for r in source])), real)
    table["real"]["fid"] = 0.0


def per_emotion_accuracy(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for emotion in EMOTIONS:
        generated = [r["videos"][emotion]["predicted"] == emotion for r in rows]
        real = [r["videos"]["real"]["predicted"] == emotion for r in rows if r["emotion"] == emotion]
        out[emotion] = {"generated": float(np.mean(generated)), "real": float(np.mean(real)) if real else None}
    return out


@flow(name="evaluate")
def evaluate_flow(repo: str, params: dict) -> dict:
    """The evaluate stage: metrics, plots, report, promotion. Returns the metrics written."""
    import mlflow

    from flows.train import read_split, write_confusion, write_csv_atomic
    from synthtext import promote, tracking
    from synthtext.evaluation import Measurer, confusion
    from synthtext.infer import load_generator
    from synthtext.landmarks import make_backend
    from synthtext.report import contact_sheet, sample_video, write_index

    root = Path(repo)
    settings = params.get("evaluate", {})
    gate = params.get("promote", {})
    seconds, seed = float(settings.get("seconds", 3.0)), int(settings.get("seed", 0))
    clips, splits = root / "data/processed/clips", root / "data/processed/splits"
    train_files, val_files = read_split(splits, clips, "train"), read_split(splits, clips, "val")
    if settings.get("max_clips"):
        val_files = val_files[:int(settings["max_clips"])]
    references = reference_clips(val_files, settings.get("reference", "neutral"))
    model = load_generator(root / "models/generator")
    measurer = Measurer(make_backend(model.preprocess["landmark_backend"]), int(model.preprocess["size"]))
    source = root / params["data"]["source"]
    syncnet = None
    if settings.get("syncnet_weights"):
        from synthtext.sync_metrics import load_syncnet

        syncnet = load_syncnet(root / settings["syncnet_weights"])
    evaluator = train_evaluator(train_files, measurer, model.cfg.image_size, seconds, seed)
    picked = int(settings.get("sample_clips", 3))
    fid = bool(settings.get("inception"))
    result = evaluate_clips(val_files, references, model, measurer, evaluator, seconds, seed, True, source,
                            "evaluate: candidate", syncnet, keep=picked, keep_for_fid=fid)
    rows = result["rows"]
    table = {kind: summarise(rows, kind) for kind in BASELINES}

    tracking.setup(root)
    name = tracking.MODEL_NAMES["generator"]
    candidate, champion = promote.registry_state(name)
    if candidate is None:
        raise SynthTextError(f"no {name}@candidate in the registry: run the train_gan stage first")
    if mlflow.get_run(candidate.run_id).data.tags.get("model_md5") != model.md5:
        raise SynthTextError(f"{name}@candidate (v{candidate.version}) is not models/generator: dvc repro train_gan")
    champion_table = None
    if champion is not None and champion.version != candidate.version:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(mlflow.artifacts.download_artifacts(champion.source, dst_path=scratch))
            previous = load_generator(folder)
            other = evaluate_clips(val_files, references, previous, measurer, evaluator, seconds, seed, False, source,
                                   f"evaluate: champion v{champion.version}", syncnet, keep_for_fid=fid)
        champion_table = summarise(other["rows"], "generated")
        table["champion"] = champion_table
    if settings.get("inception"):
        add_fid(table, rows, root / settings["inception"], other["rows"] if champion_table else None)
    if champion is not None and champion.version == candidate.version:
        decision = promote.Decision(promote=True, reasons=[f"v{candidate.version} is the champion already"])
    else:
        decision = promote.decide(table["generated"], table["static"], champion_table,
                                  list(gate.get("metrics", ["sync_r", "emotion_accuracy"])),
                                  float(gate.get("margin", 0.0)), bool(gate.get("against_static", True)))
    promotion = {"promoted": decision.promote, "candidate_version": int(candidate.version),
                 "champion_version_before": int(champion.version) if champion else None,
                 "reasons": decision.reasons}

    reports = root / "reports"
    scratch_reports = reports.with_name(".reports.tmp")
    shutil.rmtree(scratch_reports, ignore_errors=True)
    scratch_reports.mkdir(parents=True)
    for emotion in EMOTIONS:
        samples = [{"real": r["real"], "static": r["videos"]["static"]["frames"],
                    "generated": r["videos"][emotion]["frames"], "audio": r["audio"], "fps": r["fps"],
                    "sample_rate": r["sample_rate"]} for r in rows[:picked]]
        sample_video(samples, emotion, scratch_reports / f"emotion_{emotion}.mp4")
        contact_sheet(samples, scratch_reports / f"emotion_{emotion}.png")
    evaluator.save(scratch_reports / "evaluator.json")
    actual = [e for r in rows for e in EMOTIONS]
    predicted = [r["videos"][e]["predicted"] for r in rows for e in EMOTIONS]
    matrix = confusion(actual, predicted)
    per_emotion = per_emotion_accuracy(rows)
    about = {"model": f"{name} v{candidate.version} (models/generator, md5 {model.md5[:12]})",
             "validation clips": len(rows), "seconds per clip": seconds,
             "evaluator": f"trained on {len(train_files)} real training clips"}
    write_index(scratch_reports, table, promotion, per_emotion, matrix, about)

    with mlflow.start_run(experiment_id=tracking.setup(root), run_name="evaluate") as run:
        mlflow.set_tags({"stage": "evaluate", **tracking.git_state(root), "candidate_version": candidate.version,
                         "promotion": "promoted" if decision.promote else "refused",
                         "promotion_reasons": "; ".join(decision.reasons)[:5000]})
        mlflow.log_params(tracking.flatten({"evaluate": settings, "promote": gate}))
        for kind, values in table.items():
            mlflow.log_metrics({f"{kind}.{k}": v for k, v in values.items() if np.isfinite(v)})
        mlflow.log_artifacts(str(scratch_reports), "report")
        mlflow.log_dict(promotion, "promotion.json")
        promote.apply(name, candidate.version, decision, table["generated"])
        run_id = run.info.run_id
    shutil.rmtree(reports, ignore_errors=True)
    scratch_reports.rename(reports)

    metrics = {**table, "promotion": {k: v for k, v in promotion.items() if k != "reasons"},
               "evaluate_run_id": run_id}
    write_json_atomic(root / "metrics/evaluate.json", metrics)
    write_csv_atomic(root / "metrics/evaluate_per_emotion.csv",
                     [["emotion", "generated", "real", "static"],
                      *([e, round(per_emotion[e]["generated"], 4), round(per_emotion[e]["real"] or 0, 4),
                         round(1 / len(EMOTIONS), 4)] for e in EMOTIONS)])
    write_confusion(root / "metrics/evaluate_confusion.csv", matrix.tolist())
    return metrics
