"""Flows for the three training stages: data lists in, MLflow run with lineage tags, training
(in-process or under torchrun), model folder out, registered model version with alias ``candidate``.
The steps are ``synthtext.model.train.stage``'s; this wires them."""

from __future__ import annotations

from prefect import flow, task

from synthtext.model.train import stage as steps
from synthtext.ops import tracking
from synthtext.ops.files import write_json_atomic


@task(name="train")
def train_task(spec: dict, nproc: int) -> dict:
    """Train in this process, or in ``nproc`` processes under torchrun (DDP)."""
    return steps.train(spec, nproc)


@flow(name="train-stage")
def train_stage_flow(stage: str, repo: str, params: dict, compute: dict, paths: dict) -> dict:
    """One training stage as one MLflow run. ``params`` and ``compute``: ``as_dict`` of the stage's TrainParams
    and of ComputeParams. ``paths``: clips, splits, out_dir, ckpt_dir, metrics, plots, and emotion_dir /
    generator_dir where the stage starts from earlier models."""
    setup = steps.prepare(stage, repo, params, compute, paths)
    killed = tracking.close_killed_runs(setup.experiment, stage)
    with tracking.stage_run(setup.root, setup.experiment, stage) as run:
        spec = steps.start(run, setup, killed)
        metrics = train_task(spec, setup.compute.nproc)
        summary = steps.finish(run, setup, metrics)
    write_json_atomic(setup.root / paths["metrics"], summary)
    return summary
