"""Stage demo_clips: generate the small CREMA-D-format input used by `make demo` and the tests."""

from stages import main


def stage(params: dict) -> str:
    from flows.demo_clips import demo_clips_flow
    from synthtext.params import section

    cfg = section(params, "demo")
    paths = demo_clips_flow(cfg["out"], cfg["actors"], cfg["clips_per_actor"], cfg["seconds"], cfg["seed"])
    return f"demo_clips: {len(paths)} clips written to {cfg['out']}"


if __name__ == "__main__":
    main(stage)
