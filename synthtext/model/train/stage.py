"""One training stage around the training itself (``flows.train`` wires these steps): the stage's inputs
and lineage record, its MLflow run's tags and params, the training process's spec, training in this
process or under torchrun, and afterwards the plots, sample video, preprocess file and registered model."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class Stage:
    """A training stage's settings and inputs, read before its run starts."""

    name: str
    root: Path
    paths: dict  # clips, splits, out_dir, ckpt_dir, metrics, plots, and emotion_dir / generator_dir
    params: TrainParams
    compute: ComputeParams
    train_files: list[str]
    val_files: list[str]
    experiment: str
    record: dict  # the lineage record (``synthtext.ops.lineage``)

    @property
    def input_tags(self) -> dict[str, str]:
        return {f"input.{k}": v for k, v in self.record["inputs"].items() if v}

    @property
    def out_dir(self) -> Path:
        return self.root / self.paths["out_dir"]


def prepare(name: str, repo: str, params: dict, compute: dict, paths: dict) -> Stage:
    """``params`` and ``compute``: ``as_dict`` of the stage's TrainParams and of ComputeParams."""
    root = Path(repo)
    compute_params = ComputeParams.from_dict(compute)
    train_params = TrainParams.from_dict({**params, "device": compute_params.device}, name)
    clips, splits = root / paths["clips"], root / paths["splits"]
    train_files, val_files = read_split(splits, clips, "train"), read_split(splits, clips, "val")
    experiment = tracking.setup(root)
    inputs = [paths["clips"], paths["splits"], *(paths[k] for k in ("emotion_dir", "generator_dir") if k in paths)]
    # The lineage record, from dvc.lock as the upstream stages left it: its input hashes tag the run
    # and identify checkpoints.
    record = lineage_record.record(root, name, load_params(root / "params.yaml"), inputs,
                                   [Path(f).stem for f in train_files])
    return Stage(name, root, paths, train_params, compute_params, train_files, val_files, experiment, record)


def start(run: tracking.StageRun, stage: Stage, killed: list[str]) -> dict:
    """Tag the run (git state, inputs, the killed runs it resumes) and log its params; -> the training
    process's spec."""
    run.tags({**tracking.git_state(stage.root), **stage.input_tags})
    if killed:  # their history up to the checkpoint this run resumes from is logged again here
        run.tags({"resumes_killed_runs": ",".join(killed)})
    run.params(tracking.flatten({stage.name: stage.params.as_dict(), "compute": stage.compute.as_dict()}))
    return {"stage": stage.name, "params": stage.params.as_dict(), "train": stage.train_files, "val": stage.val_files,
            "out_dir": str(stage.out_dir), "ckpt_dir": str(stage.root / stage.paths["ckpt_dir"]),
            "tracking_uri": tracking.tracking_uri(stage.root), "run_id": run.id,
            "identity": {"params": stage.params.as_dict(), "train": stage.train_files, "code": training_code_version(),
                         **stage.input_tags},
            **{k: str(stage.root / stage.paths[k]) for k in ("emotion_dir", "generator_dir") if k in stage.paths}}


def train(spec: dict, nproc: int) -> dict:
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


def finish(run: tracking.StageRun, stage: Stage, metrics: dict) -> dict:
    """The stage's plots, sample video, preprocess file, lineage and registered model version, logged to
    the run; -> the stage's metrics summary."""
    root, paths, out_dir = stage.root, stage.paths, stage.out_dir
    history = metrics.pop("history", [])
    write_plots(root / paths["plots"], history)
    summary = {k: v for k, v in metrics.items() if k != "confusion"}
    if "confusion" in metrics:
        write_confusion(root / paths["plots"].replace(".csv", "_confusion.csv"), metrics["confusion"])
    if stage.name != "pretrain_emotion":
        with tempfile.TemporaryDirectory() as scratch:
            run.artifact(sample_video(stage.name, out_dir, stage.val_files or stage.train_files, Path(scratch)))
    run.artifact(root / paths["plots"])
    if stage.name != "pretrain_emotion":
        write_json_atomic(out_dir / "preprocess.json", face_preprocess(stage.train_files[0]))
    run.dict(stage.record, "lineage.json")
    run.tags({"raw_md5": stage.record["raw_md5"], "params_md5": stage.record["params_md5"]})
    kind = TRAINING_STAGES[stage.name].registers
    summary["model_md5"] = folder_md5(out_dir)
    if kind:
        summary["registered_version"] = int(tracking.register_folder(run.id, out_dir, kind))
        summary["registered_model"] = tracking.MODEL_NAMES[kind]
    summary["mlflow_run_id"] = run.id
    run.tags({"model_md5": summary["model_md5"]})
    return summary
