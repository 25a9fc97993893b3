"""Stage convert_fps: raw clips -> data/interim/fps25/<clip>.mp4 + .wav (+ sidecar, convert_report.json)."""

from stages import main


def stage(params: dict) -> str:
    from flows.convert_fps import run
    from synthtext.params import section

    fan = run(section(params, "data")["source"], "data/interim/fps25", section(params, "convert_fps"),
              params.get("runner", {}))
    return fan.summary("convert_fps")


if __name__ == "__main__":
    main(stage)
