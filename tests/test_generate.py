"""Inference: text, emotion names, face preparation, window stitching, paste-back, the CLI and batch mode."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthtext import EMOTIONS, parse_emotion
from synthtext.ops.errors import SynthTextError
from tests.conftest import REALDATA, needs_realdata

SENTENCE = "Don't forget a jacket."


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny-profile generator (random weights, fixed seed) saved as the training stages save one."""
    import torch

    from synthtext.model import Generator
    from synthtext.model.config import profile
    from synthtext.model.io import save_model
    from synthtext.ops.files import write_json_atomic

    torch.manual_seed(0)
    cfg = profile("tiny")
    folder = tmp_path_factory.mktemp("models") / "generator"
    generator = Generator(cfg)
    torch.nn.init.normal_(generator.decoder.to_out.weight, std=0.05)  # untrained, but moving: not the zero init
    save_model(folder, generator, cfg)
    write_json_atomic(folder / "preprocess.json", {"landmark_backend": "dlib", "size": 128, "align_mode": 1})
    return folder


@pytest.fixture(scope="module")
def model(model_dir):
    from synthtext.inference.infer import load_generator

    return load_generator(model_dir)


@pytest.fixture(scope="module")
def piper():
    from synthtext.inference.tts.engines import make_engine

    return make_engine("piper")


def streams(path: Path) -> tuple[str, str]:
    """The video and audio stream lines of ffmpeg's report on a file."""
    from synthtext.data.media import ffmpeg_exe

    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return (next(line for line in text.splitlines() if "Video:" in line),
            next(line for line in text.splitlines() if "Audio:" in line))


def frames_in(path: Path) -> int:
    from synthtext.data.media import iter_frames

    return sum(1 for _ in iter_frames(path))


# ---------------------------------------------------------------- emotion names and text


@pytest.mark.parametrize(("given", "code"), [
    ("HAP", "HAP"), ("hap", "HAP"), ("Happy", "HAP"), ("HAPPINESS", "HAP"), ("anger", "ANG"), ("Angry", "ANG"),
    ("disgust", "DIS"), ("fear", "FEA"), ("neutral", "NEU"), ("sadness", "SAD"), ("sad", "SAD"), (" SAD ", "SAD")])
def test_emotion_codes_and_names(given, code):
    assert parse_emotion(given) == code


@pytest.mark.parametrize("given", ["joy", "", "HAPP", "7"])
def test_unknown_emotions_are_refused(given):
    with pytest.raises(SynthTextError, match="unknown emotion"):
        parse_emotion(given)


def test_long_text_is_cut_at_sentence_boundaries():
    from synthtext.inference.tts.text import split_sentences

    text = "First sentence here. Second one?  Third!\nFourth, with a clause; and more words after it."
    assert split_sentences(text) == ["First sentence here.", "Second one?", "Third!",
                                     "Fourth, with a clause; and more words after it."]
    long = " ".join(["word"] * 200) + ". Short end."
    pieces = split_sentences(long, max_chars=60)
    assert all(len(p) <= 60 for p in pieces)
    assert " ".join(pieces) == " ".join(long.split())  # nothing lost, order kept
    clauses = split_sentences("alpha beta gamma, delta epsilon zeta, eta theta iota, kappa lambda.", max_chars=40)
    assert clauses == ["alpha beta gamma, delta epsilon zeta,", "eta theta iota, kappa lambda."]


