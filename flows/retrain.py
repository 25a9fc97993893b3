"""Scheduled retraining: retrain only when the raw data or the params changed since the champion.

    python -m flows.retrain            # one run now (what the schedule does)
    python -m flows.retrain serve      # serve the deployment on its cron schedule (make serve)

When ``data.source`` or the pipeline params changed since the champion's training run
(``synthtext.ops.retraining``): ``dvc repro`` (evaluate and its gate included), then ``dvc push`` when
``retrain.push`` is set. Otherwise it does nothing and says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prefect import flow, get_run_logger, serve, task
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from synthtext.ops.config import Params, RetrainParams, load_params
from synthtext.ops.retraining import champion_state, changes, current_state, push, repro

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = "weekly-retrain"
# One retrain at a time: a run due while another goes waits (ENQUEUE); two never write dvc.lock together.
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


@task(name="dvc-repro")
def dvc_repro(repo: str) -> str:
    """The whole pipeline; stages that are up to date are skipped by DVC."""
    return repro(repo, get_run_logger().warning)  # WARNING: the level the project's Prefect logs show


@task(name="dvc-push")
def dvc_push(repo: str) -> str:
    return push(repo)


@flow(name="retrain")
def retrain(repo: str = str(ROOT), push: bool | None = None) -> dict:
    """Retrain, evaluate and gate when the raw data or params changed since the champion; else nothing."""
    root = Path(repo)
    params = load_params(root / "params.yaml")
    now = current_state(root, params)
    champion, about = champion_state(root)
    reasons = changes(now, champion)
    if not reasons:
        return {"action": "nothing", "reason": f"raw data and params unchanged since champion "
                                               f"v{about.get('version')} was trained", **now}
    dvc_repro(repo)
    evaluated = json.loads((root / "metrics" / "evaluate.json").read_text())
    result = {"action": "retrained", "reasons": reasons, **now, "promotion": evaluated.get("promotion", {})}
    if params.retrain.push if push is None else push:
        result["push"] = dvc_push(repo)
    return result


def schedule(retrain_params: RetrainParams) -> Cron:
    """The deployment's schedule, from the ``retrain`` section of params.yaml."""
    return Cron(retrain_params.cron, timezone=retrain_params.timezone)


def deployment(params: Params):
    """The ``weekly-retrain`` deployment: the schedule of params.yaml, one run at a time."""
    return retrain.to_deployment(name=DEPLOYMENT, schedules=[schedule(params.retrain)],
                                 parameters={"repo": str(ROOT)}, concurrency_limit=ONE_AT_A_TIME)


def main(argv: list[str]) -> None:
    params = load_params(ROOT / "params.yaml")
    if argv[:1] == ["serve"]:
        serve(deployment(params))
    else:
        print(json.dumps(retrain(str(ROOT)), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])  # python -m flows.retrain: the flows package (quiet Prefect logs) is imported first
