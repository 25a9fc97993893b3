"""FPS conversion of single clips with the real ffmpeg binary."""

import json

import cv2
import numpy as np
import pytest

from synthtext.data import media
from synthtext.data.convert import convert_clip, outputs, read_sidecar
from synthtext.ops.config import ConvertParams
from synthtext.ops.errors import ClipRejected, SynthTextError
from tests.conftest import ffmpeg


def test_converts_to_25fps_h264_and_16k_mono(demo_dir, tmp_path):
    src = sorted(demo_dir.iterdir())[0]
    source_info = media.probe(src)
    assert abs(source_info.fps - 29.97) < 0.01 and (source_info.width, source_info.height) == (480, 360)
    record = convert_clip(src, tmp_path, src.stem, ConvertParams(), "md5", "key1")
    mp4, wav, sidecar = outputs(tmp_path, src.stem)
    capture = cv2.VideoCapture(str(mp4))
    assert capture.get(cv2.CAP_PROP_FPS) == 25
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    assert abs(frames - source_info.duration * 25) <= 2 and record["frames"] == frames
    audio, sr = media.read_audio(wav)
    assert sr == 16000 and audio.ndim == 1 and abs(audio.size / sr - source_info.duration) < 0.1
    assert json.loads(sidecar.read_text())["key"] == "key1"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (mp4, wav, sidecar))


def test_conversion_is_reproducible(demo_dir, tmp_path):
    src = sorted(demo_dir.iterdir())[1]
    for out in ("a", "b"):
        (tmp_path / out).mkdir()
        convert_clip(src, tmp_path / out, src.stem, ConvertParams(), "md5", "k")
    for a, b in zip(outputs(tmp_path / "a", src.stem), outputs(tmp_path / "b", src.stem), strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_a_faster_preset_gives_the_same_frames_and_audio_length(demo_dir, tmp_path):
    """``convert_fps.preset`` trades file size for encoding time: the same frame count and audio, a bigger
    file, pixels within H.264's quality setting of the default's."""
    src = sorted(demo_dir.iterdir())[0]
    records = {}
    for preset in ("veryfast", "ultrafast"):
        (tmp_path / preset).mkdir()
        records[preset] = convert_clip(src, tmp_path / preset, src.stem, ConvertParams(preset=preset), "md5", "k")
    slow, fast = (outputs(tmp_path / p, src.stem) for p in ("veryfast", "ultrafast"))
    assert records["veryfast"]["frames"] == records["ultrafast"]["frames"]
    assert slow[1].read_bytes() == fast[1].read_bytes()  # the audio does not depend on the video's preset
    assert fast[0].stat().st_size > slow[0].stat().st_size
    a, b = (np.stack(list(media.iter_frames(p[0]))).astype(float) for p in (slow, fast))
    assert np.abs(a - b).mean() < 2.0
    with pytest.raises(SynthTextError, match="convert_fps.preset must be one of"):
        ConvertParams(preset="warp")


@pytest.fixture
def broken(demo_dir, tmp_path):
    good = sorted(demo_dir.iterdir())[0]
    ffmpeg("-i", str(good), "-an", "-c:v", "libx264", str(tmp_path / "noaudio.mp4"))
    ffmpeg("-i", str(good), "-af", "volume=0", "-c:v", "libx264", "-c:a", "aac", str(tmp_path / "silent.mp4"))
    (tmp_path / "empty.flv").write_bytes(b"")
    (tmp_path / "corrupt.flv").write_bytes(b"FLV" + b"\x00" * 5000)
    return tmp_path


@pytest.mark.parametrize("name,reason", [("empty.flv", "empty_file"), ("corrupt.flv", "corrupt"),
                                         ("noaudio.mp4", "no_audio"), ("silent.mp4", "silent_audio")])
def test_bad_inputs_are_rejected_and_leave_nothing(broken, tmp_path, name, reason):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ClipRejected) as info:
        convert_clip(broken / name, out, "1001_DFA_ANG_XX", ConvertParams(), "md5", "k")
    assert info.value.reason == reason
    assert list(out.iterdir()) == []


def test_resampling_follows_ffmpegs_fps_rule():
    # 30 fps to 25: each second keeps 25 of 30 frames, in order, none twice
    kept = media.fps_selection([round(i * 1000 / 30) for i in range(60)], 25)
    assert len(kept) == 50 and kept == sorted(set(kept)) and kept[0] == 0
    # 10 fps to 25: every frame is repeated two or three times
    kept = media.fps_selection(list(range(0, 1000, 100)), 25)
    assert len(kept) == 25 and sorted(set(kept)) == list(range(10))
    assert {kept.count(i) for i in range(10)} <= {2, 3}
    # a frame that shares its tick with the next one is dropped; the stream form gives the same
    assert media.fps_selection([0, 10, 40, 80], 25) == [1, 2, 3]
    assert list(media.resample([(0, "a"), (10, "b"), (40, "c"), (80, "d")], 25)) == ["b", "c", "d"]


def test_copy_mode_keeps_the_source_stream_and_gives_the_encoded_frames(demo_dir, tmp_path):
    """``convert_fps.video: copy`` writes no H.264: the source's video stream goes unchanged into a
    .mkv, and resampling it by its decoded timestamps gives the frames the encoded mp4 holds."""
    src = sorted(demo_dir.iterdir())[0]
    (tmp_path / "encode").mkdir()
    (tmp_path / "copy").mkdir()
    encoded = convert_clip(src, tmp_path / "encode", src.stem, ConvertParams(), "md5", "k")
    copied = convert_clip(src, tmp_path / "copy", src.stem, ConvertParams(video="copy"), "md5", "k")
    mkv, wav, sidecar = outputs(tmp_path / "copy", src.stem, "copy")
    assert mkv.suffix == ".mkv" and sorted(p.name for p in (tmp_path / "copy").iterdir()) == \
        sorted(p.name for p in (mkv, wav, sidecar))
    assert read_sidecar(tmp_path / "copy", src.stem)["video"] == "copy"
    assert copied["frames"] == encoded["frames"] and copied["source_start"] == media.probe(src).start > 0
    assert wav.read_bytes() == outputs(tmp_path / "encode", src.stem)[1].read_bytes()
    source = media.probe(src)
    assert (media.probe(mkv).fps, media.probe(mkv).width) == (source.fps, source.width)
    assert sum(1 for _ in media.iter_frames(mkv)) > copied["frames"]  # 29.97 fps in the file
    picked = np.stack(list(media.iter_frames(mkv, 25, copied["source_start"]))).astype(float)
    mp4 = np.stack(list(media.iter_frames(outputs(tmp_path / "encode", src.stem)[0]))).astype(float)
    assert picked.shape == mp4.shape
    per_frame = np.abs(picked - mp4).mean(axis=(1, 2, 3))
    assert per_frame.max() < 2.5  # H.264 at crf 18 on the same frames; a neighbouring frame differs more
    assert np.abs(picked[1:] - mp4[:-1]).mean(axis=(1, 2, 3)).mean() > per_frame.mean()


def test_prune_removes_the_other_modes_video(tmp_path):
    from flows.convert_fps import prune

    for name in ("a.mp4", "a.mkv", "a.wav", "a.json", "b.mkv", "b.json", "b.wav"):
        (tmp_path / name).write_bytes(b"x")
    prune(tmp_path, {"a"}, "copy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.mkv", "a.wav"]
