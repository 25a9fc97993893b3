"""Shared fixtures: an isolated Prefect home, one Prefect test server, small generated clips."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports Prefect: a throwaway home, quiet logs, no telemetry.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="synthtext-prefect-")
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"

needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata is not present")


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


TINY_CORPUS = {"identities": 2, "sentences": 2, "intensity": "HI", "seed": 0}


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """A tiny sample corpus (2 identities x 6 emotions x 2 sentences = 24 clips), made once per session
    with the library directly (the flow and the CLI have their own tests)."""
    from synthtext.data.corpus.generate import build_identities, corpus_sheet, plan, synthesize_clip
    from synthtext.inference.tts import PiperEngine
    from synthtext.ops.config import CorpusParams

    folder = tmp_path_factory.mktemp("corpus")
    params = CorpusParams(**TINY_CORPUS)
    identities, engine = build_identities(params), PiperEngine(fast_load=False)
    summaries = [synthesize_clip(spec, identities[spec.identity], engine, folder, params.seed) for spec in plan(params)]
    corpus_sheet(folder, summaries, params.identities)
    return folder


@pytest.fixture(scope="session")
def demo_dir(corpus_dir, tmp_path_factory) -> Path:
    """Four clips of the tiny corpus (two actors, one sentence, two emotions each), videos only."""
    folder = tmp_path_factory.mktemp("four-clips")
    first_sentence = {}
    for path in sorted(corpus_dir.glob("*.flv")):
        actor, sentence, emotion, _ = path.stem.split("_")
        if emotion in ("ANG", "HAP") and first_sentence.setdefault(actor, sentence) == sentence:
            shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def raw_copy(demo_dir, tmp_path) -> Path:
    """A private, writable copy of the four clips."""
    folder = tmp_path / "raw"
    shutil.copytree(demo_dir, folder)
    return folder


@pytest.fixture(scope="session")
def aligned_corpus(prefect_server, corpus_dir, tmp_path_factory) -> tuple[Path, dict]:
    """The tiny corpus through the real convert_fps and align flows: (work folder, align metrics)."""
    import json

    from flows import align as align_flow
    from flows import convert_fps as convert_flow
    from synthtext.ops.config import RunnerParams, load_params

    work = tmp_path_factory.mktemp("aligned")
    params = load_params(REPO / "params.yaml")
    runner = RunnerParams(kind="threads", workers=2)
    convert_flow.run(str(corpus_dir), str(work / "fps25"), params.convert_fps, runner)
    align_flow.run(str(work / "fps25"), str(work / "clips"), str(work / "report.json"), str(work / "metrics.json"),
                   params.align, runner)
    return work, json.loads((work / "metrics.json").read_text())


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """scikit-image's bundled portrait (a real photo) as a PNG file."""
    import cv2
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="session")
def dlib_backend():
    from synthtext.data.landmarks import make_backend

    return make_backend("dlib")


def ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg (used to build broken inputs for the tests)."""
    import subprocess

    from synthtext.data.media import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *args], check=True)


def add_bad_clips(folder: Path, good_clip: Path) -> dict[str, str]:
    """Put one clip of each kind of trouble into ``folder``; returns clip id -> expected reason."""
    (folder / "1010_DFA_ANG_XX.flv").write_bytes(b"FLV\x01" + bytes(range(256)) * 40)  # corrupt
    (folder / "1011_DFA_ANG_XX.flv").write_bytes(b"")  # zero-length
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=480x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=300",
           "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(folder / "1012_DFA_SAD_XX.mp4"))
    ffmpeg("-i", str(good_clip), "-an", "-c:v", "libx264", str(folder / "1013_DFA_NEU_XX.mp4"))
    ffmpeg("-i", str(good_clip), "-af", "volume=0", "-c:v", "libx264", "-c:a", "aac",
           str(folder / "1014_DFA_NEU_XX.mp4"))
    ffmpeg("-i", str(good_clip), "-t", "0.6", "-c:v", "libx264", "-c:a", "aac", str(folder / "1015_DFA_NEU_XX.mp4"))
    shutil.copy(good_clip, folder / "my holiday.mp4")
    return {"1010_DFA_ANG_XX": "corrupt", "1011_DFA_ANG_XX": "empty_file", "1012_DFA_SAD_XX": "no_face",
            "1013_DFA_NEU_XX": "no_audio", "1014_DFA_NEU_XX": "silent_audio", "1015_DFA_NEU_XX": "too_short",
            "my holiday": "bad_name"}
