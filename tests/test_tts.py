"""Emotional TTS with the bundled Piper voice: presets, determinism, and that the voice carries the emotion."""

import numpy as np
import pytest

from synthtext.inference.tts import PRESETS, PiperEngine, Prosody, prosody_for
from synthtext.ops.errors import SynthTextError

TEXT = "I think I have a doctor's appointment."


@pytest.fixture(scope="module")
def engine():
    return PiperEngine()


def test_presets_scale_with_intensity():
    assert prosody_for("NEU", "HI") == Prosody()
    high, low = prosody_for("SAD", "HI"), prosody_for("SAD", "LO")
    assert high == PRESETS["SAD"]
    assert low.rate == pytest.approx(1 + (high.rate - 1) / 2) and low.pitch == pytest.approx(high.pitch / 2)
    with pytest.raises(SynthTextError, match="unknown emotion"):
        prosody_for("JOY")
    with pytest.raises(SynthTextError, match="unknown intensity"):
        prosody_for("HAP", "MAX")


def test_seeded_synthesis_is_reproducible(engine):
    first = engine.synthesize(TEXT, prosody_for("HAP"), seed=4)
    assert np.array_equal(first, engine.synthesize(TEXT, prosody_for("HAP"), seed=4))
    assert first.dtype == np.float32 and np.abs(first).max() <= 1.0


def test_user_mistakes(engine, tmp_path):
    with pytest.raises(SynthTextError, match="empty"):
        engine.synthesize("   ")
    with pytest.raises(SynthTextError, match="not found"):
        PiperEngine(tmp_path / "nope.onnx")


def _stats(audio, sample_rate):
    import librosa

    f0 = librosa.yin(audio, fmin=60, fmax=400, sr=sample_rate, frame_length=1024)
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=256)[0]
    voiced = f0[(rms[: len(f0)] > 0.3 * rms.max())]
    return len(audio) / sample_rate, 20 * np.log10(np.sqrt(np.mean(audio ** 2))), float(np.median(voiced))


def test_emotions_are_heard_in_the_intended_direction(engine):
    stats = {e: _stats(engine.synthesize(TEXT, prosody_for(e), seed=1), engine.sample_rate)
             for e in ("ANG", "FEA", "NEU", "SAD")}
    duration, level, pitch = ({e: s[i] for e, s in stats.items()} for i in range(3))
    assert duration["SAD"] > duration["NEU"] > duration["FEA"]
    assert level["ANG"] > level["NEU"] + 3 > level["SAD"] + 6
    assert pitch["FEA"] > pitch["NEU"] * 1.1 and pitch["SAD"] < pitch["NEU"] * 0.95


def test_corpus_engine_speaks_exactly_as_pipers_own_loader():
    """``fast_load=False`` (the sample corpus) loads the optimized graph with Piper's random nodes at their
    indices, once it proves equal: the same speech, sample for sample, as a seeded ``PiperVoice.load``."""
    import onnxruntime
    from piper import PiperVoice

    from synthtext.inference.tts.piper import NEUTRAL, _random_node_indices, index_preserving_model, optimized_model

    engine = PiperEngine(fast_load=False)
    assert engine._exact is not None
    original = engine.voice_path.read_bytes()
    _, wanted = _random_node_indices(original)
    assert wanted and set(_random_node_indices(index_preserving_model(original, optimized_model(
        engine.voice_path)))[1].items()) == set(wanted.items())
    prosody = prosody_for("SAD", "HI")
    for seed in (3, 3_000_000_000):
        onnxruntime.set_seed(seed)
        voice = PiperVoice.load(engine.voice_path, engine.config_path)
        assert np.array_equal(engine.synthesize(TEXT, prosody, seed=seed), engine._speak(voice, TEXT, prosody, 1.0))
    assert not np.array_equal(engine.synthesize(TEXT, NEUTRAL, seed=3), engine.synthesize(TEXT, NEUTRAL, seed=4))
