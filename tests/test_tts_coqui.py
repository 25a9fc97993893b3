"""The Coqui engine through the real ``TTS`` library, with a tiny VITS model built here from a Coqui
config (random weights: the point is our adapter against the real loading and synthesis code).

Runs in the coqui environment (``make test-coqui``); in the main environment these tests skip,
except the ones that need no Coqui code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from synthtext.ops.errors import SynthTextError

needs_coqui = pytest.mark.skipif(importlib.util.find_spec("TTS") is None,
                                 reason="coqui-tts is not installed (make coqui builds its environment)")


@pytest.fixture(scope="module")
def tiny_vits(tmp_path_factory) -> Path:
    """A Coqui VITS model folder (config.json + checkpoint) with a small random network, built from
    Coqui's own config classes and saved the way Coqui's trainer saves checkpoints."""
    import torch
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits, VitsArgs

    torch.manual_seed(0)
    args = VitsArgs(hidden_channels=16, hidden_channels_ffn_text_encoder=32, num_heads_text_encoder=2,
                    num_layers_text_encoder=1, num_layers_flow=1, resblock_kernel_sizes_decoder=[3],
                    resblock_dilation_sizes_decoder=[[1, 3, 5]], upsample_rates_decoder=[8, 8, 4],
                    upsample_initial_channel_decoder=32, upsample_kernel_sizes_decoder=[16, 16, 8],
                    num_layers_posterior_encoder=2, out_channels=513, spec_segment_size=8, init_discriminator=False)
    characters = CharactersConfig(characters_class="TTS.tts.utils.text.characters.Graphemes", pad="_", eos="",
                                  bos="", blank=None, characters="abcdefghijklmnopqrstuvwxyz",
                                  punctuations=" !',.?-", phonemes=None)
    config = VitsConfig(model_args=args, use_phonemes=False, add_blank=False, text_cleaner="basic_cleaners",
                        characters=characters)
    config.audio.sample_rate = 16000
    model = Vits(config)
    folder = tmp_path_factory.mktemp("coqui") / "tiny-vits"
    folder.mkdir()
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    return folder


@pytest.fixture(scope="module")
def engine(tiny_vits):
    from synthtext.inference.tts.engines import make_engine

    return make_engine("coqui", tiny_vits)


@needs_coqui
def test_local_model_loads_and_speaks(engine):
    from synthtext.inference.tts.engines import synthesize_text

    assert engine.name == "coqui" and engine.sample_rate == 16000
    speech = synthesize_text(engine, "Hello there. This is a test.", "NEU", seed=1)
    assert speech.sentences == ["Hello there.", "This is a test."]
    assert speech.audio.dtype == np.float32 and speech.seconds > 0.3 and np.isfinite(speech.audio).all()
    again = synthesize_text(engine, "Hello there. This is a test.", "NEU", seed=1)
    np.testing.assert_array_equal(speech.audio, again.audio)  # seeded: reproducible


@needs_coqui
def test_emotion_presets_shape_coqui_speech(engine):
    """Without reference clips the shared presets apply: sadness slower and quieter than fear, by
    about the presets' rate ratio."""
    from synthtext.inference.tts.prosody import PRESETS

    sad = engine.speak("Don't forget a jacket.", "SAD", seed=2)
    fear = engine.speak("Don't forget a jacket.", "FEA", seed=2)
    expected = PRESETS["FEA"].rate / PRESETS["SAD"].rate
    assert len(sad) / len(fear) == pytest.approx(expected, rel=0.05)
    rms = [float(np.sqrt(np.mean(a ** 2))) for a in (sad, fear)]
    assert rms[0] < rms[1]
    assert len(engine.speak("Don't forget a jacket.", "NEU", speed=2.0, seed=2)) < \
        0.6 * len(engine.speak("Don't forget a jacket.", "NEU", seed=2))


@needs_coqui
def test_generate_cli_with_coqui(tiny_vits, tmp_path):
    """The whole inference path with the Coqui voice: the video carries its 16 kHz speech."""
    import cv2
    import torch
    from skimage import data

    from synthtext.cli import main
    from synthtext.data.media import read_audio
    from synthtext.model import Generator
    from synthtext.model.config import profile
    from synthtext.model.io import save_model
    from synthtext.ops.files import write_json_atomic

    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    torch.manual_seed(0)
    save_model(tmp_path / "gen", Generator(profile("tiny")), profile("tiny"))
    write_json_atomic(tmp_path / "gen" / "preprocess.json", {"landmark_backend": "dlib", "size": 128})
    out = tmp_path / "coqui.mp4"
    assert main(["generate", "--image", str(photo), "--text", "Hello there.", "--emotion", "sad", "--tts", "coqui",
                 "--voice", str(tiny_vits), "--model", str(tmp_path / "gen"), "--out", str(out), "--no-prefect"]) == 0
    audio, rate = read_audio(out.with_suffix(".wav"))
    assert rate == 16000 and len(audio) > 0 and out.stat().st_size > 0


@needs_coqui
def test_bad_coqui_models_are_one_clear_error(tmp_path):
    from synthtext.inference.tts.engines import make_engine

    with pytest.raises(SynthTextError, match="not a Coqui model"):
        make_engine("coqui", tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SynthTextError, match="could not load the Coqui model"):
        make_engine("coqui", tmp_path)


def test_reference_clips_by_emotion_name(tmp_path):
    from synthtext.inference.tts.coqui import find_references

    for name in ("ANG.wav", "happy.flac", "Sadness.wav", "notes.txt", "other.wav"):
        (tmp_path / name).write_bytes(b"")
    assert find_references(tmp_path) == {"ANG": tmp_path / "ANG.wav", "HAP": tmp_path / "happy.flac",
                                         "SAD": tmp_path / "Sadness.wav"}
    assert find_references(None) == {}
    with pytest.raises(SynthTextError, match="no reference clips"):
        find_references(_empty(tmp_path))
    with pytest.raises(SynthTextError, match="not found"):
        find_references(tmp_path / "missing")


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_coqui_missing_gives_install_hint(monkeypatch):
    """In an environment without coqui-tts the engine says how to get it."""
    import sys

    monkeypatch.setitem(sys.modules, "TTS", None)
    monkeypatch.setitem(sys.modules, "TTS.api", None)
    from synthtext.inference.tts.engines import make_engine

    with pytest.raises(SynthTextError, match="make coqui"):
        make_engine("coqui", "whatever")
