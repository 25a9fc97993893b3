"""Stage align: converted clips -> data/processed/clips/<clip>.h5, align_report.json, align_preview.png,
metrics/align.json."""

from stages import main
from synthtext.ops.config import Params


def stage(params: Params) -> str:
    from flows.align import run  # here: the worker processes (spawned) import this module, and need no Prefect

    fan = run("data/interim/fps25", "data/processed/clips", "data/processed/align_report.json",
              "metrics/align.json", params.align, params.runner,
              preview_path="data/processed/align_preview.png")
    return fan.summary("align")


if __name__ == "__main__":
    main(stage)
