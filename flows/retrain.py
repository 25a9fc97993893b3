"""Scheduled retraining: retrain only when the raw data or the params changed since the champion.

    python -m flows.retrain            # one run now (what the schedule does)
    python -m flows.retrain serve      # serve the deployment on its cron schedule (make serve)

The flow compares the content hash of ``data.source`` and the hash of the pipeline params with what
the current champion's training run recorded; when something changed it runs ``dvc repro`` (the
pipeline, then ``evaluate`` and its promotion gate), then ``dvc push`` when ``retrain.push`` is set.
When nothing changed it does nothing and says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, serve, task
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from synthtext.ops.config import Params, RetrainParams, load_params
from synthtext.ops.errors import SynthTextError
from synthtext.ops.lineage import dvc_hash, load_for, pipeline_params_hash
from synthtext.ops.tracking import CHAMPION_URI

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = "weekly-retrain"
# One retrain at a time: a run that comes due while another is still going waits for it (ENQUEUE),
# so a slow retrain and the next scheduled one never train, write dvc.lock or promote together.
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def current_state(repo: Path, params: Params) -> dict:
    source = repo / params.data.source
    return {"raw_md5": dvc_hash(source) if source.exists() else "absent",
            "params_md5": pipeline_params_hash(params.raw)}


def champion_state(repo: Path) -> tuple[dict | None, dict]:
    try:
        record, about = load_for(CHAMPION_URI, repo)
    except SynthTextError:
        return None, {}
    return record, about


def changes(now: dict, champion: dict | None) -> list[str]:
    if champion is None:
        return ["there is no champion yet"]
    found = []
    if champion.get("raw_md5") != now["raw_md5"]:
        found.append(f"raw data changed ({champion.get('raw_md5')} -> {now['raw_md5']})")
    if champion.get("params_md5") != now["params_md5"]:
        found.append("params changed")
    return found


@task(name="dvc-repro")
def dvc_repro(repo: str) -> str:
    """The whole pipeline; stages that are up to date are skipped by DVC."""
    logger = get_run_logger()
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith(("Running stage", "evaluate:", "train_gan:", "align:")):
            logger.warning(line.rstrip())  # WARNING: the level the project's Prefect logs show
    if proc.wait() != 0:
        raise RuntimeError("dvc repro failed:\n" + "\n".join(lines[-30:]))
    return "\n".join(lines)


@task(name="dvc-push")
def dvc_push(repo: str) -> str:
    remotes = subprocess.run([sys.executable, "-m", "dvc", "remote", "list"], cwd=repo, capture_output=True,
                             text=True).stdout.strip()
    if not remotes:
        return "no DVC remote configured (dvc remote add -d NAME URL): nothing pushed"
    done = subprocess.run([sys.executable, "-m", "dvc", "push"], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc push failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "pushed"


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