def _pdf_with_text(path: Path, text: str) -> None:
    """A one-page PDF with ``text`` in Helvetica, written by hand (no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def test_text_from_string_txt_and_pdf(tmp_path):
    from synthtext.inference.tts.text import read_text

    assert read_text("  Hello   there.\n") == "Hello there."
    (tmp_path / "a.txt").write_text("\ufeffFrom a file.\nTwo lines.")
    assert read_text(text_file=tmp_path / "a.txt") == "From a file. Two lines."
    _pdf_with_text(tmp_path / "a.pdf", "Words inside a PDF.")
    assert read_text(text_file=tmp_path / "a.pdf") == "Words inside a PDF."
    (tmp_path / "empty.txt").write_text(" \n ")
    for kwargs, message in [({"text": ""}, "empty"), ({"text_file": tmp_path / "empty.txt"}, "empty"),
                            ({"text_file": tmp_path / "missing.txt"}, "not found")]:
        with pytest.raises(SynthTextError, match=message):
            read_text(**kwargs)
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 nothing else")
    with pytest.raises(SynthTextError, match="not a readable PDF"):
        read_text(text_file=tmp_path / "bad.pdf")


def test_piper_speaks_long_text_in_order_with_pauses(piper):
    from synthtext.inference.tts.engines import synthesize_text

    speech = synthesize_text(piper, "Don't forget a jacket. It is cold outside.", "SAD", seed=3, pause=0.3)
    assert speech.sentences == ["Don't forget a jacket.", "It is cold outside."]
    first = piper.speak("Don't forget a jacket.", "SAD", seed=3)
    second = piper.speak("It is cold outside.", "SAD", seed=4)
    gap = int(0.3 * piper.sample_rate)
    assert speech.audio.shape == (len(first) + gap + len(second),)
    np.testing.assert_array_equal(speech.audio[:len(first)], first)
    assert not speech.audio[len(first):len(first) + gap].any()
    np.testing.assert_array_equal(speech.audio[len(first) + gap:], second)
    fast = synthesize_text(piper, SENTENCE, "NEU", speed=1.5, seed=0)
    normal = synthesize_text(piper, SENTENCE, "NEU", speed=1.0, seed=0)
    assert 0.55 < fast.seconds / normal.seconds < 0.8
    with pytest.raises(SynthTextError, match="speed"):
        synthesize_text(piper, SENTENCE, "NEU", speed=0)


# ---------------------------------------------------------------- face preparation


def test_face_is_prepared_as_in_training(photo):
    from synthtext.data.template import RIGID_POINTS, template
    from synthtext.inference.infer import prepare_face

    face = prepare_face(photo, {"landmark_backend": "dlib", "size": 128})
    assert face.crop.shape == (128, 128, 3) and face.faces == 1
    error = np.abs(face.landmarks[RIGID_POINTS] - template(128)[RIGID_POINTS]).mean()
    assert error < 2.0  # the rigid points land on the template, as in the align stage


def test_several_faces_use_the_largest(photo, tmp_path):
    from synthtext.inference.infer import prepare_face, read_image

    image = read_image(photo)
    small = cv2.resize(image, None, fx=0.5, fy=0.5)
    canvas = np.full((512, 768 + 40, 3), 255, np.uint8)
    canvas[:, :512] = image
    canvas[:256, 552:552 + 256] = small
    both = tmp_path / "two.jpg"
    cv2.imwrite(str(both), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    face = prepare_face(both, {"landmark_backend": "dlib", "size": 128})
    single = prepare_face(photo, {"landmark_backend": "dlib", "size": 128})
    assert face.faces >= 2
    # The big face (scale about 0.81), not the small one (about 1.6); JPEG and the box move points a little.
    np.testing.assert_allclose(face.matrix[:, :2], single.matrix[:, :2], atol=0.02)
    np.testing.assert_allclose(face.matrix[:, 2], single.matrix[:, 2], atol=3.0)


def test_images_of_any_size_and_format(photo, tmp_path):
    from synthtext.inference.infer import prepare_face, read_image

    image = read_image(photo)
    big = cv2.resize(image, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "big.webp"
    cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    gray = tmp_path / "gray.bmp"
    cv2.imwrite(str(gray), cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    reference = prepare_face(photo, {"landmark_backend": "dlib", "size": 128})
    for file in (path, gray):
        face = prepare_face(file, {"landmark_backend": "dlib", "size": 128})
        assert face.crop.shape == (128, 128, 3)
        diff = np.abs(face.crop.astype(float).mean(-1) - reference.crop.astype(float).mean(-1)).mean()
        assert diff < 12, file


def test_paste_back_inverts_the_alignment(photo):
    """A generated crop equal to the aligned crop puts the photo back; a mark at the template's eye lands
    on the photo's eye."""
    from synthtext.data.template import LEFT_EYE, template
    from synthtext.inference.infer import prepare_face
    from synthtext.inference.render import feather_mask, paste_back

    face = prepare_face(photo, {"landmark_backend": "dlib", "size": 128})
    frames = paste_back(face.crop[None], face)
    assert frames.shape == (1, 512, 512, 3)
    inverse = cv2.invertAffineTransform(face.matrix)
    inside = cv2.warpAffine(feather_mask(128), inverse, (512, 512)) > 0.99
    assert inside.sum() > 50 * 50
    diff = np.abs(frames[0].astype(float) - face.image.astype(float))
    assert diff[inside].mean() < 4.0  # resampling twice, nothing more
    assert (diff[cv2.warpAffine(np.ones((128, 128), np.float32), inverse, (512, 512)) == 0] == 0).all()
    marked = face.crop.copy()
    eye = template(128)[LEFT_EYE].mean(0)
    cv2.circle(marked, tuple(int(round(v)) for v in eye), 3, (255, 0, 255), -1)
    pasted = paste_back(marked[None], face)[0]
    magenta = (pasted[..., 0] > 200) & (pasted[..., 1] < 80) & (pasted[..., 2] > 200)
    found = np.argwhere(magenta).mean(0)[::-1]
    expected = cv2.transform(eye[None, None], inverse)[0, 0]
    assert np.linalg.norm(found - expected) < 1.5


