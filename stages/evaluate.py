"""Stage evaluate (flows/evaluate.py): metrics with baselines and held-out photos, reports/index.html,
the promotion gate."""


from flows.evaluate import evaluate_flow
from stages import ROOT, main
from synthtext.evaluation.report import summary
from synthtext.ops.config import Params


def stage(params: Params) -> str:
    return summary(evaluate_flow(str(ROOT), params.evaluate.as_dict(), params.promote.as_dict(), params.data.source))


if __name__ == "__main__":
    main(stage)
