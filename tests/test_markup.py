"""Emotion tags in the text: parsing, errors, frame spans and the smooth per-frame emotion track."""

from __future__ import annotations

import numpy as np
import pytest

from synthtext import EMOTIONS
from synthtext.inference.markup import Segment, emotion_track, parse_markup, segment_frames
from synthtext.ops.errors import SynthTextError


def test_text_without_tags_is_one_segment_with_the_default_emotion():
    assert parse_markup("  Hello   there. ", "happy", "MD") == [Segment("Hello there.", "HAP", "MD")]


def test_tags_set_emotion_and_intensity_from_that_point_on():
    text = "Great news! [sad] But I'm sorry about the dog. [anger:LO] Who did it? [HAP] Never mind."
    assert parse_markup(text, "NEU") == [
        Segment("Great news!", "NEU", "HI"), Segment("But I'm sorry about the dog.", "SAD", "HI"),
        Segment("Who did it?", "ANG", "LO"), Segment("Never mind.", "HAP", "LO")]  # the intensity carries on


def test_tags_without_words_and_repeated_emotions_make_no_extra_segments():
    assert parse_markup("[happy][sad] One. [SAD] Two. [sadness]", "NEU") == [Segment("One. Two.", "SAD", "HI")]
    assert parse_markup("[fear] Boo.", "HAP") == [Segment("Boo.", "FEA", "HI")]  # no empty default segment


@pytest.mark.parametrize("text, names", [
    ("Hello [joyful] there", ("'[joyful]'", "character 7")),
    ("Hello [] there", ("'[]'", "character 7")),
    ("Hi. [sad:XL] Bye.", ("'[sad:XL]'", "character 5", "LO, MD or HI")),
    ("Hi [sad there", ("'[sad there'", "character 4", "never closed")),
    ("Hi sad] there", ("sad]", "character 7", "closes no tag")),
    ("[happy] Hi [[sad]] there", ("character 12",)),
])
def test_bad_tags_name_the_tag_and_its_position(text, names):
    with pytest.raises(SynthTextError) as error:
        parse_markup(text, "NEU")
    assert all(n in str(error.value) for n in names), str(error.value)


def test_tags_alone_are_empty_text():
    with pytest.raises(SynthTextError, match="empty"):
        parse_markup(" [happy] [sad] ", "NEU")


def test_segment_ends_become_contiguous_frame_spans():
    assert segment_frames([10, 25, 40], 42) == [(0, 10), (10, 25), (25, 42)]  # the last runs to the end
    assert segment_frames([50], 42) == [(0, 42)]
    assert segment_frames([5, 3, 9], 12) == [(0, 5), (5, 5), (5, 12)]  # never backwards


def test_emotion_track_is_each_segment_in_its_span_and_changes_smoothly():
    fps, frames = 25, 100
    track = emotion_track([("HAP", 1.0, 0, 50), ("SAD", 0.5, 50, 100)], frames, fps, transition=0.4)
    hap, sad, neu = (EMOTIONS.index(e) for e in ("HAP", "SAD", "NEU"))
    assert track.shape == (frames, len(EMOTIONS)) and np.allclose(track.sum(1), 1.0)
    assert track[:44, hap].min() == 1.0  # before the change: all happiness
    assert np.allclose(track[56:, sad], 0.5) and np.allclose(track[56:, neu], 0.5)  # LO-ish: half neutral
    steps = np.abs(np.diff(track, axis=0)).max()
    assert 0 < steps <= 1.5 / (0.4 * fps) + 1e-6  # a smooth step over 10 frames: at most 1.5x the mean slope
    cut = emotion_track([("HAP", 1.0, 0, 50), ("SAD", 1.0, 50, 100)], frames, fps, transition=0.0)
    assert np.abs(np.diff(cut, axis=0)).max() == 1.0  # (without a transition the change is a cut)
    middle = track[49:51, hap].mean()
    assert 0.3 < middle < 0.7  # centred on the border


def test_spans_follow_the_speech_of_each_segment():
    """Each segment's speech is measured; the border sits in the pause between segments."""
    from synthtext.inference.tts.engines import synthesize_segments

    class Metronome:  # a stand-in voice: one second of tone per word, so spans are easy to predict
        name, sample_rate = "metronome", 1000

        def speak(self, text, emotion, intensity="HI", speed=1.0, seed=None):
            return np.full(1000 * len(text.split()), 0.1, np.float32)

    segments = parse_markup("One two. [sad] Three. [fear] Four five six.", "HAP")
    speech, ends = synthesize_segments(Metronome(), segments, pause=0.2)
    assert len(speech.audio) == 1000 * 6 + 2 * 200
    assert ends == [2000 + 100, 2000 + 200 + 1000 + 100, len(speech.audio)]
    spans = segment_frames([int(round(e * 25 / 1000)) for e in ends], int(len(speech.audio) * 25 / 1000))
    assert spans == [(0, 52), (52, 82), (82, 160)]
