"""The 68-point landmark model: our evaluation (synthtext.data.ert) against dlib's own, on real frames.

    python benchmarks/bench_landmarks.py [DIR] [--rounds 7] [--processes 1 2]

DIR holds videos (default ../shared/realdata/crema-d, else data/raw/sample). Every frame of them is
decoded once, the face box found once a video (dlib's detector), then both evaluators of the same
model file (face-recognition-models' shape_predictor_68_face_landmarks.dat) predict every frame,
taking turns for ``--rounds`` rounds so both see the machine in the same state. Prints ms a call
(median and best round) for each, the speed-up, how many frames' 68 points differ (the expected
answer is 0), the time to load the model, and the same timings with N processes at once (the
align stage runs one landmark model per worker, all reading memory at the same time).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import cv2
import dlib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from synthtext.data import ert  # noqa: E402
from synthtext.data.landmarks import DlibBackend, predictor_path  # noqa: E402
from synthtext.data.naming import find_videos  # noqa: E402


def load_frames(folder: Path) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    detector = DlibBackend(upsample=0)
    frames = []
    for video in find_videos(folder):
        capture = cv2.VideoCapture(str(video))
        clip = []
        while (read := capture.read())[0]:
            clip.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
        boxes = detector.detect(clip[0]) if clip else []
        if boxes:
            box = tuple(int(round(v)) for v in boxes[0])
            frames += [(frame, box) for frame in clip]
    if not frames:
        raise SystemExit(f"no video with a face in {folder}")
    return frames


def load_both() -> tuple[ert.ShapeModel, dlib.shape_predictor, float, float]:
    """Both evaluators of the model file, and the seconds each took to load."""
    started = time.perf_counter()
    model = ert.read_model(predictor_path())
    ert_load = time.perf_counter() - started
    started = time.perf_counter()
    predictor = dlib.shape_predictor(str(predictor_path()))
    return model, predictor, ert_load, time.perf_counter() - started


def time_both(frames, rounds: int, model: ert.ShapeModel, predictor: dlib.shape_predictor) -> dict[str, list[float]]:
    rects = [dlib.rectangle(*box) for _, box in frames]
    ert.predict(model, *frames[0])  # compile (or load the compiled code) before timing
    times: dict[str, list[float]] = {"ert": [], "dlib": []}
    for _ in range(rounds):
        started = time.perf_counter()
        for frame, box in frames:
            ert.predict(model, frame, box)
        times["ert"].append((time.perf_counter() - started) / len(frames) * 1e3)
        started = time.perf_counter()
        for (frame, _), rect in zip(frames, rects, strict=True):
            predictor(frame, rect)
        times["dlib"].append((time.perf_counter() - started) / len(frames) * 1e3)
    return times


def _worker(args):
    folder, rounds = args
    model, predictor, _, _ = load_both()
    return time_both(load_frames(folder), rounds, model, predictor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = REPO.parent / "shared" / "realdata" / "crema-d"
    parser.add_argument("dir", type=Path, nargs="?", default=default if default.is_dir() else REPO / "data/raw/sample")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cv2.setNumThreads(1)

    model, predictor, ert_load, dlib_load = load_both()
    frames = load_frames(args.dir)
    differ = 0
    for frame, box in frames:
        shape = predictor(frame, dlib.rectangle(*box))
        ours = ert.predict(model, frame, box)
        differ += not np.array_equal(ours, np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64))
    print(f"{len(frames)} frames of {args.dir}; model loaded in {ert_load:.2f} s (ert, first call in this "
          f"process) and {dlib_load:.2f} s (dlib)")
    print(f"frames whose 68 points differ between ert and dlib: {differ} of {len(frames)}")
    for n in args.processes:
        if n == 1:
            results = [time_both(frames, args.rounds, model, predictor)]
        else:
            with multiprocessing.get_context("spawn").Pool(n) as pool:
                results = pool.map(_worker, [(args.dir, args.rounds)] * n)
        for name in ("ert", "dlib"):
            per = [v for r in results for v in r[name]]
            print(f"  {n} process(es), {name:4s}: median {statistics.median(per):.2f} ms a frame, "
                  f"best round {min(per):.2f} ms")
        ratio = statistics.median([v for r in results for v in r["dlib"]]) / statistics.median(
            [v for r in results for v in r["ert"]])
        print(f"  {n} process(es): ert {ratio:.1f}x faster than dlib (medians)")


if __name__ == "__main__":
    main()
