"""The promotion gate: a candidate generator becomes ``champion`` only when it beats the current
champion on the metrics named in params (by a margin), is not worse than the static baseline on
those and on SSIM, and keeps the identity of the people on the held-out photos. Directions come
from the one metric table, ``synthtext.evaluation.table.METRICS``.

MLflow is imported inside the functions that use it, not at the top: it takes seconds to import, and
most callers of this module never reach it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synthtext.evaluation.table import HELDOUT_COLUMNS, better, entries, metric
from synthtext.ops.errors import SynthTextError


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def _against_static(name: str, value: float, static: dict) -> tuple[bool, str]:
    entry = metric(name)
    if static.get(name) is None:
        return True, f"{name}: the static baseline has no value to compare with"
    ok = better(name, value, static[name])
    sign = {"higher": (">=", "<"), "lower": ("<=", ">"), "near0": ("|x| <=", "|x| >")}[entry.better][0 if ok else 1]
    way = "closer to 0" if entry.better == "near0" else entry.better
    return ok, f"{name}: candidate {value:.4f} {sign} static baseline {static[name]:.4f} ({way} is better)"


def decide(candidate: dict, static: dict, champion: dict | None, metrics: list[str], margin: float = 0.0,
           against_static: bool = True, static_floor: list[str] = (), heldout: dict[str, dict] | None = None,
           max_identity: float | None = None, outside: dict[str, float] | None = None,
           at_rest: dict[str, float] | None = None, real_identity: float | None = None,
           over_real: float | None = None) -> Decision:
    """Compare metric tables (name -> value). Every named metric must be at least as good as the static
    baseline (with ``against_static``, which also holds the ``static_floor`` metrics to it) and better
    than the champion's by ``margin``; with ``max_identity``, the median identity distance of each
    held-out column (``heldout``: column -> table) must not exceed it (``_check_identity``: with
    ``over_real``, against the real clips); with ``outside`` (held-out column ->
    the outside judge's accuracy, ``synthtext.evaluation.outside``) each must beat chance (1 in 6): an emotion a
    reader of real faces can't see is not shown. Any failure refuses."""
    known = [e.name for e in entries()]
    unknown = [m for m in [*metrics, *static_floor] if m not in known]
    if unknown or not metrics:
        raise SynthTextError(f"promote.metrics {unknown or metrics}: name some of {', '.join(known)}")
    decision = Decision(promote=True)
    for name in metrics:
        value = candidate.get(name)
        if value is None:
            decision.promote = False
            decision.reasons.append(f"{name}: not measured for the candidate")
            continue
        if against_static:
            ok, reason = _against_static(name, value, static)
            decision.promote &= ok
            decision.reasons.append(reason)
        if champion is not None and champion.get(name) is None:
            decision.reasons.append(f"{name}: the champion has no value to compare with")
        elif champion is not None:
            ok = better(name, value, champion[name], margin)
            decision.promote &= ok
            way = metric(name).better
            need = {"higher": f">= {champion[name] + margin:.4f}", "lower": f"<= {champion[name] - margin:.4f}",
                    "near0": f"|x| <= {abs(champion[name]) - margin:.4f}"}[way]
            decision.reasons.append(f"{name}: candidate {value:.4f} vs champion {champion[name]:.4f} "
                                    f"(needs {need}): {'passes' if ok else 'does not beat it'}")
    for name in static_floor if against_static else ():
        if name in metrics:
            continue
        if candidate.get(name) is None:
            decision.promote = False
            decision.reasons.append(f"{name}: not measured for the candidate")
            continue
        ok, reason = _against_static(name, candidate[name], static)
        decision.promote &= ok
        decision.reasons.append(reason)
    if max_identity is not None:
        _check_identity(decision, heldout or {}, max_identity, at_rest, real_identity, over_real)
    for column, accuracy in (outside or {}).items():
        ok = accuracy == accuracy and accuracy > OUTSIDE_CHANCE
        decision.promote &= ok
        decision.reasons.append(f"outside judge ({HELDOUT_COLUMNS.get(column, column)}): accuracy {accuracy:.4f} "
                                f"{'>' if ok else '<='} chance {OUTSIDE_CHANCE:.4f}")
    if champion is None:
        decision.reasons.append("no champion yet")
    return decision


OUTSIDE_CHANCE = 1 / 6


def _check_identity(decision: Decision, heldout: dict[str, dict], limit: float, at_rest: dict[str, float] | None,
                    real: float | None, over_real: float | None) -> None:
    """Each held-out column's median identity distance against ``limit``. With ``over_real`` (and the
    real validation clips' median distance from their own neutral frame, ``real``), the limit holds for
    the face at rest (``at_rest``: column -> the NEU videos' median), and the expressive videos may be
    as far from the photo as real people's expressions are from their neutral face, plus ``over_real``:
    the dlib descriptor moves with expression, and the real CREMA-D-style clips sit 0.44 from their
    own neutral frame, where 0.45 is the bar."""
    columns = [c for c in HELDOUT_COLUMNS if c in heldout]
    if not columns:
        decision.reasons.append("identity: no held-out photos were evaluated (evaluate.photos), not checked")
    expressive = limit
    if over_real is not None and real is not None and real == real:
        expressive = max(limit, real + over_real)
    for column in columns:
        where = HELDOUT_COLUMNS[column]
        checks = [("identity_median", heldout[column].get("identity_median"), expressive,
                   "promote.max_identity" if expressive == limit else
                   f"the real clips' {real:.4f} + promote.identity_over_real")]
        if over_real is not None and at_rest is not None:
            checks.insert(0, ("identity_median at rest (NEU)", at_rest.get(column), limit, "promote.max_identity"))
        for name, value, bound, source in checks:
            if value is None or value != value:  # NaN: no face found again in any frame
                decision.promote = False
                decision.reasons.append(f"{name} ({where}): no face found to compare")
                continue
            ok = value <= bound
            decision.promote &= ok
            decision.reasons.append(f"{name} ({where}): {value:.4f} {'<=' if ok else '>'} limit {bound:.4f} "
                                    f"({source}; lower is better)")


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
