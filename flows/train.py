"""Flows for the three training stages: data lists in, MLflow run with lineage tags, training
(in-process or under torchrun), model folder out, registered model version with alias ``candidate``."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from prefect import flow, task

from synthtext.data.clipfile import face_preprocess
from synthtext.data.split import read_split
from synthtext.model.train import worker
from synthtext.model.train.sample import sample_video
from synthtext.ops import lineage as lineage_record
from synthtext.ops import tracking
from synthtext.ops.codedeps import code_version
from synthtext.ops.config import TRAINING_STAGES, ComputeParams, TrainParams, load_params
from synthtext.ops.files import write_json_atomic
from synthtext.ops.hashing import folder_md5
from synthtext.ops.plots import write_confusion, write_plots


def training_code_version() -> str:
    """Changes when the networks, losses, data windows or loop change: a checkpoint from other code is not resumed."""
    return code_version("synthtext.model.train.worker")  # the training process's whole import closure


@task(name="train")
def train_task(spec: dict, nproc: int) -> dict:
    """Train in this process, or in ``nproc`` processes under torchrun (DDP)."""
    if nproc <= 1:
        return worker.run(spec)
    with tempfile.TemporaryDirectory() as scratch:
        spec_file = Path(scratch) / "spec.json"
        spec = {**spec, "result": str(Path(scratch) / "result.json")}
        spec_file.write_text(json.dumps(spec))
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               f"--nproc_per_node={nproc}", "-m", "synthtext.model.train.worker", str(spec_file)])
        if done.returncode != 0:
            raise RuntimeError(f"torchrun exited with {done.returncode}")
        return json.loads(Path(spec["result"]).read_text())


@flow(name="train-stage")
def train_stage_flow(stage: str, repo: str, params: dict, compute: dict, paths: dict) -> dict:
    """One training stage as one MLflow run. ``params`` and ``compute``: ``as_dict`` of the stage's TrainParams
    and of ComputeParams. ``paths``: clips, splits, out_dir, ckpt_dir, metrics, plots, and emotion_dir /
    generator_dir where the stage starts from earlier models."""
    root = Path(repo)
    compute_params = ComputeParams.from_dict(compute)
    train_params = TrainParams.from_dict({**params, "device": compute_params.device}, stage)
    clips, splits = root / paths["clips"], root / paths["splits"]
    train_files, val_files = read_split(splits, clips, "train"), read_split(splits, clips, "val")
    experiment = tracking.setup(root)
    inputs = [paths["clips"], paths["splits"], *(paths[k] for k in ("emotion_dir", "generator_dir") if k in paths)]
    # The lineage record, from dvc.lock as the upstream stages left it: its input hashes tag the run
    # and identify checkpoints.
    record = lineage_record.record(root, stage, load_params(root / "params.yaml"), inputs,
                                   [Path(f).stem for f in train_files])
    input_tags = {f"input.{k}": v for k, v in record["inputs"].items() if v}
    killed = tracking.close_killed_runs(experiment, stage)
    with tracking.stage_run(root, experiment, stage) as run:
        run.tags({**tracking.git_state(root), **input_tags})
        if killed:  # their history up to the checkpoint this run resumes from is logged again here
            run.tags({"resumes_killed_runs": ",".join(killed)})
        run.params(tracking.flatten({stage: train_params.as_dict(), "compute": compute_params.as_dict()}))
        spec = {"stage": stage, "params": train_params.as_dict(), "train": train_files, "val": val_files,
                "out_dir": str(root / paths["out_dir"]), "ckpt_dir": str(root / paths["ckpt_dir"]),
                "tracking_uri": tracking.tracking_uri(root), "run_id": run.id,
                "identity": {"params": train_params.as_dict(), "train": train_files, "code": training_code_version(),
                             **input_tags},
                **{k: str(root / paths[k]) for k in ("emotion_dir", "generator_dir") if k in paths}}
        metrics = train_task(spec, compute_params.nproc)
        history = metrics.pop("history", [])
        out_dir = root / paths["out_dir"]
        write_plots(root / paths["plots"], history)
        summary = {k: v for k, v in metrics.items() if k != "confusion"}
        if "confusion" in metrics:
            write_confusion(root / paths["plots"].replace(".csv", "_confusion.csv"), metrics["confusion"])
        if stage != "pretrain_emotion":
            with tempfile.TemporaryDirectory() as scratch:
                run.artifact(sample_video(stage, out_dir, val_files or train_files, Path(scratch)))
        run.artifact(root / paths["plots"])
        if stage != "pretrain_emotion":
            write_json_atomic(out_dir / "preprocess.json", face_preprocess(train_files[0]))
        run.dict(record, "lineage.json")
        run.tags({"raw_md5": record["raw_md5"], "params_md5": record["params_md5"]})
        kind = TRAINING_STAGES[stage].registers
        summary["model_md5"] = folder_md5(out_dir)
        if kind:
            summary["registered_version"] = int(tracking.register_folder(run.id, out_dir, kind))
            summary["registered_model"] = tracking.MODEL_NAMES[kind]
        summary["mlflow_run_id"] = run.id
        run.tags({"model_md5": summary["model_md5"]})
    write_json_atomic(root / paths["metrics"], summary)
    return summary


