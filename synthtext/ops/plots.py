"""The CSV files DVC draws as plots: loss curves and confusion matrices."""

from __future__ import annotations

from pathlib import Path

from synthtext import EMOTIONS
from synthtext.ops.files import write_csv_atomic


def write_plots(path: Path, history: list[dict]) -> None:
    """Loss curves as CSV (a DVC plot): one row per logged step."""
    keys = sorted({k for row in history for k in row} - {"step"})
    write_csv_atomic(path, [["step", *keys], *([row["step"], *(round(row[k], 6) if k in row else "" for k in keys)]
                                              for row in history)])


def write_confusion(path: Path, confusion: list[list[int]]) -> None:
    """Confusion matrix as actual/predicted rows (DVC's confusion plot template)."""
    rows = [[EMOTIONS[i], EMOTIONS[j]] for i, row in enumerate(confusion) for j, count in enumerate(row)
            for _ in range(count)]
    write_csv_atomic(path, [["actual", "predicted"], *rows])
