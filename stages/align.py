"""Stage align: converted clips -> data/processed/clips/<clip>.h5, align_report.json, align_preview.png,
metrics/align.json."""

from stages import main


def stage(params: dict) -> str:
    from flows.align import run
    from synthtext.params import section

    fan = run("data/interim/fps25", "data/processed/clips", "data/processed/align_report.json",
              "metrics/align.json", section(params, "align"), params.get("runner", {}),
              preview_path="data/processed/align_preview.png")
    return fan.summary("align")


if __name__ == "__main__":
    main(stage)
