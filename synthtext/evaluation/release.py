"""A release that reproduces: the committed ``dvc.lock`` and ``metrics/`` are what ``make demo`` on a
clean clone produces, and the README's model table is written from those metrics.

``python -m synthtext.evaluation.release check COMMITTED_LOCK COMMITTED_METRICS`` (``.ci/run``, after ``make
demo``) compares the run's ``dvc.lock`` and ``metrics/evaluate.json`` with the committed copies:

- every model output (``models/...``) with the same hash: the release reproduced bit for bit;
- otherwise every figure of ``evaluate.json`` within its tolerance (``TOLERANCE``). The operation
  that may legitimately differ between machines is PyTorch's CPU matrix multiply and convolution
  (oneDNN and the BLAS pick AVX-512, AVX2 or AMX kernels by CPU, which sum in different orders): the
  last bits of a training step differ, and some thousand steps carry them into the weights.

``python -m synthtext.evaluation.release table`` rewrites the README's model table (between its two markers)
from ``metrics/evaluate.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from synthtext.evaluation.table import figure_text as _fig
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_text_atomic

ROOT = Path(__file__).resolve().parents[2]
# Tolerances for figures that machines may differ on: absolute for accuracies (two of the 18 held-out
# videos read differently: 0.112), for shares and correlations, relative for the rest.
TOLERANCE = {"accuracy": 0.12, "absolute": 0.06, "relative": 0.08}
ABSOLUTE_KEYS = ("accuracy", "sync_r", "identity", "kept", "redetected", "found", "ssim", "share", "lift",
                 "probability", "gt_opening_r")
SKIPPED_KEYS = ("evaluate_run_id", "candidate_version", "champion_version_before", "blink_ms", "read")
# Figures that depend on the machine's folders, not on the model: the real clips of ../shared/realdata
# (absent on a user's machine) and the pass/fail lists built from them.
MACHINE_KEYS = ("calibration", "liveliness.real", "targets")
TABLE_START = "<!-- model-table: start (python -m synthtext.evaluation.release table) -->"
TABLE_END = "<!-- model-table: end -->"


def model_hashes(lock: Path) -> dict[str, str]:
    """Output path -> md5 of every model folder in a ``dvc.lock`` (not the training checkpoints, which
    also hold state that is not the model's: two clean runs on one machine made the same models and
    different pretrain_generator checkpoints)."""
    data = yaml.safe_load(lock.read_text()) or {}
    return {out["path"]: out.get("md5", "") for stage in data.get("stages", {}).values()
            for out in stage.get("outs", []) if str(out.get("path", "")).startswith("models/")
            and not str(out.get("path", "")).startswith("models/checkpoints")}


def _leaves(data, prefix: str = "") -> dict[str, float]:
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key not in SKIPPED_KEYS:
                out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, bool) or not isinstance(data, (int, float)):
        return {}
    return {prefix: float(data)}


def compare_metrics(ours: dict, theirs: dict) -> list[str]:
    """Figures of ``ours`` outside their tolerance of ``theirs`` (and figures only one side has)."""
    a, b = ({k: v for k, v in _leaves(side).items() if not any(part in k for part in MACHINE_KEYS)}
            for side in (ours, theirs))
    problems = [f"{k}: only in {'this run' if k in a else 'the committed metrics'}"
                for k in sorted(a.keys() ^ b.keys())]
    for key in sorted(a.keys() & b.keys()):
        x, y = a[key], b[key]
        absolute = any(word in key for word in ABSOLUTE_KEYS)
        limit = TOLERANCE["accuracy"] if "accuracy" in key else TOLERANCE["absolute"] if absolute else \
            TOLERANCE["relative"] * max(abs(y), 1e-9)
        if abs(x - y) > limit + 1e-12:
            problems.append(f"{key}: {x:.4g} here, {y:.4g} committed (tolerance {limit:.3g})")
    return problems


def check(committed_lock: Path, committed_metrics: Path, lock: Path = ROOT / "dvc.lock",
          metrics: Path = ROOT / "metrics") -> str:
    """What reproduced; raises ``SynthTextError`` with every difference when the release did not."""
    ours, theirs = model_hashes(lock), model_hashes(committed_lock)
    if not theirs:
        raise SynthTextError(f"{committed_lock} records no model outputs: commit the dvc.lock of a `make demo` run")
    differ = [p for p in theirs if ours.get(p) != theirs[p]]
    if not differ:
        return f"reproduced bit for bit: {', '.join(f'{p} {h[:10]}' for p, h in sorted(ours.items()))}"
    mine, committed = metrics / "evaluate.json", committed_metrics / "evaluate.json"
    for path in (mine, committed):
        if not path.is_file():
            raise SynthTextError(f"{path} is missing: run `make demo` (and commit its metrics/)")
    problems = compare_metrics(json.loads(mine.read_text()), json.loads(committed.read_text()))
    if problems:
        raise SynthTextError("the release does not reproduce: models differ from dvc.lock "
                             f"({', '.join(differ)}) and these figures are outside their tolerance:\n  "
                             + "\n  ".join(problems))
    return (f"models differ from dvc.lock in their last bits ({', '.join(differ)}; PyTorch's CPU kernels differ "
            f"by machine) and every figure of evaluate.json is within tolerance ({TOLERANCE})")


def model_table(metrics: dict) -> str:
    """The README's table: the headline figures, each with its target and pass or fail, from evaluate.json."""
    rows = ["| figure | value | target | |", "|---|---|---|---|"]
    names = {"generated": "validation", "heldout_face": "held-out, 256 px", "heldout_photo": "held-out, pasted back"}
    for column, checks in metrics.get("targets", {}).items():
        for name, c in checks.items():
            rows.append(f"| own evaluator: {name} ({names.get(column, column)}) | {_fig(c['value'])} | "
                        f"{_fig(c['target'])} | {'pass' if c['pass'] else 'FAIL'} |")
    judged = metrics.get("outside_judge") or {}
    cal = judged.get("calibration", {})
    if cal.get("present"):
        rows.append(f"| outside judge: accuracy on the real actor | {_fig(cal['accuracy'])} | | |")
    for column in ("heldout_face", "heldout_photo"):
        if column in judged:
            rows.append(f"| outside judge: accuracy ({names[column]}) | {_fig(judged[column]['accuracy'])} | | |")
            for name, c in judged.get("targets", {}).get(column, {}).items():
                rows.append(f"| outside judge: {name} ({names[column]}) | {_fig(c['value'])} | {_fig(c['target'])} | "
                            f"{'pass' if c['pass'] else 'FAIL'} |")
    for video, checks in (metrics.get("liveliness") or {}).get("targets", {}).items():
        for name, c in checks.items():
            value = c["value"] if not isinstance(c["value"], list) else ", ".join(f"{v:.0f}" for v in c["value"])
            rows.append(f"| liveliness: {name} ({video}) | {_fig(value)} | {_fig(c['target'])} | "
                        f"{'pass' if c['pass'] else 'FAIL'} |")
    return "\n".join(rows)


def write_table(readme: Path = ROOT / "README.md", metrics: Path = ROOT / "metrics" / "evaluate.json") -> None:
    text = readme.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise SynthTextError(f"{readme} has no model table markers ({TABLE_START} ... {TABLE_END})")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    table = model_table(json.loads(metrics.read_text()))
    write_text_atomic(readme, f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthtext.evaluation.release",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="compare this run's dvc.lock and metrics with the committed ones")
    c.add_argument("committed_lock", type=Path)
    c.add_argument("committed_metrics", type=Path)
    sub.add_parser("table", help="rewrite README.md's model table from metrics/evaluate.json")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            print(check(args.committed_lock, args.committed_metrics))
        else:
            write_table()
            print("README.md: model table written from metrics/evaluate.json")
    except SynthTextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