def _motion(frames: int, side: int, shift_px: float = 0.0):
    """An animation whose field moves every pixel by ``shift_px`` network pixels to the right (the
    frame samples the reference ``shift_px`` to its left), mask 1: the photo's pixels only."""
    import torch

    from synthtext.inference.infer import Animation

    flow = torch.zeros(frames, 2, side, side)
    flow[:, 0] = -shift_px * 2 / side
    return Animation({"flow": flow, "mask": torch.ones(frames, 1, side, side),
                      "synth": torch.zeros(frames, 3, side, side)})


def test_motion_field_moves_the_photo_at_its_own_resolution(photo):
    """A still field gives back the photo itself; a shift of k network pixels moves a mark k pixels in the
    aligned crop at 8x the network's size, 16k at 16x, and the matching distance in the photo."""
    from synthtext.data.template import LEFT_EYE, template
    from synthtext.inference.infer import prepare_face
    from synthtext.inference.render import face_frames, feather_mask, paste_back

    face = prepare_face(photo, {"landmark_backend": "dlib", "size": 128})
    still = paste_back(_motion(1, 32), face)[0]
    inverse = cv2.invertAffineTransform(face.matrix)
    inside = cv2.warpAffine(feather_mask(128), inverse, (512, 512)) > 0.99
    assert np.abs(still.astype(float) - face.image.astype(float)).max() <= 1  # no resampling of the photo
    marked = face.image.copy()
    eye = cv2.transform(template(128)[LEFT_EYE].mean(0)[None, None], inverse)[0, 0]
    cv2.circle(marked, tuple(int(round(v)) for v in eye), 6, (255, 0, 255), -1)
    face.image = marked

    def centre(frame):
        magenta = (frame[..., 0] > 200) & (frame[..., 1] < 80) & (frame[..., 2] > 200)
        return np.argwhere(magenta).mean(0)[::-1]

    for size in (256, 512):  # (crop_at(128) is the crop made before the mark)
        moved = face_frames(_motion(1, 32, 2.0), face, size)[0]
        rest = face_frames(_motion(1, 32), face, size)[0]
        assert centre(moved) - centre(rest) == pytest.approx([2.0 * size / 32, 0.0], abs=0.6)
    pasted = paste_back(_motion(1, 32, 2.0), face)[0]
    step = np.linalg.norm(inverse[:, 0]) * 2.0 * 128 / 32  # 2 network px -> photo px
    shift = centre(pasted) - centre(marked)
    assert np.linalg.norm(shift) == pytest.approx(step, abs=1.0)
    assert inside.sum() > 50 * 50


def test_motion_faces_are_as_sharp_as_the_photo(model, photo):
    """At 256 px the face comes from the photo at 256 px: far sharper than the network's 32 px enlarged."""
    from synthtext.data.frames import resize_frames
    from synthtext.inference.infer import animate, prepare_face
    from synthtext.inference.render import crop_frames, face_frames

    face = prepare_face(photo, model.preprocess)
    audio = np.random.default_rng(0).normal(0, 0.1, 22050).astype(np.float32)
    animation = animate(model.generator, audio, 22050, face.crop, "HAP")
    sharp = face_frames(animation, face, 256)
    small = resize_frames(crop_frames(animation, resize_frames(face.crop[None], 32)[0]), 256)
    laplacian = lambda f: cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()  # noqa: E731
    assert laplacian(sharp[5]) > 3 * laplacian(small[5])
    assert sharp.shape == (len(animation), 256, 256, 3)


# ---------------------------------------------------------------- windows and stitching


def test_windows_cover_every_frame():
    from synthtext.inference.infer import crossfade_weights, window_starts

    assert window_starts(5, 8, 4) == [0]
    assert window_starts(8, 8, 4) == [0]
    assert window_starts(21, 8, 4) == [0, 4, 8, 12, 13]
    weights = np.zeros(21)
    starts = window_starts(21, 8, 4)
    for s in starts:
        weights[s:s + 8] += crossfade_weights(8, 4, s == starts[0], s == starts[-1])
    assert (weights > 0.3).all()


def test_any_length_of_speech(model, photo):
    from synthtext.inference.infer import frame_count, prepare_face
    from synthtext.inference.render import generate_frames

    face = prepare_face(photo, model.preprocess)
    for seconds in (0.1, 0.5, 3.3):
        audio = np.random.default_rng(0).normal(0, 0.1, int(seconds * 22050)).astype(np.float32)
        frames = generate_frames(model.generator, audio, 22050, face.crop, "HAP")
        assert len(frames) == frame_count(len(audio), 22050, 25) == int(np.ceil(seconds * 25 - 1e-9))
        assert frames.shape[1:] == (model.cfg.image_size, model.cfg.image_size, 3) and frames.dtype == np.uint8


