"""The promotion gate: a candidate generator becomes ``champion`` only when it beats the current
champion on the metrics named in params (by a margin) and is not worse than the static baseline."""

from __future__ import annotations

from dataclasses import dataclass, field

from synthtext.errors import SynthTextError

# Which way is better for each metric the gate may name.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "psnr_mouth": True, "ssim_mouth": True, "sync_r": True,
                    "emotion_accuracy": True, "gt_opening_r": True, "lse_c": True, "m_lmd": False, "f_lmd": False,
                    "lse_d": False, "fid": False}


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def _better(metric: str, a: float, b: float, margin: float) -> bool:
    """``a`` better than ``b`` by at least ``margin``."""
    return a >= b + margin if HIGHER_IS_BETTER[metric] else a <= b - margin


def decide(candidate: dict, static: dict, champion: dict | None, metrics: list[str], margin: float = 0.0,
           against_static: bool = True) -> Decision:
    """Compare metric tables (name -> value). Every named metric must be at least as good as the static
    baseline, and better than the champion's by ``margin``; any failure refuses the promotion."""
    unknown = [m for m in metrics if m not in HIGHER_IS_BETTER]
    if unknown or not metrics:
        raise SynthTextError(f"promote.metrics {unknown or metrics}: name some of {', '.join(HIGHER_IS_BETTER)}")
    decision = Decision(promote=True)
    for metric in metrics:
        value = candidate.get(metric)
        if value is None:
            decision.promote = False
            decision.reasons.append(f"{metric}: not measured for the candidate")
            continue
        word = "higher" if HIGHER_IS_BETTER[metric] else "lower"
        if against_static:
            ok = _better(metric, value, static[metric], 0.0)
            decision.promote &= ok
            decision.reasons.append(f"{metric}: candidate {value:.4f} {'>=' if ok else '<'} static baseline "
                                    f"{static[metric]:.4f} ({word} is better)" if HIGHER_IS_BETTER[metric] else
                                    f"{metric}: candidate {value:.4f} {'<=' if ok else '>'} static baseline "
                                    f"{static[metric]:.4f} ({word} is better)")
        if champion is not None and champion.get(metric) is None:
            decision.reasons.append(f"{metric}: the champion has no value to compare with")
        elif champion is not None:
            ok = _better(metric, value, champion[metric], margin)
            decision.promote &= ok
            need = champion[metric] + margin if HIGHER_IS_BETTER[metric] else champion[metric] - margin
            sign = ">=" if HIGHER_IS_BETTER[metric] else "<="
            decision.reasons.append(f"{metric}: candidate {value:.4f} vs champion {champion[metric]:.4f} "
                                    f"(needs {sign} {need:.4f}): {'passes' if ok else 'does not beat it'}")
    if champion is None:
        decision.reasons.append("no champion yet")
    return decision


def registry_state(name: str) -> tuple[object | None, object | None]:
    """(candidate version, champion version) of a registered model; None where the alias is unset."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found = []
    for alias in ("candidate", "champion"):
        try:
            found.append(client.get_model_version_by_alias(name, alias))
        except MlflowException:
            found.append(None)
    return found[0], found[1]


def apply(name: str, version: str, decision: Decision, metrics: dict) -> None:
    """Record the evaluation on the model version; move ``champion`` to it when promoted."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for key, value in metrics.items():
        client.set_model_version_tag(name, version, f"eval.{key}", f"{value:.6g}")
    client.set_model_version_tag(name, version, "promotion", "promoted" if decision.promote else "refused")
    client.set_model_version_tag(name, version, "promotion_reasons", "; ".join(decision.reasons)[:5000])
    if decision.promote:
        client.set_registered_model_alias(name, "champion", version)
