"""Stage evaluate (flows/evaluate.py): metrics with baselines and held-out photos, reports/index.html,
the promotion gate."""

from dataclasses import asdict

from flows.evaluate import evaluate_flow
from stages import ROOT, main
from synthtext.evaluation.report import summary
from synthtext.ops.config import Params


def stage(params: Params) -> str:
    return summary(evaluate_flow(str(ROOT), asdict(params.evaluate), asdict(params.promote), params.data.source))


if __name__ == "__main__":
    main(stage)
