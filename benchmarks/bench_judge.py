"""The outside judge (synthtext.evaluation.judge) on one real actor: its calibration table and its speed.

    python benchmarks/bench_judge.py [DIR]

DIR holds one actor's CREMA-D clips, one per emotion (default ../shared/realdata/expressions). Prints,
per clip, the judge's reading over the six emotions, its top emotion, the asked emotion's probability
and its lift over the neutral clip, the accuracy; then ms a frame for face detection + crop (every
``detect_every`` frames a detection), for the network alone, and for a whole ``read`` of decoded frames
(after a warm-up call; the figures are one run on a clip, so repeat on a busy machine).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from synthtext import EMOTIONS  # noqa: E402
from synthtext.data.media import iter_frames  # noqa: E402
from synthtext.evaluation.judge import OutsideJudge, calibrate  # noqa: E402


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "realdata" / "expressions"
    started = time.perf_counter()
    judge = OutsideJudge()
    print(f"judge loaded in {time.perf_counter() - started:.2f} s")

    result = calibrate(folder, judge)
    print(f"\n{'clip':<22} {'read as':<8} " + " ".join(f"{e:>5}" for e in EMOTIONS) + "  asked   lift")
    for row in result.rows:
        print(f"{row.clip:<22} {row.top1:<8} " + " ".join(f"{p:5.2f}" for p in row.probabilities)
              + f"  {row.probability:5.2f} {row.lift:+6.2f}")
    right = [row.emotion for row in result.rows if row.top1 == row.emotion]
    print(f"accuracy {result.accuracy:.2f} ({len(right)}/{len(result.rows)}: {', '.join(right)})")

    frames = np.stack(list(iter_frames(next(iter(sorted(folder.glob("*_HAP_*.flv")))))))
    judge.read(frames[:8])  # warm-up: torch's first call sets up its kernels
    started = time.perf_counter()
    faces = np.stack(list(judge.faces(frames)))
    crop = time.perf_counter() - started
    started = time.perf_counter()
    judge.classify(faces)
    network = time.perf_counter() - started
    started = time.perf_counter()
    judge.read(frames)
    whole = time.perf_counter() - started
    n = len(frames)
    print(f"\n{n} frames {frames.shape[2]}x{frames.shape[1]}, a detection every {judge.detect_every}: "
          f"faces {1000 * crop / n:.1f} ms/frame, network {1000 * network / n:.2f} ms/frame, "
          f"read {1000 * whole / n:.1f} ms/frame")


if __name__ == "__main__":
    main()
