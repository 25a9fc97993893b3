"""The sample corpus: generation speed, and the checks that it has something to teach.

    python benchmarks/bench_corpus.py [--identities 4 --sentences 2 --workers 2] [--clips DIR]

Generates a corpus (timed, through the real Prefect flow), converts and aligns it with the real
prep flows, then prints: seconds and frames/s of generation; share of frames with landmarks;
per-clip correlation of the measured inner-lip distance with the audio RMS envelope (median, min);
leave-one-identity-out emotion accuracy of a logistic regression on landmark geometry (with and
without speaker normalisation); prosody statistics per emotion (duration, level, median pitch);
and, if pocketsphinx is installed (a dev extra; it ships its English model), word accuracy of
an ASR on the clips' speech as a listening check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import librosa
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))

from flows import align as align_flow  # noqa: E402
from flows import convert_fps as convert_flow  # noqa: E402
from flows import sample_corpus as corpus_flow  # noqa: E402
from synthtext.data.clipfile import read_clip  # noqa: E402
from synthtext.data.corpus.checks import emotion_accuracy_by_identity, lip_audio_correlation  # noqa: E402
from synthtext.data.media import read_audio  # noqa: E402
from synthtext.data.naming import CREMA_SENTENCES  # noqa: E402
from synthtext.ops.config import RunnerParams, load_params  # noqa: E402


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def word_accuracy(reference: list[str], hypothesis: list[str]) -> float:
    """1 - word error rate (edit distance over reference length)."""
    d = np.arange(len(hypothesis) + 1)
    for i, ref in enumerate(reference, 1):
        prev, d[0] = d.copy(), i
        for j, hyp in enumerate(hypothesis, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (ref != hyp))
    return 1 - d[-1] / max(len(reference), 1)


def listening_check(wavs: list[Path]) -> float | None:
    try:
        from pocketsphinx import Decoder
    except ImportError:
        return None
    decoder = Decoder(samprate=16000)
    scores = []
    for wav in wavs:
        audio, _ = read_audio(wav)
        decoder.start_utt()
        decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        decoder.end_utt()
        heard = decoder.hyp().hypstr if decoder.hyp() else ""
        scores.append(word_accuracy(words(CREMA_SENTENCES[wav.stem.split("_")[1]]), words(heard)))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--sentences", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    runner = RunnerParams(kind="threads", workers=args.workers)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        sample = params.sample.replace(identities=args.identities, sentences=args.sentences)
        fan, seconds = corpus_flow.run(str(work / "corpus"), sample, runner)
        frames = sum(r["frames"] for r in fan.results)
        print(f"generation : {len(fan.results)} clips, {frames} frames in {seconds:.1f} s "
              f"({frames / seconds:.0f} frames/s, {args.workers} workers, Prefect start-up included)")
        convert_flow.run(str(work / "corpus"), str(work / "fps25"), params.convert_fps, runner)
        align_flow.run(str(work / "fps25"), str(work / "clips"), str(work / "report.json"),
                       str(work / "metrics.json"), params.align, runner)
        metrics = json.loads((work / "metrics.json").read_text())
        clips = [read_clip(p) for p in sorted((work / "clips").glob("*.h5"))]
        print(f"prep       : {metrics['clips_written']}/{len(fan.results)} clips aligned, landmarks on "
              f"{100 * metrics['face_frame_ratio']:.1f}% of frames")
        r = [lip_audio_correlation(c) for c in clips]
        print(f"lip sync   : inner-lip distance vs audio RMS, r median {np.median(r):.3f}, min {np.min(r):.3f}")
        for normalise in (True, False):
            scores = emotion_accuracy_by_identity(clips, speaker_normalise=normalise)
            label = "speaker-normalised" if normalise else "raw landmarks     "
            per_actor = ", ".join(f"{a}: {s:.2f}" for a, s in scores.items())
            print(f"emotion    : {label} leave-one-identity-out accuracy {per_actor} "
                  f"(mean {np.mean(list(scores.values())):.3f})")
        prosody = defaultdict(list)
        for clip in clips:
            truth = json.loads((work / "corpus" / f"{clip.attrs['clip_id']}.json").read_text())
            speech = clip.audio[int(truth["speech_start_s"] * 16000):int(truth["speech_end_s"] * 16000)]
            f0 = librosa.yin(speech, fmin=60, fmax=400, sr=16000, frame_length=1024)
            prosody[clip.attrs["emotion"]].append((len(speech) / 16000, 20 * np.log10(np.sqrt(np.mean(speech ** 2))),
                                                   np.median(f0)))
        print("prosody    : emotion  duration s  level dBFS  median f0 Hz")
        for emotion, rows in sorted(prosody.items()):
            d, level, f0 = np.mean(rows, axis=0)
            print(f"             {emotion}      {d:6.2f}     {level:7.1f}     {f0:7.1f}")
        accuracy = listening_check(sorted((work / "fps25").glob("*.wav")))
        print("listening  : " + ("pocketsphinx not installed (pip install pocketsphinx)" if accuracy is None else
                                 f"pocketsphinx word accuracy {100 * accuracy:.1f}% on {len(clips)} clips"))


if __name__ == "__main__":
    main()