def test_streamed_pieces_are_the_same_frames_as_all_at_once(model, photo):
    """animate_chunks yields bounded pieces as soon as they are final; joined, they are exactly the
    frames of one pass over every window (the cross-fade does not depend on where it is cut)."""
    import torch

    from synthtext.inference.infer import animate_chunks, prepare_face

    face = prepare_face(photo, model.preprocess)
    audio = np.random.default_rng(0).normal(0, 0.1, int(6.3 * 16000)).astype(np.float32)
    whole = list(animate_chunks(model.generator, audio, 16000, face.crop, "SAD", batch=1000))
    pieces = list(animate_chunks(model.generator, audio, 16000, face.crop, "SAD", batch=2))
    assert len(whole) == 1 and len(pieces) > 10
    assert max(len(p) for p in pieces) <= 2 * model.cfg.frames
    for name, value in whole[0].parts.items():
        joined = torch.cat([p.parts[name] for p in pieces])  # equal but for float rounding (batch sizes differ)
        assert joined.shape == value.shape and torch.allclose(joined, value, rtol=0, atol=1e-5), name


def test_video_writer_streams_chunks_and_leaves_nothing_on_error(tmp_path):
    from synthtext.data.media import VideoWriter, iter_frames, probe

    frames = np.random.default_rng(0).integers(0, 255, (30, 64, 48, 3), dtype=np.uint8)
    out = tmp_path / "streamed.mp4"
    with VideoWriter(out, 25, np.zeros(16000 * 30 // 25, np.float32), 16000) as writer:
        for start in range(0, 30, 7):
            writer.write(frames[start:start + 7])
    info = probe(out)
    assert writer.frames == 30 and (info.width, info.height) == (48, 64) and info.has_audio
    assert sum(1 for _ in iter_frames(out)) == 30
    broken = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError), VideoWriter(broken, 25) as writer:
        writer.write(frames[:5])
        raise RuntimeError("killed mid-video")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.mp4"]


def test_a_streamed_video_reports_its_progress_and_matches_its_speech(model, photo, piper, tmp_path):
    from synthtext.data.media import iter_frames
    from synthtext.inference.jobs import Options, make_job
    from synthtext.inference.videojobs import make_video

    job = make_job(str(photo), "This sentence is long enough to need many windows. And here is a second one.",
                   "SAD", str(tmp_path / "long.mp4"))
    steps = []
    result = make_video(job, model, piper, Options(size=64), "key", lambda step, fraction=0.0: steps.append((step,
                                                                                                          fraction)))
    generated = [fraction for step, fraction in steps if step == "generate"]
    assert [step for step, _ in steps if step != "generate"] == ["tts", "face", "encode"]
    assert len(generated) > 2 and generated == sorted(generated) and generated[-1] == 1.0
    decoded = sum(1 for _ in iter_frames(job.out))  # -shortest ends the video with its speech: at most a frame less
    assert result["frames"] - 1 <= decoded <= result["frames"] and result["frames"] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.json", "long.mp4", "long.wav"]


def test_window_borders_leave_no_seam(model, photo, piper):
    """Frame-to-frame change across window borders is no larger than inside windows; without the
    cross-fade (overlap 0) the borders are where the largest jumps are."""
    from synthtext.inference.infer import prepare_face, window_starts
    from synthtext.inference.render import generate_frames
    from synthtext.inference.tts.engines import synthesize_text

    face = prepare_face(photo, model.preprocess)
    speech = synthesize_text(piper, "Don't forget a jacket. It is cold outside today, so take it.", "ANG")
    frames = generate_frames(model.generator, speech.audio, speech.sample_rate, face.crop, "ANG", overlap=2)
    steps = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    w, overlap = model.cfg.frames, 2
    starts = window_starts(len(frames), w, overlap)
    # Frame pairs where a new window enters the blend, and where an old one leaves it.
    borders = sorted({s - 1 for s in starts[1:]} | {s + w - 1 for s in starts[:-1]} & set(range(len(steps))))
    inner = np.setdiff1d(np.arange(len(steps)), borders)
    assert steps[borders].max() <= steps[inner].max() * 1.05
    hard = generate_frames(model.generator, speech.audio, speech.sample_rate, face.crop, "ANG", overlap=0)
    hard_steps = np.abs(np.diff(hard.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    cuts = [s - 1 for s in window_starts(len(hard), w, 0)[1:]]
    assert hard_steps[cuts].mean() > 2 * np.delete(hard_steps, cuts).mean()


# ---------------------------------------------------------------- model loading


def test_model_from_registry_uri(model_dir, tmp_path, monkeypatch):
    import mlflow

    from synthtext.inference.infer import load_generator
    from synthtext.ops import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracking.setup(tmp_path)
    with mlflow.start_run(experiment_id=experiment) as run:
        version = tracking.register_folder(run.info.run_id, model_dir, "generator")
    loaded = load_generator("models:/synthtext-generator@candidate", tmp_path)
    direct = load_generator(model_dir)
    assert loaded.md5 == direct.md5 and loaded.cfg == direct.cfg
    assert load_generator(f"models:/synthtext-generator/{version}", tmp_path).md5 == direct.md5
    with pytest.raises(SynthTextError, match="not found in the registry"):
        load_generator("models:/synthtext-generator@champion", tmp_path)


def test_a_pickled_module_is_not_loaded(model_dir, tmp_path):
    import shutil

    import torch

    from synthtext.inference.infer import load_generator
    from synthtext.model import Generator
    from synthtext.model.config import profile

    folder = tmp_path / "pickled"
    shutil.copytree(model_dir, folder)
    torch.save(Generator(profile("tiny")), folder / "model.pt")  # a whole module: needs unpickling code
    with pytest.raises(SynthTextError, match="can load"):
        load_generator(folder)


# ---------------------------------------------------------------- the CLI


def _cli(*args: str) -> int:
    from synthtext.cli import main

    return main(list(args))


def test_generate_writes_a_playable_video(model_dir, photo, tmp_path, capsys):
    from synthtext.data.media import probe as media_probe
    from synthtext.data.media import read_audio

    out = tmp_path / "hello.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "Don't forget a jacket. It is cold outside.",
                "--emotion", "happiness", "--model", str(model_dir), "--out", str(out), "--no-prefect") == 0
    assert str(out) in capsys.readouterr().out
    info, (video, sound) = media_probe(out), streams(out)
    audio, rate = read_audio(out.with_suffix(".wav"))
    assert rate == 22050 and "h264" in video and "aac" in sound and "22050 Hz" in sound
    assert info.fps == 25 and (info.width, info.height) == (256, 256)  # twice the 128 px aligned crop
    assert abs(frames_in(out) - len(audio) / rate * 25) <= 1
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["emotions"] == ["HAP"] and side["sample_rate"] == 22050 and side["faces_in_photo"] == 1
    with open(out, "rb") as handle:  # +faststart: the index (moov) precedes the media data (mdat)
        head = handle.read(4096)
    assert b"moov" in head


def test_all_emotions_grid_and_paste_back(model_dir, photo, tmp_path):
    from synthtext.data.media import probe as media_probe
    from synthtext.data.media import read_audio

    out = tmp_path / "grid.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "Hello.", "--all-emotions", "--model", str(model_dir),
                "--out", str(out), "--paste-back", "--no-prefect") == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert [s["emotion"] for s in side["segments"]] == list(EMOTIONS)
    assert side["self_check"] == {"skipped": "the six-emotion grid is not checked"}  # with or without an evaluator
    info = media_probe(out)
    assert (info.width, info.height) == (3 * 480, 2 * 480)  # 512 px photo cells fitted to 480
    audio, rate = read_audio(out.with_suffix(".wav"))
    assert abs(frames_in(out) - len(audio) / rate * 25) <= 1
    single = tmp_path / "pasted.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "Hello.", "--emotion", "SAD", "--model",
                str(model_dir), "--out", str(single), "--paste-back", "--no-prefect") == 0
    assert (media_probe(single).width, media_probe(single).height) == (512, 512)


