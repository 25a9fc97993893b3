import pytest

from synthtext import EMOTIONS
from synthtext.data.naming import CREMA_SENTENCES, find_videos, parse_clip_name
from synthtext.ops.errors import ClipRejected


def test_crema_fields():
    name = parse_clip_name("/data/VideoFlash/1091_TSI_SAD_HI.flv")
    assert (name.clip_id, name.actor, name.sentence, name.emotion, name.intensity, name.corpus) == (
        "1091_TSI_SAD_HI", "1091", "TSI", "SAD", "HI", "crema-d")
    assert EMOTIONS.index(name.emotion) == 5


@pytest.mark.parametrize("emotion", EMOTIONS)
@pytest.mark.parametrize("level", ["LO", "MD", "HI", "XX"])
def test_every_emotion_and_level(emotion, level):
    name = parse_clip_name(f"1001_DFA_{emotion}_{level}.mp4")
    assert name.emotion == emotion and name.intensity == level


def test_all_twelve_sentences():
    assert len(CREMA_SENTENCES) == 12
    for code in CREMA_SENTENCES:
        assert parse_clip_name(f"1042_{code}_NEU_XX.flv").sentence == code


def test_grid_names(tmp_path):
    flat = parse_clip_name("grid/bbaf2n.mpg")
    assert (flat.clip_id, flat.actor, flat.emotion, flat.corpus) == ("bbaf2n", "grid", "NEU", "grid")
    speaker = parse_clip_name("GRID/s12/lrwp9a.mpg")
    assert (speaker.clip_id, speaker.actor) == ("s12_lrwp9a", "s12")


@pytest.mark.parametrize("bad", [
    "1000_DFA_ANG_XX.flv",   # actor below 1001
    "1092_DFA_ANG_XX.flv",   # actor above 1091
    "1001_XYZ_ANG_XX.flv",   # unknown sentence
    "1001_DFA_JOY_XX.flv",   # unknown emotion
    "1001_DFA_ANG_ZZ.flv",   # unknown level
    "1001_DFA_ANG.flv",      # a field missing
    "holiday.mp4",
    "1001-DFA-ANG-XX.flv",
])
def test_bad_names_are_rejected_with_a_reason(bad):
    with pytest.raises(ClipRejected) as info:
        parse_clip_name(bad)
    assert info.value.reason == "bad_name"
    assert bad.split("/")[-1] in str(info.value)


def test_find_videos_recurses_and_filters(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ["a/1001_DFA_ANG_XX.flv", "b.MP4", "notes.txt", "c.mpg"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_videos(tmp_path)] == ["1001_DFA_ANG_XX.flv", "b.MP4", "c.mpg"]


def test_missing_source_folder_is_a_clear_error(tmp_path):
    from synthtext.ops.errors import SynthTextError

    with pytest.raises(SynthTextError, match="data.source"):
        find_videos(tmp_path / "nope")
