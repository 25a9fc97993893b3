"""How much of the corpus's expression the generator makes on faces it never saw, at each strength.

For each held-out photo (assets/heldout/) and emotion, the generator speaks the same speech at
intensities LO, MD, HI and 1.5 (head still, no blinks); its landmark moves (the decoder's ``points``,
averaged over the frames) minus the same photo's NEU moves are projected on the corpus's own
expression at HI (``corpus.motion.expression_offsets`` on the template): 1.0 = the corpus's full
expression, in its direction. Issue 26's target: HI >= 0.9 on held-out photos, LO < MD < HI.

    python benchmarks/bench_expression.py [--model models/generator]

Needs a trained model (`make demo`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthtext import EMOTIONS, infer  # noqa: E402
from synthtext.corpus.motion import expression_offsets  # noqa: E402
from synthtext.markup import intensity_amount  # noqa: E402
from synthtext.template import template  # noqa: E402
from synthtext.tts.engines import make_engine, synthesize_text  # noqa: E402

LEVELS = ("LO", "MD", "HI", 1.5)


def weights(emotion: str, amount: float) -> np.ndarray:
    """One frame's emotion weights: ``amount`` of the emotion, the rest neutral."""
    row = np.zeros((1, len(EMOTIONS)), np.float32)
    row[0, EMOTIONS.index("NEU")] = 1 - amount
    row[0, EMOTIONS.index(emotion)] += amount
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models/generator"))
    parser.add_argument("--photos", default=str(ROOT / "assets/heldout"))
    args = parser.parse_args()
    model = infer.load_generator(args.model)
    side = model.cfg.image_size
    rest = template(side)
    engine = make_engine("piper")
    speech = synthesize_text(engine, "Don't forget a jacket. It is cold outside.", "NEU", "MD", 1.0, 0)
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    print(f"model {args.model} (md5 {model.md5[:10]}), {len(photos)} held-out photos, "
          f"{len(speech.audio) / speech.sample_rate:.1f} s of speech")
    print(f"{'emotion':<8}" + "".join(f"{str(level):>8}" for level in LEVELS)
          + "   (share of the corpus's HI expression)")
    shares = {e: {level: [] for level in LEVELS} for e in EMOTIONS if e != "NEU"}
    for photo in photos:
        face = infer.prepare_face(photo, model.preprocess)

        def moves(emotion: str, amount: float, crop: np.ndarray = face.crop) -> np.ndarray:
            animation = infer.animate(model.generator, speech.audio, speech.sample_rate, crop,
                                      weights(emotion, amount))
            return animation.parts["points"].numpy().mean(0) * (side / 2)  # [68, 2] in the network's pixels

        neutral = moves("NEU", 1.0)
        for emotion in shares:
            corpus = expression_offsets(rest, emotion, 1.0)[:68]
            for level in LEVELS:
                amount = intensity_amount(level) if isinstance(level, str) else level
                made = moves(emotion, amount) - neutral
                shares[emotion][level].append(float((made * corpus).sum() / (corpus * corpus).sum()))
    for emotion, by_level in shares.items():
        print(f"{emotion:<8}" + "".join(f"{np.mean(v):8.2f}" for v in by_level.values()))
    every = {level: np.mean([np.mean(by_level[level]) for by_level in shares.values()]) for level in LEVELS}
    print(f"{'mean':<8}" + "".join(f"{v:8.2f}" for v in every.values()))


if __name__ == "__main__":
    main()