@pytest.mark.parametrize("case", ["empty text", "missing text file", "unknown emotion", "no face", "corrupt image",
                                  "missing model", "unwritable folder", "missing folder", "missing image"])
def test_mistakes_give_one_line_and_no_file(case, model_dir, photo, tmp_path, capsys):
    blank, corrupt = tmp_path / "blank.png", tmp_path / "corrupt.jpg"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    corrupt.write_bytes(photo.read_bytes()[:2000])
    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()
    args = {"--image": str(photo), "--text": "Hello there.", "--emotion": "HAP", "--model": str(model_dir),
            "--out": str(out)}
    if case == "empty text":
        args["--text"] = "   "
    elif case == "missing text file":
        del args["--text"]
        args["--text-file"] = str(tmp_path / "missing.txt")
    elif case == "unknown emotion":
        args["--emotion"] = "joyful"
    elif case == "no face":
        args["--image"] = str(blank)
    elif case == "corrupt image":
        args["--image"] = str(corrupt)
    elif case == "missing image":
        args["--image"] = str(tmp_path / "nobody.png")
    elif case == "missing model":
        args["--model"] = str(tmp_path / "no-model")
    elif case == "unwritable folder":
        args["--out"] = "/proc/video.mp4"
    elif case == "missing folder":
        args["--out"] = str(tmp_path / "nowhere" / "video.mp4")
    code = _cli("generate", *[x for kv in args.items() for x in kv], "--no-prefect")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("synthtext: error:"), err
    assert list(out.parent.iterdir()) == []  # nothing written, not even a temporary


