"""Stage align: converted clips -> data/processed/clips/<clip>.h5, align_report.json, align_preview.png,
metrics/align.json."""

from flows.align import run
from stages import main
from synthtext.config import Params


def stage(params: Params) -> str:
    fan = run("data/interim/fps25", "data/processed/clips", "data/processed/align_report.json",
              "metrics/align.json", params.align, params.runner,
              preview_path="data/processed/align_preview.png")
    return fan.summary("align")


if __name__ == "__main__":
    main(stage)
