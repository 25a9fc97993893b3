"""Speed, accuracy and memory of convert_fps and align against the per-frame-detection baseline.

    python benchmarks/bench_align.py DIR [--size 128] [--baseline-clips N]

DIR holds raw clips (e.g. ../shared/realdata/crema-d or data/raw/demo). Everything runs on one
core (OpenCV threads off) so the figures are per core. Prints seconds per clip and frames per
second for conversion, tracked alignment and the baseline (detect on every raw frame, align, then
detect again on the aligned crop), the mean landmark difference between the two at the crop size,
and the peak memory of an align worker after the first clip and after all of them.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthtext.data import media  # noqa: E402
from synthtext.data.align import align_clip, baseline_landmarks  # noqa: E402
from synthtext.data.clipfile import read_clip  # noqa: E402
from synthtext.data.convert import convert_clip, outputs  # noqa: E402
from synthtext.data.landmarks import make_backend  # noqa: E402
from synthtext.data.naming import find_videos, parse_clip_name  # noqa: E402
from synthtext.ops.config import AlignParams, ConvertParams  # noqa: E402
from synthtext.ops.errors import ClipRejected  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--baseline-clips", type=int, default=4, help="clips to run the slow baseline on")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    params = AlignParams(size=args.size)
    backend = make_backend(params.backend, params.detect_upsample)
    rows, rss = [], []
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        for src in find_videos(args.dir):
            try:
                name = parse_clip_name(src)
                started = time.perf_counter()
                record = convert_clip(src, out, name.clip_id, ConvertParams(), "-", "-")
                t_convert = time.perf_counter() - started
                mp4, wav, _ = outputs(out, name.clip_id)
                started = time.perf_counter()
                stats = align_clip(name, mp4, wav, out / f"{name.clip_id}.h5", backend, params, 25, "-", "-")
                t_align = time.perf_counter() - started
            except ClipRejected as exc:
                print(f"{src.name}: skipped ({exc})")
                continue
            rss.append(peak_rss_mb())
            row = {"clip": name.clip_id, "frames": record["frames"], "convert": t_convert, "align": t_align,
                   "coverage": stats["frames_with_face"] / stats["frames"], "detections": stats["detections"]}
            if len(rows) < args.baseline_clips:
                started = time.perf_counter()
                base = baseline_landmarks(media.iter_frames(mp4), backend, params)
                row["baseline"] = time.perf_counter() - started
                ours = read_clip(out / f"{name.clip_id}.h5").landmarks
                row["diff_px"] = float(np.nanmean(np.linalg.norm(base - ours, axis=-1)))
            rows.append(row)
            print(f"{name.clip_id}: {row['frames']} frames, convert {t_convert:.2f}s, align {t_align:.2f}s"
                  + (f", baseline {row['baseline']:.2f}s, landmark diff {row['diff_px']:.2f}px"
                     if "baseline" in row else ""), flush=True)
    if not rows:
        sys.exit("no usable clips")
    frames = sum(r["frames"] for r in rows)
    based = [r for r in rows if "baseline" in r]
    base_frames = sum(r["frames"] for r in based)
    align_fps = frames / sum(r["align"] for r in rows)
    base_fps = base_frames / sum(r["baseline"] for r in based)
    print()
    print(f"clips: {len(rows)}, frames: {frames}, faces on {100 * np.mean([r['coverage'] for r in rows]):.1f}% "
          f"of frames, detector runs per clip: {np.mean([r['detections'] for r in rows]):.2f}")
    print(f"convert_fps : {np.mean([r['convert'] for r in rows]):.3f} s/clip, "
          f"{frames / sum(r['convert'] for r in rows):.0f} frames/s")
    print(f"align       : {np.mean([r['align'] for r in rows]):.3f} s/clip, {align_fps:.0f} frames/s")
    print(f"baseline    : {np.mean([r['baseline'] for r in based]):.3f} s/clip, {base_fps:.1f} frames/s "
          f"(per-frame detection, {len(based)} clips)")
    print(f"speed-up    : {align_fps / base_fps:.1f}x per core; mean landmark difference "
          f"{np.mean([r['diff_px'] for r in based]):.2f} px at {args.size} px")
    print(f"peak memory : {rss[0]:.0f} MB after the first clip, {rss[-1]:.0f} MB after {len(rows)} clips")


if __name__ == "__main__":
    main()
