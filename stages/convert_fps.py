"""Stage convert_fps: raw clips -> data/interim/fps25/<clip>.mp4 + .wav (+ sidecar, convert_report.json)."""

from stages import main
from synthtext.ops.config import Params


def stage(params: Params) -> str:
    from flows.convert_fps import run  # here: the worker processes (spawned) import this module, and need no Prefect

    fan = run(params.data.source, "data/interim/fps25", params.convert_fps, params.runner)
    return fan.summary("convert_fps")


if __name__ == "__main__":
    main(stage)
