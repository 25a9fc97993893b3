"""The generated corpus: CREMA-D's format, ground truth, determinism, and what a model can learn from it."""

import json

import cv2
import numpy as np
import pytest

from synthtext import EMOTIONS
from synthtext.data.clipfile import read_clip
from synthtext.data.corpus.checks import emotion_accuracy_by_identity, lip_audio_correlation
from synthtext.data.corpus.generate import build_identities, json_text, load_photos, photo_files, plan, synthesize_clip
from synthtext.data.corpus.puppet import HEIGHT, WIDTH, make_identity
from synthtext.data.landmarks import DlibBackend
from synthtext.data.media import iter_frames, probe
from synthtext.data.naming import CREMA_SENTENCES, parse_clip_name
from synthtext.data.split import split_by_actor
from synthtext.inference.tts import PiperEngine
from synthtext.ops.config import CorpusParams, load_params
from synthtext.ops.errors import SynthTextError
from tests.conftest import REPO, TINY_CORPUS


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
    identities = {json.loads(p.read_text())["identity"] for p in corpus_dir.glob("*.json") if p.stem[0].isdigit()}
    assert identities == {"1001:astronaut", "1002:crema_1001"}  # the bundled photos, one person per speaker


def test_same_seed_same_clip_other_seed_other_clip(corpus_dir, tmp_path):
    params = CorpusParams(**TINY_CORPUS)
    spec = plan(params)[3]
    identity = build_identities(params)[spec.identity]
    engine = PiperEngine(fast_load=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    synthesize_clip(spec, identity, engine, tmp_path / "a", params.seed)
    synthesize_clip(spec, identity, engine, tmp_path / "b", params.seed + 1)
    again = (tmp_path / "a" / f"{spec.clip_id}.flv").read_bytes()
    assert again == (corpus_dir / f"{spec.clip_id}.flv").read_bytes()
    assert (tmp_path / "a" / f"{spec.clip_id}.json").read_bytes() == (corpus_dir / f"{spec.clip_id}.json").read_bytes()
    assert (tmp_path / "b" / f"{spec.clip_id}.flv").read_bytes() != again


def test_plan_validates_its_params(tmp_path):
    assert len(plan(CorpusParams())) == 144  # 12 people x 2 sentences x 6 emotions
    with pytest.raises(SynthTextError):
        plan(CorpusParams(sentences=13))
    with pytest.raises(SynthTextError):
        plan(CorpusParams(intensity="MAX"))
    # Each speaker is one person: no photo serves two speakers.
    with pytest.raises(SynthTextError, match="identities is 13 but there are only 12 photo"):
        plan(CorpusParams(identities=13, photos=str(REPO / "assets/faces")))
    (tmp_path / "me.jpg").write_bytes((REPO / "assets/faces/official_biden.jpg").read_bytes())
    with pytest.raises(SynthTextError, match="each speaker is one person"):
        build_identities(CorpusParams(identities=2, photos=str(tmp_path)))
    with pytest.raises(SynthTextError, match="not found"):
        plan(CorpusParams(photos=str(tmp_path / "missing")))


def test_bundled_photos_are_distinct_people_and_all_give_a_face():
    corpus = [p.name for p in photo_files(str(REPO / "assets/faces"))]
    heldout = [p.name for p in photo_files(str(REPO / "assets/heldout"))]
    assert len(corpus) == 12 and len(heldout) == 3 and not {n.split(".")[0] for n in corpus} & {
        n.split(".")[0] for n in heldout}
    assert all(name in (REPO / "assets/SOURCES.md").read_text() for name in corpus + heldout)
    backend = DlibBackend()
    for folder in ("assets/faces", "assets/heldout"):
        for name, photo in load_photos(str(REPO / folder)):
            assert backend.detect(photo), name


def test_default_corpus_holds_people_out():
    """From params.yaml: one photo per actor, and the split keeps each person on one side."""
    params = load_params(REPO / "params.yaml")
    sample = params.sample.replace(photos=str(REPO / params.sample.photos))
    identities = build_identities(sample)
    person = {str(1001 + i): identity.name.split(":")[1] for i, identity in enumerate(identities)}
    assert len(set(person.values())) == len(person) == sample.identities
    clips = [(spec.clip_id, str(spec.actor)) for spec in plan(sample)]
    train, val = split_by_actor(clips, params.split.val_ratio, params.split.seed)
    people_train = {person[c.split("_")[0]] for c in train}
    people_val = {person[c.split("_")[0]] for c in val}
    assert len(people_val) > 1 and not people_train & people_val


def test_small_photo_fills_the_frame_without_a_hard_edge():
    """A 128x128 crop is enlarged to the chosen eye distance and continued past its edges."""
    (name, photo), = [p for p in load_photos(str(REPO / "assets/faces")) if p[0] == "crema_crop_01"]
    backend = DlibBackend()
    points = backend.landmarks(photo, backend.detect(photo)[0])
    identity = make_identity(name, photo, points, np.random.default_rng(0))
    corners = np.array([[0, 0], [WIDTH, 0], [0, HEIGHT], [WIDTH, HEIGHT]], float)
    seen = (corners - identity.framing[:, 2]) @ np.linalg.inv(identity.framing[:, :2]).T
    assert (seen >= 0).all() and (seen < identity.image.shape[1::-1]).all()
    iod = np.linalg.norm(identity.landmarks[36:42].mean(0) - identity.landmarks[42:48].mean(0))
    assert abs(iod - identity.params["iod_px"]) < 1.5
    grey = identity.image.astype(float).mean(2)
    for band in (grey[:24], grey[-24:], grey[:, :24].T, grey[:, -24:].T):  # the backdrop: smooth, no streaks
        assert np.abs(np.diff(band, axis=0)).max() < 8 and np.abs(np.diff(band, axis=1)).max() < 8


def test_prep_accepts_it_and_it_has_something_to_learn(aligned_corpus):
    work, metrics = aligned_corpus
    assert metrics["clips_written"] == 24 and metrics["clips_rejected"] == 0
    assert metrics["face_frame_ratio"] >= 0.99
    clips = [read_clip(p) for p in sorted((work / "clips").glob("*.h5"))]
    correlations = [lip_audio_correlation(c) for c in clips]
    assert np.median(correlations) >= 0.6, correlations
    accuracy = emotion_accuracy_by_identity(clips)
    assert min(accuracy.values()) >= 0.9, accuracy


def test_sidecar_text_is_what_json_writes(corpus_dir):
    """``json_text`` (the sidecars' fast writer) gives json.dumps(indent=2, sort_keys=True)'s text exactly."""
    for path in sorted(corpus_dir.glob("*.json"))[:3]:
        truth = json.loads(path.read_text())
        assert json_text(truth) == path.read_text() == json.dumps(truth, indent=2, sort_keys=True) + "\n"
    odd = {"b": [1, 2.5, float("nan"), True, None, "\u00e9", [], {}, (1.0, -0.0), [[1.0, 2.0], [3.0]],
                 [[1.0], [float("inf")]], [[1.0], []]], "a": {"z": 1e-7, "y": [1e300, 5e-324]}, "c": {1: 2}}
    assert json_text(odd) == json.dumps(odd, indent=2, sort_keys=True) + "\n"