def test_batch_renders_in_parallel_and_reports_failures(prefect_server, model_dir, photo, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("image,text,emotion,intensity\n"
                    f"{photo},Don't forget a jacket.,happy,LO\n"
                    "blank.png,Nobody is here.,SAD,\n"
                    f"{photo},It is cold outside.,anger,HI\n"
                    f"{photo},Unknown feelings.,bored,\n")
    out_dir = tmp_path / "videos"
    assert _cli("generate-batch", str(jobs), "--out-dir", str(out_dir), "--model", str(model_dir)) == 1
    report = json.loads((out_dir / "batch_report.json").read_text())
    status = {r["row"]: r["status"] for r in report["results"]}
    assert status == {1: "ok", 2: "failed", 3: "ok", 4: "failed"}
    reasons = {r["row"]: r.get("reason", "") for r in report["results"]}
    assert "no face" in reasons[2] and "unknown emotion" in reasons[4]
    videos = sorted(p.name for p in out_dir.glob("*.mp4"))
    assert videos == ["001_astronaut_HAPPY.mp4", "003_astronaut_ANGER.mp4"]
    first = (out_dir / videos[0]).stat().st_mtime_ns
    capsys.readouterr()
    assert _cli("generate-batch", str(jobs), "--out-dir", str(out_dir), "--model", str(model_dir)) == 1
    again = json.loads((out_dir / "batch_report.json").read_text())
    assert {r["row"]: r["status"] for r in again["results"]} == {1: "skipped", 2: "failed", 3: "skipped",
                                                                 4: "failed"}
    assert (out_dir / videos[0]).stat().st_mtime_ns == first
    jobs.write_text(jobs.read_text().replace("happy,LO", "happy,HI"))  # an input changed: rendered again
    assert _cli("generate-batch", str(jobs), "--out-dir", str(out_dir), "--model", str(model_dir)) == 1
    third = json.loads((out_dir / "batch_report.json").read_text())
    assert third["results"][0]["status"] == "ok" and third["results"][2]["status"] == "skipped"


def test_generate_runs_the_prefect_flow(prefect_server, model_dir, photo, tmp_path):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def completed_runs() -> int:
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["generate"])),
                                               sort=FlowRunSort.START_TIME_DESC, limit=200)
            return sum(1 for r in runs if r.state and r.state.is_completed())

    before = asyncio.run(completed_runs())
    out = tmp_path / "flow.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "Hello.", "--emotion", "NEU", "--model",
                str(model_dir), "--out", str(out), "--prefect") == 0
    assert asyncio.run(completed_runs()) == before + 1 and out.is_file()
    # one video without --prefect is made in this process: no flow run
    assert _cli("generate", "--image", str(photo), "--text", "Hello.", "--emotion", "NEU", "--model",
                str(model_dir), "--out", str(tmp_path / "here.mp4")) == 0
    assert asyncio.run(completed_runs()) == before + 1 and (tmp_path / "here.mp4").is_file()


@needs_realdata
@pytest.mark.parametrize("face", sorted(p.name for p in (REALDATA / "faces").glob("*.png")) if REALDATA.is_dir()
                         else [])
def test_real_face_crops_are_found_and_aligned(face):
    from synthtext.data.template import RIGID_POINTS, template
    from synthtext.inference.infer import prepare_face

    prepared = prepare_face(REALDATA / "faces" / face, {"landmark_backend": "dlib", "size": 128})
    assert np.abs(prepared.landmarks[RIGID_POINTS] - template(128)[RIGID_POINTS]).mean() < 2.5


# ---------------------------------------------------------------- emotion tags, recorded speech, self-check


def _constant_evaluator(emotion: str):
    """An evaluator that reads every face as ``emotion`` (to test what happens on a match or mismatch)."""
    from synthtext.data.geometry import EXPRESSION_POINTS
    from synthtext.evaluation.evaluator import EmotionEvaluator

    width = 2 * len(EXPRESSION_POINTS)
    intercept = np.where(np.array(EMOTIONS) == emotion, 5.0, 0.0)
    return EmotionEvaluator(np.zeros(width), np.ones(width), np.zeros((len(EMOTIONS), width)), intercept)


