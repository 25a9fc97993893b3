import hashlib

import h5py
import numpy as np
import pytest

from synthtext.data.clipfile import SCHEMA_VERSION, AlignedClip, read_clip, write_clip
from synthtext.ops.errors import SynthTextError


def make_clip(frames=10, size=32, seed=0) -> AlignedClip:
    rng = np.random.default_rng(seed)
    attrs = {"schema_version": SCHEMA_VERSION, "clip_id": "1001_DFA_ANG_XX", "actor": "1001", "sentence": "DFA",
             "emotion": "ANG", "intensity": "XX", "fps": 25, "sample_rate": 16000, "source_md5": "0" * 32,
             "landmark_backend": "dlib", "align_mode": 1}
    return AlignedClip(video=rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8),
                       landmarks=rng.uniform(0, size, (frames, 68, 2)).astype(np.float32),
                       audio=rng.uniform(-1, 1, frames * 640).astype(np.float32), attrs=attrs)


def test_round_trip(tmp_path):
    clip = make_clip()
    write_clip(tmp_path / "c.h5", clip)
    back = read_clip(tmp_path / "c.h5")
    np.testing.assert_array_equal(back.video, clip.video)
    np.testing.assert_array_equal(back.landmarks, clip.landmarks)
    np.testing.assert_array_equal(back.audio, clip.audio)
    assert back.attrs == clip.attrs
    with h5py.File(tmp_path / "c.h5") as f:
        assert f["video"].dtype == np.uint8 and f["landmarks"].dtype == np.float32
        assert f["audio"].dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == ["c.h5"]  # no temporary left behind


@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
def test_every_compression_reads_back_the_same_frames(tmp_path, compression):
    clip = make_clip()
    write_clip(tmp_path / "c.h5", clip, compression)
    np.testing.assert_array_equal(read_clip(tmp_path / "c.h5").video, clip.video)
    with h5py.File(tmp_path / "c.h5") as f:
        assert f["video"].compression == compression


def test_audio_for_frame_follows_the_contract():
    clip = make_clip()
    assert len(clip.audio_for_frame(0)) == 640
    np.testing.assert_array_equal(clip.audio_for_frame(3), clip.audio[1920:2560])


def test_same_content_gives_same_bytes(tmp_path):
    write_clip(tmp_path / "a.h5", make_clip())
    write_clip(tmp_path / "b.h5", make_clip())
    digest = [hashlib.md5((tmp_path / n).read_bytes()).hexdigest() for n in ("a.h5", "b.h5")]
    assert digest[0] == digest[1]


def test_bad_shapes_and_missing_attrs_are_refused(tmp_path):
    clip = make_clip()
    clip.landmarks = clip.landmarks[:, :5]
    with pytest.raises(ValueError, match="landmarks"):
        write_clip(tmp_path / "c.h5", clip)
    clip = make_clip()
    del clip.attrs["emotion"]
    with pytest.raises(ValueError, match="emotion"):
        write_clip(tmp_path / "c.h5", clip)
    assert not list(tmp_path.iterdir())


def test_wrong_schema_or_garbage_is_a_clear_error(tmp_path):
    clip = make_clip()
    clip.attrs["schema_version"] = 99
    write_clip(tmp_path / "old.h5", clip)
    with pytest.raises(SynthTextError, match="schema version 99"):
        read_clip(tmp_path / "old.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(SynthTextError, match="not a readable clip"):
        read_clip(tmp_path / "junk.h5")
