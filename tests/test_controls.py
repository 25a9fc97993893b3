"""The user's controls of a living face: head motion and blinks (on by default), a continuous expression
intensity (LO, MD, HI named points on 0..1.5), and text that starts with a tag needing no emotion: in the
CLI, the batch file, the job key and the sidecar, and the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthtext import EMOTIONS
from synthtext.inference.markup import (
    Segment,
    emotion_track,
    intensity_amount,
    parse_intensity,
    parse_markup,
    voice_level,
)
from synthtext.ops.errors import SynthTextError
from tests.test_serve import kept_files, make_client, save_tiny_generator, upload, wait_done

HAP, NEU, SAD = (EMOTIONS.index(e) for e in ("HAP", "NEU", "SAD"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_generator(tmp_path_factory.mktemp("models") / "generator", seed=0)


def _cli(*args: str) -> int:
    from synthtext.cli import main

    return main(list(args))


# ---------------------------------------------------------------- intensity


@pytest.mark.parametrize("given, parsed", [("hi", "HI"), (" LO ", "LO"), ("MD", "MD"), (None, "HI"), ("", "HI"),
                                           ("0.8", 0.8), ("1", "HI"), ("0.50", "LO"), ("0", 0.0), ("1.5", 1.5),
                                           (1.25, 1.25)])
def test_intensity_is_a_named_point_or_a_number(given, parsed):
    assert parse_intensity(given) == parsed and type(parse_intensity(given)) is type(parsed)


@pytest.mark.parametrize("given", ["1.7", "-0.1", "nan", "inf", "XX", "strong"])
def test_intensity_out_of_range_or_unknown_is_refused(given):
    with pytest.raises(SynthTextError, match=r"LO, MD or HI, or a number from 0.0 \(neutral\) to 1.5"):
        parse_intensity(given)


def test_the_voice_speaks_at_the_nearest_named_level():
    assert [voice_level(x) for x in ("LO", "MD", "HI", 0.0, 0.6, 0.7, 0.8, 0.9, 1.5)] == \
        ["LO", "MD", "HI", "LO", "LO", "MD", "MD", "HI", "HI"]
    assert [intensity_amount(x) for x in ("LO", "MD", "HI", 0.3)] == [0.5, 0.75, 1.0, 0.3]


@pytest.mark.parametrize("intensity, emotion_weight, neutral_weight", [
    ("HI", None, None), ("LO", 0.5, 0.5), ("MD", 0.75, 0.25), (0.5, 0.5, 0.5), (0.2, 0.2, 0.8), (0.0, 0.0, 1.0),
    (1.5, 1.5, -0.5), (1.2, 1.2, -0.2)])
def test_a_numeric_intensity_weighs_the_emotion_by_its_amount(intensity, emotion_weight, neutral_weight):
    """The face's condition: the emotion weighs the amount, neutral the rest (negative above 1: the
    expression extrapolated beyond the trained one); HI alone is the emotion's code."""
    from synthtext.inference.videojobs import emotion_condition

    condition = emotion_condition([(Segment("Hi.", "HAP", intensity), 0, 30)], 30, 25)
    if emotion_weight is None:
        assert condition == "HAP"
        return
    assert condition.shape == (30, len(EMOTIONS)) and np.allclose(condition.sum(1), 1.0)
    assert np.allclose(condition[:, HAP], emotion_weight) and np.allclose(condition[:, NEU], neutral_weight)
    others = [i for i in range(len(EMOTIONS)) if i not in (HAP, NEU)]
    assert np.all(condition[:, others] == 0)


def test_tags_take_a_number_and_the_track_follows_it():
    segments = parse_markup("[happy:0.8] Good. [sad:1.4] Bad. [fear:LO] Boo. [fear:0.5] Again.", "NEU")
    assert segments == [Segment("Good.", "HAP", 0.8), Segment("Bad.", "SAD", 1.4),
                        Segment("Boo. Again.", "FEA", "LO")]  # 0.5 is LO: one segment
    track = emotion_track([("HAP", 0.8, 0, 50), ("SAD", 1.4, 50, 100)], 100, 25)
    assert np.allclose(track[:40, HAP], 0.8) and np.allclose(track[:40, NEU], 0.2)
    assert np.allclose(track[60:, SAD], 1.4) and np.allclose(track[60:, NEU], -0.4)
    with pytest.raises(SynthTextError, match=r"'\[sad:1.7\]' at character 5: use LO, MD or HI"):
        parse_markup("Hi. [sad:1.7] Bye.")


# ---------------------------------------------------------------- jobs: key, CSV, tagged start


