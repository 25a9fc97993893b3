"""Liveliness of talking-face videos: blinks, head motion and the open mouth (synthtext.evaluation.liveliness).

    python benchmarks/bench_liveliness.py VIDEO [VIDEO ...] [--real] [--still PHOTO ...] [--json OUT]

Prints one row per video: blinks a minute and their median length, the standard deviation of the
head's roll, yaw and pitch (degrees), the eye-centre jitter (thousandths of the inter-ocular distance
per frame^2), the number of open-mouth frames and, on those, the mouth's sharpness next to the face,
the share of teeth-bright pixels and its Lab L and a; then the milliseconds spent a frame. With
``--real`` every real clip of ../shared/realdata is measured too, and the table ends with their
median and range: the reference a generated video is read against. ``--still PHOTO`` measures a photo
held still for ``STILL_FRAMES`` frames with a little noise (sigma ``STILL_NOISE`` grey levels, seeded):
what the landmark detector alone makes of a face that does not move, the floor of the jitter and
head-spread figures on that face.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from synthtext.evaluation import liveliness  # noqa: E402

# (result key, column title, width, format); jitter is shown in thousandths
COLUMNS = [("blinks_per_min", "blink/min", 9, "{:.1f}"), ("blink_ms_median", "blink ms", 8, "{:.0f}"),
           ("roll_std_deg", "roll", 5, "{:.2f}"), ("yaw_std_deg", "yaw", 5, "{:.2f}"),
           ("pitch_std_deg", "pitch", 5, "{:.2f}"), ("jitter", "jit e-3", 7, "{:.1f}"),
           ("open_mouth_frames", "open", 4, "{:.0f}"), ("mouth_sharpness", "sharp", 5, "{:.2f}"),
           ("teeth_share", "teeth", 5, "{:.2f}"), ("mouth_L", "L", 4, "{:.0f}"), ("mouth_a", "a", 4, "{:.0f}")]
SCALE = {"jitter": 1000}
STILL_FRAMES, STILL_NOISE, STILL_FPS = 120, 2.0, 25.0


def cell(value, width: int, fmt: str, key: str) -> str:
    return ("-" if value is None else fmt.format(value * SCALE.get(key, 1))).rjust(width)


def row(name: str, values: dict, extra: str = "") -> str:
    return f"{name[:28]:28s} " + " ".join(cell(values.get(k), w, f, k) for k, _, w, f in COLUMNS) + extra


def measure(paths: list[Path]) -> dict[str, dict]:
    """Each video's measures, printed as they come, with the ms a frame they took."""
    results = {}
    for path in paths:
        started = time.perf_counter()
        result = liveliness.measure_file(path)
        ms = (time.perf_counter() - started) / result["frames"] * 1000
        result["ms_per_frame"] = ms
        results[str(path)] = result
        print(row(path.name, result, f" {result['frames']:5d} {result['seconds']:5.1f} {ms:6.1f}"), flush=True)
    return results


def measure_stills(paths: list[Path]) -> dict[str, dict]:
    """Each photo held still (``STILL_FRAMES`` frames, noise of ``STILL_NOISE``), measured as a video."""
    results = {}
    for path in paths:
        photo = np.asarray(Image.open(path).convert("RGB"), np.float32)
        noise = np.random.default_rng(0).normal(0, STILL_NOISE, (STILL_FRAMES, *photo.shape)).astype(np.float32)
        frames = np.clip(photo[None] + noise + 0.5, 0, 255).astype(np.uint8)
        started = time.perf_counter()
        result = liveliness.measure_video(frames, STILL_FPS)
        ms = (time.perf_counter() - started) / STILL_FRAMES * 1000
        results[f"still:{path}"] = {**result, "ms_per_frame": ms}
        print(row(f"still {path.name}", result, f" {STILL_FRAMES:5d} {STILL_FRAMES / STILL_FPS:5.1f} {ms:6.1f}"),
              flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", type=Path, nargs="*")
    parser.add_argument("--real", action="store_true", help="also measure the real clips of ../shared/realdata")
    parser.add_argument("--still", type=Path, nargs="+", default=[], metavar="PHOTO",
                        help="also measure photos held still: the landmark detector's own floor on each face")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()
    if not args.videos and not args.real and not args.still:
        parser.error("give videos to measure, --real, --still photos, or any of them")
    missing = [str(p) for p in args.still if not p.is_file()]
    if missing:
        parser.error(f"--still: no such photo: {', '.join(missing)}")
    real = liveliness.reference_clips() if args.real else []
    if args.real and not real:
        raise SystemExit(f"no real clips under {liveliness.REALDATA}")

    liveliness.default_backend()  # load the landmark model before any timing
    header = f"{'video':28s} " + " ".join(title.rjust(w) for _, title, w, _ in COLUMNS)
    print(header + f" {'frames':>5s} {'s':>5s} {'ms/fr':>6s}")
    results = measure(args.videos)
    results.update(measure_stills(args.still))
    summary = None
    if real:
        print("-- real clips " + "-" * (len(header) - 14))
        real_results = measure(real)
        summary = liveliness.summarize(list(real_results.values()))
        print(row("real: median", {k: v["median"] for k, v in summary.items()}))
        print(row("real: min", {k: v["min"] for k, v in summary.items()}))
        print(row("real: max", {k: v["max"] for k, v in summary.items()}))
        results.update(real_results)
    if args.json:
        args.json.write_text(json.dumps({"videos": results, "real_summary": summary}, indent=1))


if __name__ == "__main__":
    main()
