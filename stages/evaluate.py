"""Stage evaluate (flows/evaluate.py): metrics with baselines and held-out photos, reports/index.html,
the promotion gate."""

from stages import ROOT, main


def stage(params: dict) -> str:
    from flows.evaluate import evaluate_flow
    from synthtext.report import summary

    return summary(evaluate_flow(str(ROOT), params))


if __name__ == "__main__":
    main(stage)