def test_head_motion_blinks_and_intensity_are_part_of_the_job_key(photo, tmp_path):
    from synthtext.inference.jobs import Options, make_job
    from synthtext.inference.videojobs import job_key

    def key(**settings) -> str:
        return job_key(make_job(str(photo), "Hello there.", "HAP", str(tmp_path / "a.mp4"), **settings), Options(), "m")

    default = key()
    assert default == key(head_motion=1.0, blinks=True, intensity="HI") == key(intensity="1.0")  # 1.0 is HI
    changed = [key(head_motion=0.5), key(head_motion=0.0), key(blinks=False), key(intensity=0.8), key(intensity="MD")]
    assert len({default, *changed}) == 1 + len(changed)
    job = make_job(str(photo), "Hello there.", "HAP", str(tmp_path / "a.mp4"))
    assert (job.head_motion, job.blinks) == (1.0, True)  # a living face unless told otherwise
    assert job.life.head_motion == 1.0 and job.life.blinks
    with pytest.raises(SynthTextError, match="head motion 2.0 is out of range: use 0 \\(still\\) to 1"):
        make_job(str(photo), "Hello there.", "HAP", str(tmp_path / "a.mp4"), head_motion=2.0)


def test_text_that_starts_with_a_tag_needs_no_emotion(photo, tmp_path):
    from synthtext.inference.jobs import make_job

    job = make_job(str(photo), "  [happy] Hi. [sad] Bye.", None, str(tmp_path / "a.mp4"))
    assert job.emotions == ["HAP"]
    with pytest.raises(SynthTextError, match="unknown emotion ''"):
        make_job(str(photo), "Hi. [sad] Bye.", None, str(tmp_path / "a.mp4"))  # "Hi." has no emotion


def test_batch_rows_take_head_motion_blinks_and_a_numeric_intensity(photo, tmp_path):
    from synthtext.inference.jobs import read_jobs

    jobs = tmp_path / "jobs.csv"
    jobs.write_text("image,text,emotion,intensity,head_motion,blinks\n"
                    f"{photo},Hello.,HAP,0.8,0.3,no\n"
                    f"{photo},Hello.,SAD,,,\n"
                    f"{photo},[happy] Hi. [sad] Bye.,,LO,0,yes\n"
                    f"{photo},Hello.,HAP,,2,\n"
                    f"{photo},Hello.,HAP,1.7,,\n"
                    f"{photo},Hello.,HAP,,,maybe\n")
    found, failed = read_jobs(jobs, tmp_path)
    assert [(j.row, j.intensity, j.head_motion, j.blinks) for j in found] == [
        (1, 0.8, 0.3, False), (2, "HI", 1.0, True), (3, "LO", 0.0, True)]
    assert found[2].emotions == ["HAP"]
    reasons = {f["row"]: f["reason"] for f in failed}
    assert set(reasons) == {4, 5, 6}
    assert "head motion '2' is out of range" in reasons[4] and "intensity '1.7' is out of range" in reasons[5]
    assert "blinks 'maybe'" in reasons[6]
    # the command's flags are the defaults of the rows that leave the columns empty
    quiet, _ = read_jobs(jobs, tmp_path, head_motion=0.5, blinks=False)
    assert [(j.head_motion, j.blinks) for j in quiet] == [(0.3, False), (0.5, False), (0.0, True)]


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("flags, words", [
    (["--head-motion", "2"], "head motion '2' is out of range: use 0 (still) to 1"),
    (["--head-motion", "lots"], "head motion 'lots' is not a number"),
    (["--intensity", "1.7"], "intensity '1.7' is out of range: use LO, MD or HI, or a number from 0.0"),
    (["--intensity", "XX"], "unknown intensity 'XX'"),
])
def test_the_cli_refuses_bad_settings_with_one_line(flags, words, model_dir, photo, tmp_path, capsys):
    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()
    code = _cli("generate", "--image", str(photo), "--text", "Hello there.", "--emotion", "HAP", "--model",
                str(model_dir), "--out", str(out), "--no-prefect", *flags)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("synthtext: error:") and words in err[0], err
    assert list(out.parent.iterdir()) == []
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"image,text,emotion\n{photo},Hello.,HAP\n")
    if flags[0] == "--head-motion":  # the batch command takes it as the rows' default
        code = _cli("generate-batch", str(jobs), "--out-dir", str(out.parent), "--model", str(model_dir),
                    "--no-prefect", *flags)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and words in err[0], err
        assert list(out.parent.iterdir()) == []


def test_the_cli_needs_an_emotion_only_for_untagged_words(model_dir, photo, tmp_path, capsys):
    out = tmp_path / "untagged.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "Hi. [sad] Bye.", "--model", str(model_dir),
                "--out", str(out), "--no-prefect") == 1
    assert "start the text with an emotion tag" in capsys.readouterr().err
    out = tmp_path / "tagged.mp4"
    assert _cli("generate", "--image", str(photo), "--text", "[happy] Hi. [sad:0.6] Bye.", "--model", str(model_dir),
                "--out", str(out), "--no-prefect") == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert [(s["emotion"], s["intensity"]) for s in side["segments"]] == [("HAP", "HI"), ("SAD", 0.6)]
    assert (side["head_motion"], side["blinks"]) == (1.0, True)  # on by default


