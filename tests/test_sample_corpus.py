"""The generated corpus: CREMA-D's format, ground truth, determinism, and what a model can learn from it."""

import json

import cv2
import numpy as np
import pytest

from synthtext import EMOTIONS
from synthtext.clipfile import read_clip
from synthtext.corpus.checks import emotion_accuracy_by_identity, lip_audio_correlation
from synthtext.corpus.generate import CorpusParams, build_identities, plan, render_clip
from synthtext.errors import SynthTextError
from synthtext.media import iter_frames, probe
from synthtext.naming import CREMA_SENTENCES, parse_clip_name
from synthtext.tts import PiperEngine
from tests.conftest import TINY_CORPUS


def test_files_are_crema_d_clips(corpus_dir):
    videos = sorted(corpus_dir.glob("*.flv"))
    assert len(videos) == 24
    names = [parse_clip_name(v) for v in videos]
    assert {n.actor for n in names} == {"1001", "1002"}
    assert sorted({n.emotion for n in names}) == sorted(EMOTIONS)
    assert all(n.intensity == ("XX" if n.emotion == "NEU" else "HI") for n in names)
    assert all(n.sentence in CREMA_SENTENCES for n in names)
    for video in videos[:3]:
        info = probe(video)
        assert (info.width, info.height) == (480, 360) and abs(info.fps - 29.97) < 0.01 and info.has_audio
        assert 1.5 < info.duration < 4.5
    sheet = cv2.imread(str(corpus_dir / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] > sheet.shape[0]  # 2 identities x 6 emotions


def test_ground_truth_sidecars(corpus_dir):
    for video in sorted(corpus_dir.glob("*.flv")):
        truth = json.loads(video.with_suffix(".json").read_text())
        assert truth["clip_id"] == video.stem and truth["text"] == CREMA_SENTENCES[truth["sentence"]]
        frames = truth["frames"]
        assert sum(1 for _ in iter_frames(video)) == frames
        per_frame = truth["per_frame"]
        assert {len(v) for v in per_frame.values()} == {frames}
        assert np.asarray(per_frame["landmarks"]).shape == (frames, 68, 2)
        assert np.asarray(per_frame["head_pose"]).shape == (frames, 4)
        opening = np.asarray(per_frame["mouth_opening"])
        assert opening.max() > 0.15 and opening[0] < 0.02  # silent lead-in, then speech opens the mouth
        assert truth["expression_amount"] == (0.0 if truth["emotion"] == "NEU" else 1.0)


def test_same_seed_same_clip_other_seed_other_clip(corpus_dir, tmp_path):
    params = CorpusParams(**TINY_CORPUS)
    spec = plan(params)[3]
    identity = build_identities(params)[spec.identity]
    engine = PiperEngine()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    render_clip(spec, identity, engine, tmp_path / "a", params.seed)
    render_clip(spec, identity, engine, tmp_path / "b", params.seed + 1)
    again = (tmp_path / "a" / f"{spec.clip_id}.flv").read_bytes()
    assert again == (corpus_dir / f"{spec.clip_id}.flv").read_bytes()
    assert (tmp_path / "a" / f"{spec.clip_id}.json").read_bytes() == (corpus_dir / f"{spec.clip_id}.json").read_bytes()
    assert (tmp_path / "b" / f"{spec.clip_id}.flv").read_bytes() != again


def test_plan_validates_its_params():
    assert len(plan(CorpusParams())) == 48
    with pytest.raises(SynthTextError):
        plan(CorpusParams(sentences=13))
    with pytest.raises(SynthTextError):
        plan(CorpusParams(intensity="MAX"))


def test_prep_accepts_it_and_it_has_something_to_learn(aligned_corpus):
    work, metrics = aligned_corpus
    assert metrics["clips_written"] == 24 and metrics["clips_rejected"] == 0
    assert metrics["face_frame_ratio"] >= 0.99
    clips = [read_clip(p) for p in sorted((work / "clips").glob("*.h5"))]
    correlations = [lip_audio_correlation(c) for c in clips]
    assert np.median(correlations) >= 0.6, correlations
    accuracy = emotion_accuracy_by_identity(clips)
    assert min(accuracy.values()) >= 0.9, accuracy