def test_the_emotion_condition_changes_at_the_tag(model, photo):
    """Windows wholly before the border are the first emotion's output, windows wholly after it the
    second's (same seed, same noise); across the border the face (the network's moves and the
    expression drawn on them) changes no faster than within a segment, while a cut would jump."""
    from synthtext import EMOTIONS
    from synthtext.inference.expression import ExpressionRig
    from synthtext.inference.infer import animate, prepare_face
    from synthtext.inference.markup import emotion_track

    face = prepare_face(photo, model.preprocess)
    gen = model.generator
    side = gen.cfg.image_size
    rig = ExpressionRig(face.landmarks * side / face.crop.shape[0], (side, side), EMOTIONS)
    audio, rate = np.zeros(16000 * 4, np.float32), 16000  # 100 frames of silence: only the emotion moves
    frames = 100
    smooth = emotion_track([("HAP", 1.0, 0, 50), ("SAD", 1.0, 50, 100)], frames, 25)
    cut = emotion_track([("HAP", 1.0, 0, 50), ("SAD", 1.0, 50, 100)], frames, 25, transition=0.0)

    def shown(condition) -> np.ndarray:
        """The 68 points' moves each frame shows (network pixels)."""
        parts = animate(gen, audio, rate, face.crop, condition, seed=3, landmarks=face.landmarks).parts
        return np.stack([p * side / 2 + rig.landmark_moves(w)
                         for p, w in zip(parts["points"].numpy(), parts["emotion"].numpy(), strict=True)])

    points = {name: shown(condition) for name, condition in (("HAP", "HAP"), ("SAD", "SAD"), ("smooth", smooth),
                                                             ("cut", cut))}
    size = gen.cfg.frames
    assert np.allclose(points["smooth"][:50 - 5 - size], points["HAP"][:50 - 5 - size], atol=1e-6)
    assert np.allclose(points["smooth"][50 + 5 + size:], points["SAD"][50 + 5 + size:], atol=1e-6)
    assert not np.allclose(points["HAP"][60:], points["SAD"][60:], atol=1e-3)  # the emotions do differ

    def jumps(p):
        return np.abs(np.diff(p, axis=0)).max(axis=(1, 2))

    within = max(jumps(points["smooth"][:40]).max(), jumps(points["smooth"][60:]).max())
    assert jumps(points["smooth"][40:60]).max() <= max(within, 0.35 * jumps(points["cut"][40:60]).max())
    assert jumps(points["cut"][40:60]).max() > 2 * jumps(points["smooth"][40:60]).max()


def test_tagged_text_makes_segments_with_their_own_speech(model_dir, photo, tmp_path):
    out = tmp_path / "tags.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "[happy] What a lovely day. [sad:LO] It will rain.",
                "--emotion", "NEU", "--model", str(model_dir), "--out", str(out), "--no-prefect") == 0
    side = json.loads(out.with_suffix(".json").read_text())
    segments = side["segments"]
    assert [(s["emotion"], s["intensity"]) for s in segments] == [("HAP", "HI"), ("SAD", "LO")]
    assert segments[0]["first_frame"] == 0 and segments[0]["end_frame"] == segments[1]["first_frame"]
    assert segments[1]["end_frame"] == side["frames"] and abs(frames_in(out) - side["frames"]) <= 1
    assert 0.25 * side["frames"] < segments[1]["first_frame"] < 0.75 * side["frames"]
    assert side["self_check"] == {"skipped": f"{model_dir} holds no evaluator.json (the emotion evaluator that "
                                             "evaluate trains)"}


@pytest.mark.parametrize("shown, code", [("HAP", 0), ("NEU", 2)])
def test_the_self_check_warns_and_strict_exits_2(shown, code, model_dir, photo, tmp_path, capsys):
    """Every segment is read by the evaluator stored with the model; a mismatch is one warning line and
    with --strict exit status 2 (the video is still written)."""
    import shutil

    import torch

    from synthtext.model import Generator
    from synthtext.model.io import load_model, save_model

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    generator, cfg = load_model(folder, Generator)
    with torch.no_grad():  # a calmer random field than the fixture's, so that the face stays findable
        generator.decoder.to_out.weight.mul_(0.1)
    save_model(folder, generator, cfg)
    _constant_evaluator(shown).save(folder / "evaluator.json")
    out = tmp_path / "checked.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "[happy] Hello there. [happy:LO] Fine.",
                "--model", str(folder), "--out", str(out), "--no-prefect", "--strict", "--emotion", "HAP") == code
    err = capsys.readouterr().err
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["self_check"]["segments"] == 2 and out.is_file()
    assert all(s["shown"] == shown and s["confidence"] > 0.9 for s in side["segments"])
    if code:
        lines = [line for line in err.splitlines() if "warning" in line]
        assert len(lines) == 2 and "asked HAP, the face reads NEU" in lines[0] and lines[0].startswith(
            "synthtext: warning: 0.0-"), err
    else:
        assert "warning" not in err
    # the same video without --strict: the warnings, but exit 0
    again = tmp_path / "again.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "Hello there.", "--model", str(folder), "--out",
                str(again), "--no-prefect", "--emotion", "HAP") == 0
    # pasted back into the photo: the check reads those frames, warped back onto the aligned face
    pasted = tmp_path / "pasted.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "[happy] Hello there. [sad] Fine.", "--model",
                str(folder), "--out", str(pasted), "--no-prefect", "--paste-back", "--emotion", "NEU") == 0
    side = json.loads(pasted.with_suffix(".json").read_text())
    assert [s["shown"] for s in side["segments"]] == [shown, shown]