def _frames(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (ok_frame := capture.read())[0]:
        frames.append(ok_frame[1])
    capture.release()
    return np.stack(frames).astype(np.float32)


def test_a_still_face_and_a_living_one_differ_and_say_so(model_dir, photo, tmp_path):
    """The same text and seed, still (--head-motion 0 --no-blinks), blinking only, with the defaults
    (blinks and head motion), and still at intensity 1.5: each moves the face its own way, and each
    sidecar says what it was asked for."""
    made = {}
    for name, flags in (("still", ["--head-motion", "0", "--no-blinks"]), ("blinks", ["--head-motion", "0"]),
                        ("alive", []), ("strong", ["--head-motion", "0", "--no-blinks", "--intensity", "1.5"])):
        out = tmp_path / f"{name}.mp4"
        assert _cli("generate", "--image", str(photo), "--text", "Don't forget a jacket. It is cold outside.",
                    "--emotion", "HAP", "--model", str(model_dir), "--out", str(out), "--no-prefect", *flags) == 0
        made[name] = (json.loads(out.with_suffix(".json").read_text()), _frames(out))
    settings = {name: (side["head_motion"], side["blinks"], side["intensity"]) for name, (side, _) in made.items()}
    assert settings == {"still": (0.0, False, "HI"), "blinks": (0.0, True, "HI"), "alive": (1.0, True, "HI"),
                        "strong": (0.0, False, 1.5)}
    assert made["strong"][0]["segments"][0]["intensity"] == 1.5
    assert len({side["inputs_key"] for side, _ in made.values()}) == len(made)
    still = made["still"][1]
    moved = {name: float(np.abs(frames - still).mean()) for name, (_, frames) in made.items() if name != "still"}
    assert all(frames.shape == still.shape for _, frames in made.values())  # HI and 1.5: the same voice
    # (measured: blinks 0.27, alive 6.8, strong 2.1 grey levels on average over the 71 frames)
    assert moved["blinks"] > 0.05 and moved["alive"] > 2.0 and moved["strong"] > 0.5, moved


# ---------------------------------------------------------------- the HTTP API


def test_the_api_takes_head_motion_blinks_and_a_numeric_intensity(model_dir, tmp_path):
    folder = tmp_path / "app"
    with make_client(model_dir, folder) as client:
        document = client.get("/openapi.json").json()
        schema = document["paths"]["/api/videos"]["post"]["requestBody"]["content"]

        def properties(body: dict) -> dict:  # FastAPI names a form's model in components and refers to it
            ref = body["schema"].get("$ref")
            return document["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"] if ref else \
                body["schema"]["properties"]

        fields = properties(schema["multipart/form-data"])
        assert fields["head_motion"]["default"] == 1.0 and fields["head_motion"]["maximum"] == 1.0
        assert fields["blinks"]["default"] is True and "1.5" in fields["intensity"]["description"]
        assert "head_motion" in properties(schema["application/json"])
        photo = upload(client)
        base = {"photo": photo, "text": "Hello there.", "emotion": "HAP"}
        for bad, words in (({"head_motion": "2"}, ("head_motion", "1")),
                           ({"head_motion": "still"}, ("head_motion", "number")),
                           ({"intensity": "1.7"}, ("intensity", "1.7")),
                           ({"blinks": "sometimes"}, ("blinks",))):
            answer = client.post("/api/videos", data={**base, **bad})
            detail = answer.json()["detail"]  # one sentence that names the field and what it takes
            assert answer.status_code == 422 and isinstance(detail, str) and "\n" not in detail, answer.text
            assert all(word in detail for word in words), answer.text
        assert client.get("/api/videos").json() == [] and not list((folder / "videos").iterdir())
        living = client.post("/api/videos", data=base)
        quiet = client.post("/api/videos", data={**base, "head_motion": "0.3", "blinks": "false",
                                                 "intensity": "0.8"})
        assert living.status_code == quiet.status_code == 202, (living.text, quiet.text)
        assert living.json()["id"] != quiet.json()["id"]  # another setting: another video
        assert (living.json()["inputs"]["head_motion"], living.json()["inputs"]["blinks"]) == (1.0, True)
        inputs = quiet.json()["inputs"]
        assert (inputs["head_motion"], inputs["blinks"], inputs["intensity"]) == (0.3, False, 0.8)
        # the same request as JSON (a photo sent before), with the named point spelled as its number
        same = client.post("/api/videos", json={**base, "head_motion": 0.3, "blinks": False, "intensity": 0.8})
        assert same.status_code == 202 and same.json()["id"] == quiet.json()["id"] and same.json()["shared"]
        hi = client.post("/api/videos", json={**base, "intensity": 1})
        assert hi.json()["id"] == living.json()["id"]  # 1 is HI
        # text that starts with a tag needs no emotion
        tagged = client.post("/api/videos", data={"photo": photo, "text": "[sad] Bye now."})
        assert tagged.status_code == 202 and tagged.json()["inputs"]["emotions"] == ["SAD"], tagged.text
        for job in (living, quiet, tagged):
            done = wait_done(client, job.json()["id"])
            assert done["status"] == "done", done["error"]
        side = json.loads((folder / "videos" / f"{quiet.json()['id']}.json").read_text())
        assert (side["head_motion"], side["blinks"], side["intensity"]) == (0.3, False, 0.8)
    assert len([f for f in kept_files(folder) if f.endswith(".mp4")]) == 3
