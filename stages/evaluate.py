"""Stage evaluate (flows/evaluate.py): metrics with baselines, reports/index.html, the promotion gate."""

from stages import ROOT, main


def stage(params: dict) -> str:
    from flows.evaluate import evaluate_flow

    metrics = evaluate_flow(str(ROOT), params)
    gen, static = metrics["generated"], metrics["static"]
    promoted = metrics["promotion"]
    verdict = "promoted to champion" if promoted["promoted"] else "not promoted"
    return (f"evaluate: emotion accuracy {gen['emotion_accuracy']:.3f} (static {static['emotion_accuracy']:.3f}, "
            f"real {metrics['real']['emotion_accuracy']:.3f}), sync r {gen['sync_r']:.3f} (static "
            f"{static['sync_r']:.3f}, real {metrics['real']['sync_r']:.3f}); "
            f"v{promoted['candidate_version']} {verdict}; report: reports/index.html")


if __name__ == "__main__":
    main(stage)
