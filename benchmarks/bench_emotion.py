"""Emotion within one video, the self-check, and recorded speech, on photos the model never saw
(assets/heldout/). Prints three figures (issue 14's targets):

1. two-segment texts (HAP then SAD, ANG then NEU, spoken by the Piper voice with each segment's
   prosody): the share of segments the evaluator reads as the emotion asked for (target >= 0.8);
2. the self-check's cost: what it adds to the time to generate and encode, end to end (each video
   made with and without the check, median of ``--repeats`` each; target <= 10%), and its own time
   inside the loop (which overlaps the encoder's work);
3. recorded speech (real recordings from ../shared/realdata/, not TTS) driving each held-out photo at
   256 px: how well the mouth opening follows the speech envelope, r (target >= 0.5).

    python benchmarks/bench_emotion.py [--model models/generator] [--evaluator reports/evaluator.json]

Needs a trained model and its evaluator (`make demo` makes both). Part 3 is skipped when
../shared/realdata/ is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))

from synthtext.data.landmarks import make_backend  # noqa: E402
from synthtext.data.media import load_speech  # noqa: E402
from synthtext.evaluation.evaluator import Measurer  # noqa: E402
from synthtext.evaluation.measures import sync_metrics  # noqa: E402
from synthtext.inference import infer, render  # noqa: E402
from synthtext.inference.jobs import Options, make_job  # noqa: E402
from synthtext.inference.selfcheck import attach_evaluator  # noqa: E402
from synthtext.inference.tts.engines import make_engine  # noqa: E402
from synthtext.inference.videojobs import job_key, make_video  # noqa: E402

HELDOUT = ROOT / "assets" / "heldout"
PHOTOS = sorted(p for p in HELDOUT.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
REALDATA = ROOT.parent / "shared" / "realdata"
TEXTS = {
    ("HAP", "SAD"): "[happy] We won the prize, what a wonderful day! [sad] But the old dog died last night.",
    ("ANG", "NEU"): "[anger] I told you never to touch my things again! [neutral] The meeting is at ten tomorrow.",
}


def recordings() -> list[Path]:
    found = sorted((REALDATA / "speech").glob("*")) + sorted((REALDATA / "crema-d").glob("*.flv"))
    return [p for p in found if p.suffix.lower() in (".wav", ".mp3", ".flv")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "generator"))
    parser.add_argument("--evaluator", default=str(ROOT / "reports" / "evaluator.json"))
    parser.add_argument("--repeats", type=int, default=2, help="videos with and without the check, for its cost")
    args = parser.parse_args()
    given = args.evaluator if Path(args.evaluator).is_file() else None
    model = attach_evaluator(infer.load_generator(args.model), given)
    if model.evaluator is None:
        raise SystemExit(f"no evaluator: give --evaluator (reports/evaluator.json after make demo); "
                         f"{model.evaluator_note}")
    backend = make_backend(model.preprocess["landmark_backend"])
    engine = make_engine("piper")
    options = Options()
    unchecked = dataclasses.replace(model, evaluator=None)
    hits, check_share, added = [], [], []

    def spent(times: dict) -> float:
        return times["generate"] + times["encode"] + times.get("check", 0.0)

    print(f"1-2. two-segment texts on {len(PHOTOS)} held-out photos ({args.model})")
    with tempfile.TemporaryDirectory() as scratch:
        warm = make_job(str(PHOTOS[0]), "Hello there.", "NEU", str(Path(scratch) / "warm.mp4"))
        make_video(warm, model, engine, options, job_key(warm, options, model.md5), backend=backend)  # loads, untimed
        for photo in PHOTOS:
            for pair, text in TEXTS.items():
                job = make_job(str(photo), text, "NEU", str(Path(scratch) / f"{photo.stem}_{'_'.join(pair)}.mp4"))
                key = job_key(job, options, model.md5)
                with_check, without = [], []
                for _ in range(max(1, args.repeats)):  # alternated, so that drift in the machine's speed cancels
                    without.append(spent(make_video(job, unchecked, engine, options, key, backend=backend)["times"]))
                    result = make_video(job, model, engine, options, key, backend=backend)
                    with_check.append(spent(result["times"]))
                added.append(statistics.median(with_check) / statistics.median(without) - 1)
                shown = [(s["emotion"], s.get("shown"), s.get("confidence")) for s in result["segments"]]
                hits.extend(asked == seen for asked, seen, _ in shown)
                times = result["times"]
                check_share.append(times["check"] / (times["generate"] + times["encode"]))
                print(f"   {photo.stem:16s} {' then '.join(pair)}: " +
                      ", ".join(f"asked {a} reads {s} ({c:.2f})" for a, s, c in shown) +
                      f"; {statistics.median(without):.2f} s without the check, {statistics.median(with_check):.2f} s "
                      f"with it (its own {times['check']:.2f} s)")
    print(f"   segments read as asked: {np.mean(hits):.2f} ({sum(hits)}/{len(hits)}; target >= 0.80)")
    print(f"   self-check adds {100 * np.mean(added):.1f}% to generate + encode, end to end (max "
          f"{100 * max(added):.1f}%; target <= 10%); its own time in the loop {100 * np.mean(check_share):.1f}% "
          f"(max {100 * max(check_share):.1f}%), part of it while the encoder works")

    found = recordings()
    if not found:
        print(f"3. recorded speech: skipped ({REALDATA} is absent)")
        return
    measurer = Measurer(backend, int(model.preprocess["size"]))
    print(f"3. recorded speech ({len(found)} real recordings) on the held-out photos at 256 px: mouth vs speech r")
    values = []
    for recording in found:
        audio, rate = load_speech(recording)
        row = []
        for photo in PHOTOS:
            face = infer.prepare_face(photo, model.preprocess, backend)
            animation = infer.animate(model.generator, audio, rate, face.crop, "NEU")
            landmarks = measurer.landmarks(render.face_frames(animation, face, 256))
            row.append(sync_metrics(landmarks, audio, rate, model.cfg.fps)["sync_r"])
        values.extend(row)
        print(f"   {recording.name:24s} {rate} Hz, {len(audio) / rate:.1f} s: " +
              ", ".join(f"{p.stem} {r:.2f}" for p, r in zip(PHOTOS, row, strict=True)))
    print(f"   mean r {np.mean(values):.2f}, min {np.min(values):.2f} (target >= 0.5; real faces ~0.85)")


if __name__ == "__main__":
    main()