def _recording(path: Path, rate: int, channels: int, seconds: float = 1.5, level: float = 0.3) -> Path:
    """A tone with a syllable-like envelope, written through the bundled ffmpeg in any format."""
    import soundfile

    from synthtext.data.media import ffmpeg_exe

    t = np.arange(int(rate * seconds)) / rate
    tone = level * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    wav = path.with_suffix(".src.wav")
    soundfile.write(wav, np.stack([tone] * channels, 1).astype(np.float32), rate)
    if path.suffix == ".wav":
        wav.rename(path)
        return path
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(wav), str(path)], check=True)
    wav.unlink()
    return path


@pytest.mark.parametrize("name, rate, channels", [("a.wav", 22050, 2), ("b.mp3", 44100, 1), ("c.flac", 48000, 2),
                                                  ("d.ogg", 16000, 1), ("e.m4a", 44100, 2)])
def test_recorded_speech_in_any_format_drives_the_face(name, rate, channels, model_dir, photo, tmp_path):
    from synthtext.data.media import load_speech

    recording = _recording(tmp_path / name, rate, channels)
    audio, got = load_speech(recording)
    assert got == rate and audio.ndim == 1 and abs(len(audio) / rate - 1.5) < 0.1
    out = tmp_path / "spoken.mp4"
    assert _cli("generate", "--image", str(photo), "--audio", str(recording), "--emotion", "SAD", "--model",
                str(model_dir), "--out", str(out), "--no-prefect") == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["audio"] == str(recording) and side["tts"] is None and side["sample_rate"] == rate
    assert f"{rate} Hz" in streams(out)[1]  # the recording keeps its own rate in the video
    assert abs(frames_in(out) - 1.5 * 25) <= 2 and side["segments"][0]["emotion"] == "SAD"


@pytest.mark.parametrize("case, message", [
    ("silent", "is silent"), ("empty", "is empty"), ("corrupt", "holds no audio"), ("missing", "not found"),
    ("tags", "no text to tag"), ("both", "not --text and --audio"),
])
def test_bad_recordings_give_one_line_and_no_file(case, message, model_dir, photo, tmp_path, capsys):
    recording = tmp_path / "speech.wav"
    extra: list[str] = []
    if case == "silent":
        _recording(recording, 16000, 1, level=0.0)
    elif case == "empty":
        recording.write_bytes(b"")
    elif case == "corrupt":
        recording.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    elif case in ("tags", "both"):
        _recording(recording, 16000, 1)
        extra = ["--text", "[happy] Hello." if case == "tags" else "Hello."]
    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()
    code = _cli("generate", "--image", str(photo), "--audio", str(recording), *extra, "--emotion", "HAP",
                "--model", str(model_dir), "--out", str(out), "--no-prefect")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and message in err[0], err
    assert list(out.parent.iterdir()) == []


def test_batch_rows_take_tags_and_recordings(model_dir, photo, tmp_path):
    recording = _recording(tmp_path / "voice.mp3", 44100, 1)
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("image,text,audio,emotion,out\n"
                    f"{photo},[happy] Hi. [sad] Bye.,,NEU,tags.mp4\n"
                    f"{photo},,voice.mp3,FEA,voice.mp4\n"
                    f"{photo},Hello [glad] you,,NEU,bad.mp4\n")
    out_dir = tmp_path / "videos"
    assert _cli("generate-batch", str(jobs), "--out-dir", str(out_dir), "--model", str(model_dir),
                "--no-prefect") == 1  # one row is wrong
    report = json.loads((out_dir / "batch_report.json").read_text())
    status = {Path(r["out"]).name: r for r in report["results"]}
    assert status["tags.mp4"]["status"] == status["voice.mp4"]["status"] == "ok"
    assert "[glad]" in status["bad.mp4"]["reason"] and "character 7" in status["bad.mp4"]["reason"]
    assert [s["emotion"] for s in json.loads((out_dir / "tags.json").read_text())["segments"]] == ["HAP", "SAD"]
    assert json.loads((out_dir / "voice.json").read_text())["audio"] == str(recording)
