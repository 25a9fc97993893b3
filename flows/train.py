"""Flows for the three training stages: data lists in, MLflow run with lineage tags, training
(in-process or under torchrun), model folder out, registered model version with alias ``candidate``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from prefect import flow, task

from synthtext.errors import SynthTextError
from synthtext.files import write_json_atomic, write_text_atomic
from synthtext.hashing import folder_md5
from synthtext.train.loop import TrainParams

MODEL_KIND = {"pretrain_emotion": "emotion", "pretrain_generator": None, "train_gan": "generator"}


def read_split(splits: Path, clips: Path, name: str) -> list[str]:
    path = splits / f"{name}.txt"
    if not path.is_file():
        raise SynthTextError(f"{path} not found: run the split stage first (dvc repro split)")
    files = [str(clips / f"{clip}.h5") for clip in path.read_text().split()]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise SynthTextError(f"{len(missing)} clips in {path} have no aligned file, e.g. {missing[0]}: dvc repro align")
    return files


def training_code_version() -> str:
    """Changes when the networks, losses, data windows or loop change: a checkpoint from other code is not resumed."""
    import synthtext.models.config
    import synthtext.models.discriminators
    import synthtext.models.generator
    import synthtext.train.data
    import synthtext.train.loop
    import synthtext.train.losses
    from synthtext.hashing import code_version

    return code_version(synthtext.models.config, synthtext.models.generator, synthtext.models.discriminators,
                        synthtext.train.data, synthtext.train.losses, synthtext.train.loop)


@task(name="train")
def train_task(spec: dict, nproc: int) -> dict:
    """Train in this process, or in ``nproc`` processes under torchrun (DDP)."""
    if nproc <= 1:
        from synthtext.train import worker

        return worker.run(spec)
    with tempfile.TemporaryDirectory() as scratch:
        spec_file = Path(scratch) / "spec.json"
        spec = {**spec, "result": str(Path(scratch) / "result.json")}
        spec_file.write_text(json.dumps(spec))
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               f"--nproc_per_node={nproc}", "-m", "synthtext.train.worker", str(spec_file)])
        if done.returncode != 0:
            raise RuntimeError(f"torchrun exited with {done.returncode}")
        return json.loads(Path(spec["result"]).read_text())


@flow(name="train-stage")
def train_stage_flow(stage: str, repo: str, params: dict, compute: dict, paths: dict) -> dict:
    """One training stage as one MLflow run. ``paths``: clips, splits, out_dir, ckpt_dir, metrics, plots,
    and emotion_dir / generator_dir where the stage starts from earlier models."""
    import mlflow

    from synthtext import lineage as lineage_record
    from synthtext import tracking
    from synthtext.params import load_params

    root = Path(repo)
    train_params = TrainParams(**{**params, "device": compute.get("device", "auto")})
    clips, splits = root / paths["clips"], root / paths["splits"]
    train_files, val_files = read_split(splits, clips, "train"), read_split(splits, clips, "val")
    experiment = tracking.setup(root)
    inputs = [paths["clips"], paths["splits"], *(paths[k] for k in ("emotion_dir", "generator_dir") if k in paths)]
    # The lineage record, from dvc.lock as the upstream stages left it: its input hashes tag the run
    # and identify checkpoints.
    record = lineage_record.record(root, stage, load_params(root / "params.yaml"), inputs,
                                   [Path(f).stem for f in train_files])
    input_tags = {f"input.{k}": v for k, v in record["inputs"].items() if v}
    with mlflow.start_run(experiment_id=experiment, run_name=stage) as active:
        mlflow.set_tags({"stage": stage, **tracking.git_state(root), **input_tags})
        mlflow.log_params(tracking.flatten({stage: asdict(train_params), "compute": compute}))
        spec = {"stage": stage, "params": asdict(train_params), "train": train_files, "val": val_files,
                "out_dir": str(root / paths["out_dir"]), "ckpt_dir": str(root / paths["ckpt_dir"]),
                "tracking_uri": tracking.tracking_uri(root), "run_id": active.info.run_id,
                "identity": {"params": asdict(train_params), "train": train_files, "code": training_code_version(),
                             **input_tags},
                **{k: str(root / paths[k]) for k in ("emotion_dir", "generator_dir") if k in paths}}
        metrics = train_task(spec, int(compute.get("nproc", 1)))
        history = metrics.pop("history", [])
        out_dir = root / paths["out_dir"]
        write_plots(root / paths["plots"], history)
        summary = {k: v for k, v in metrics.items() if k != "confusion"}
        if "confusion" in metrics:
            write_confusion(root / paths["plots"].replace(".csv", "_confusion.csv"), metrics["confusion"])
        if stage != "pretrain_emotion":
            with tempfile.TemporaryDirectory() as scratch:
                mlflow.log_artifact(str(render(stage, out_dir, val_files or train_files, Path(scratch))))
        mlflow.log_artifact(str(root / paths["plots"]))
        if stage != "pretrain_emotion":
            write_json_atomic(out_dir / "preprocess.json", face_preprocess(train_files[0]))
        mlflow.log_dict(record, "lineage.json")
        mlflow.set_tags({"raw_md5": record["raw_md5"], "params_md5": record["params_md5"]})
        kind = MODEL_KIND[stage]
        summary["model_md5"] = folder_md5(out_dir)
        if kind:
            summary["registered_version"] = int(tracking.register_folder(active.info.run_id, out_dir, kind))
            summary["registered_model"] = tracking.MODEL_NAMES[kind]
        summary["mlflow_run_id"] = active.info.run_id
        mlflow.set_tag("model_md5", summary["model_md5"])
    write_json_atomic(root / paths["metrics"], summary)
    return summary


def face_preprocess(clip_file: str) -> dict:
    """How the training clips' faces were prepared (from an aligned clip's attributes): inference
    prepares a photo the same way."""
    from synthtext.clipfile import read_attrs

    attrs = read_attrs(clip_file)
    return {"landmark_backend": attrs["landmark_backend"], "size": int(attrs["size"]),
            "align_mode": int(attrs["align_mode"]), "schema_version": int(attrs["schema_version"])}


def write_plots(path: Path, history: list[dict]) -> None:
    """Loss curves as CSV (a DVC plot): one row per logged step."""
    keys = sorted({k for row in history for k in row} - {"step"})
    write_csv_atomic(path, [["step", *keys], *([row["step"], *(round(row[k], 6) if k in row else "" for k in keys)]
                                              for row in history)])


def write_confusion(path: Path, confusion: list[list[int]]) -> None:
    """Confusion matrix as actual/predicted rows (DVC's confusion plot template)."""
    from synthtext import EMOTIONS

    rows = [[EMOTIONS[i], EMOTIONS[j]] for i, row in enumerate(confusion) for j, count in enumerate(row)
            for _ in range(count)]
    write_csv_atomic(path, [["actual", "predicted"], *rows])


def write_csv_atomic(path: Path, rows: list[list]) -> None:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    write_text_atomic(path, text.getvalue())


def render(stage: str, model_dir: Path, files: list[str], folder: Path) -> Path:
    """A sample mp4 (real | generated, with the clip's audio) of the first file, by the trained generator."""
    from synthtext.models import Generator
    from synthtext.train.loop import load_model
    from synthtext.train.sample import render_sample

    generator, _ = load_model(model_dir, Generator)
    return render_sample(generator, Path(files[0]), folder / f"{stage}_sample.mp4")
