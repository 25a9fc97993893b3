"""Run one training stage from a JSON spec: in-process, or in each process started by ``torchrun``.

    torchrun --standalone --nproc_per_node 2 -m synthtext.model.train.worker spec.json

Rank 0 logs metrics and images to the MLflow run named in the spec and writes the final metrics
to ``spec["result"]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist

from synthtext.model.train import loop
from synthtext.ops.config import TrainParams
from synthtext.ops.files import write_json_atomic
from synthtext.ops.tracking import log_metrics


def mlflow_logger(tracking_uri: str | None, run_id: str | None):
    """A ``log(step, metrics, images)`` that writes to an MLflow run (or nowhere)."""
    if not run_id:
        return lambda step, metrics, images: None
    # here, not at the top: MLflow takes seconds to import, and runs without tracking never need it
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)

    def log(step: int, metrics: dict[str, float], images: dict[str, np.ndarray]) -> None:
        log_metrics(client, run_id, metrics, step)  # one request per step: a tracking server may be far away
        for key, image in images.items():
            client.log_image(run_id, image, key=key, step=step)

    return log


def run(spec: dict) -> dict:
    params = TrainParams.from_dict(spec["params"], spec["stage"])
    train = [Path(p) for p in spec["train"]]
    val = [Path(p) for p in spec["val"]]
    log = mlflow_logger(spec.get("tracking_uri"), spec.get("run_id"))
    common = {"out_dir": Path(spec["out_dir"]), "ckpt_dir": Path(spec["ckpt_dir"]), "log": log,
              "identity": spec["identity"]}
    stage = spec["stage"]
    if stage == "pretrain_emotion":
        metrics = loop.train_emotion(params, train, val, **common)
    elif stage == "pretrain_generator":
        metrics = loop.train_generator(params, train, val, Path(spec["emotion_dir"]), **common)
    elif stage == "train_gan":
        metrics = loop.train_gan(params, train, val, Path(spec["generator_dir"]), Path(spec["emotion_dir"]), **common)
    else:
        raise ValueError(f"unknown stage {stage}")
    if metrics and spec.get("result"):
        write_json_atomic(spec["result"], metrics)
    return metrics


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    run(spec)

    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
