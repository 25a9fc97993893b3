"""Real CREMA-D and GRID recordings from ../shared/realdata (skipped when that folder is absent)."""

import json

import numpy as np
import pytest

from flows import align as align_flow
from flows import convert_fps as convert_flow
from synthtext.data.clipfile import read_clip
from synthtext.data.template import eye_centres, template
from synthtext.ops.config import RunnerParams, load_params
from tests.conftest import REALDATA, REPO, add_bad_clips, needs_realdata

pytestmark = [needs_realdata, pytest.mark.slow]
PARAMS = load_params(REPO / "params.yaml")


@pytest.fixture(scope="module")
def real_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp("real-raw")
    for src in [*sorted((REALDATA / "crema-d").glob("*.flv")), *sorted((REALDATA / "grid").glob("*.mpg"))]:
        (raw / src.name).symlink_to(src)
    return raw


@pytest.mark.parametrize("mode", [1, 0])
def test_real_clips_convert_and_align(prefect_server, real_raw, tmp_path, mode):
    runner = RunnerParams(kind="threads", workers=2)
    convert_flow.run(str(real_raw), str(tmp_path / "fps25"), PARAMS.convert_fps, runner)
    fan = align_flow.run(str(tmp_path / "fps25"), str(tmp_path / "clips"), str(tmp_path / "report.json"),
                         str(tmp_path / "metrics.json"), PARAMS.align.replace(mode=mode), runner)
    assert len(fan.ok) == 8 and not fan.rejected  # 3 CREMA-D FLVs (VP6 + mp3) and 5 GRID MPEGs
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["face_frame_ratio"] >= 0.98
    target = eye_centres(template(128))
    for path in sorted((tmp_path / "clips").glob("*.h5")):
        clip = read_clip(path)
        assert clip.attrs["align_mode"] == mode and clip.attrs["fps"] == 25 and clip.attrs["sample_rate"] == 16000
        deviation = np.linalg.norm(eye_centres(clip.landmarks.astype(float)) - target, axis=-1).max(-1)
        # mode 1 puts the first frame's eyes on the template (later frames move with the head);
        # mode 0 keeps every frame's eyes there
        assert deviation[0] < 1.5, (path.name, deviation[0])
        if mode == 0:
            assert np.median(deviation) < 1.5, (path.name, np.median(deviation))


def test_bad_files_beside_real_clips(prefect_server, real_raw, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for link in real_raw.iterdir():
        (raw / link.name).symlink_to(link.resolve())
    expected = add_bad_clips(raw, REALDATA / "crema-d" / "1001_DFA_NEU_XX.flv")
    runner = RunnerParams(kind="threads", workers=2)
    convert_flow.run(str(raw), str(tmp_path / "fps25"), PARAMS.convert_fps, runner)
    fan = align_flow.run(str(tmp_path / "fps25"), str(tmp_path / "clips"), str(tmp_path / "report.json"),
                         str(tmp_path / "metrics.json"), PARAMS.align, runner)
    assert len(fan.ok) == 8
    assert {r["clip_id"]: r["reason"] for r in fan.rejected} == expected


def test_copied_real_videos_align_like_encoded_ones(prefect_server, real_raw, tmp_path):
    """``convert_fps.video: copy`` on CREMA-D's VP6 FLVs (29.97 fps) and GRID's MPEG-1 (25 fps, B-frames):
    the same frame counts as the H.264 path, the same faces, one lossy step less."""
    runner = RunnerParams(kind="threads", workers=2)
    aligned = {}
    for mode in ("encode", "copy"):
        convert_flow.run(str(real_raw), str(tmp_path / mode), PARAMS.convert_fps.replace(video=mode), runner)
        fan = align_flow.run(str(tmp_path / mode), str(tmp_path / f"{mode}-clips"), str(tmp_path / f"{mode}.json"),
                             str(tmp_path / f"{mode}-metrics.json"), PARAMS.align, runner)
        assert len(fan.ok) == 8 and not fan.rejected
        aligned[mode] = {p.stem: read_clip(p) for p in sorted((tmp_path / f"{mode}-clips").glob("*.h5"))}
    assert not list((tmp_path / "copy").glob("*.mp4")) and len(list((tmp_path / "copy").glob("*.mkv"))) == 8
    for clip_id, encoded in aligned["encode"].items():
        copied = aligned["copy"][clip_id]
        assert copied.video.shape == encoded.video.shape, clip_id
        moved = np.linalg.norm(copied.landmarks - encoded.landmarks, axis=-1).mean()
        assert moved < 1.0, (clip_id, moved)
