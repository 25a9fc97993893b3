"""How the outside judge reads the sample corpus's expressions: stills of the corpus photos in each emotion.

    python benchmarks/bench_corpus_judge.py [--identities 12] [--units '{"ANG": {"AU4": 1.65, ...}}']

Each of the first ``--identities`` photos of ``assets/faces`` is drawn as the corpus draws it
(``synthtext.data.corpus``: the emotion's action units at HI, no head pose, mouth closed and open 0.15 of
the eye distance) and read by the outside judge (``synthtext.evaluation.judge``) next to the same still in NEU.
Prints per emotion how many stills read as asked and the asked emotion's mean lift over NEU, the
figures behind ``EMOTION_UNITS`` in ``synthtext/data/corpus/motion.py``. ``--units`` replaces emotions'
unit strengths for one run, to try a prototype before changing the corpus.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from synthtext import EMOTIONS  # noqa: E402
from synthtext.data.corpus import motion  # noqa: E402
from synthtext.data.corpus.generate import build_identities  # noqa: E402
from synthtext.data.corpus.puppet import Identity, PiecewiseAffine, puppet_frame  # noqa: E402
from synthtext.evaluation.judge import OutsideJudge  # noqa: E402
from synthtext.ops.config import CorpusParams  # noqa: E402

OPENINGS = (0.0, 0.15)  # inner-lip gap, eye distances
STILL_POSE = np.array([0.0, 0.0, 0.0, 1.0])  # roll, dx, dy, scale


def still(identity: Identity, emotion: str, units: dict[str, float] | None, opening: float) -> np.ndarray:
    """One corpus frame of ``identity`` in ``emotion`` at HI (``units``: its unit strengths, default the
    corpus's) with the mouth open by ``opening``."""
    rest = identity.landmarks
    _, _, iod = motion.face_frame(rest)
    table = dict(motion.EMOTION_UNITS)
    if units is not None:
        table[emotion] = units
    saved, motion.EMOTION_UNITS = motion.EMOTION_UNITS, table
    try:
        expression = motion.expression_offsets(rest, emotion, 0.0 if emotion == "NEU" else 1.0)
    finally:
        motion.EMOTION_UNITS = saved
    skin = motion.skin_points(rest)
    warp = PiecewiseAffine(np.vstack([rest, skin]), identity.image.shape)
    shaped = rest + expression[:68]
    moved = shaped + motion.mouth_offsets(shaped, opening, 0.0)
    frame, _ = puppet_frame(identity, warp, np.vstack([moved, skin + expression[68:]]), opening * iod, STILL_POSE)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=12)
    parser.add_argument("--units", default="{}", help="JSON {emotion: {unit: strength}} to try instead")
    args = parser.parse_args()
    trial = json.loads(args.units)
    unknown = [e for e in trial if e not in EMOTIONS or e == "NEU"]
    if unknown:
        sys.exit(f"--units: {', '.join(unknown)} is not one of {', '.join(e for e in EMOTIONS if e != 'NEU')}")
    started = time.perf_counter()
    identities = build_identities(CorpusParams(identities=args.identities, photos=str(REPO / "assets/faces")))
    judge = OutsideJudge()
    neutral = {(k, o): judge.read(still(identity, "NEU", None, o)[None])[0]
               for k, identity in enumerate(identities) for o in OPENINGS}
    print(f"{'emotion':<8} {'read as asked':>14} {'lift over NEU':>14}  units")
    for index, emotion in enumerate(EMOTIONS):
        if emotion == "NEU":
            continue
        units = trial.get(emotion)
        hits, lifts = 0, []
        for k, identity in enumerate(identities):
            for opening in OPENINGS:
                reading = judge.read(still(identity, emotion, units, opening)[None])[0]
                hits += int(np.argmax(reading) == index)
                lifts.append(float(reading[index] - neutral[k, opening][index]))
        shown = units or motion.EMOTION_UNITS[emotion]
        print(f"{emotion:<8} {f'{hits}/{len(lifts)}':>14} {np.mean(lifts):>+14.3f}  "
              + " ".join(f"{u} {w:g}" for u, w in shown.items()), flush=True)
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
