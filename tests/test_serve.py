"""The web page and HTTP API (``synthtext serve``): jobs through the real inference core with a tiny model,
emotion tags and their self-check, an uploaded recording, the queue, bad input, the registry alias moving,
a killed server, and the page in a real headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO

PHOTO = REPO / "assets" / "heldout" / "grace_hopper.jpg"
ARTIFACTS = REPO / ".pytest_cache" / "artifacts"  # the browser test's screenshot (git-ignored)


# ---------------------------------------------------------------- fixtures and helpers


def save_tiny_generator(folder: Path, seed: int) -> Path:
    """A tiny-profile generator (random weights, fixed seed) saved as the training stages save one."""
    import torch

    from synthtext.model import Generator
    from synthtext.model.config import profile
    from synthtext.model.io import save_model
    from synthtext.ops.files import write_json_atomic

    torch.manual_seed(seed)
    cfg = profile("tiny")
    generator = Generator(cfg)
    torch.nn.init.normal_(generator.decoder.to_out.weight, std=0.05)  # untrained, but moving
    save_model(folder, generator, cfg)
    write_json_atomic(folder / "preprocess.json", {"landmark_backend": "dlib", "size": 128, "align_mode": 1})
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_generator(tmp_path_factory.mktemp("models") / "generator", seed=0)


@pytest.fixture(scope="module")
def checked_model_dir(tmp_path_factory) -> Path:
    """The tiny generator with an emotion evaluator stored beside it (fitted to random features: what it
    reads is arbitrary, but every segment is checked), as ``evaluate`` stores one."""
    from synthtext import EMOTIONS
    from synthtext.data.geometry import EXPRESSION_POINTS
    from synthtext.evaluation.evaluator import EmotionEvaluator

    folder = save_tiny_generator(tmp_path_factory.mktemp("models") / "checked", seed=0)
    features = np.random.default_rng(0).normal(size=(12, 2 * len(EXPRESSION_POINTS)))
    EmotionEvaluator.fit(features, list(EMOTIONS) * 2).save(folder / "evaluator.json")
    return folder


def wav_bytes(tmp_path: Path, seconds: float = 1.0, rate: int = 22050, silent: bool = False) -> bytes:
    """A recording: a 220 Hz tone (sound enough for the face to follow), or digital silence."""
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    path = tmp_path / "speech.wav"
    sf.write(path, np.zeros_like(t) if silent else 0.3 * np.sin(2 * np.pi * 220 * t), rate)
    return path.read_bytes()


def make_client(model: str | Path, folder: Path, repo: Path = REPO, **kwargs):
    from fastapi.testclient import TestClient

    from synthtext.app.server import create_app

    return TestClient(create_app(str(model), folder, repo, **kwargs))


def wait_done(client, job_id: str, timeout: float = 120) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(f"/api/videos/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def upload(client, data: bytes = None) -> str:
    answer = client.post("/api/photos", files={"image": ("any name.jpg", data or PHOTO.read_bytes(), "image/jpeg")})
    assert answer.status_code == 201, answer.text
    return answer.json()["photo"]


def kept_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "index.json")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app, stop_s: float = 120):
    """The app on a free port of 127.0.0.1, uvicorn in a thread of this process (a real server: responses
    stream as they are written). Yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < end and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=stop_s)


# ---------------------------------------------------------------- the API


def test_a_video_through_the_api_is_the_cli_s_video(model_dir, tmp_path):
    from synthtext.cli import main
    from synthtext.data.media import probe

    folder = tmp_path / "app"
    with make_client(model_dir, folder) as client:
        assert client.get("/api/voices").json() == ["default"]
        answer = client.post("/api/videos", files={"image": ("../../etc/evil name.jpg", PHOTO.read_bytes(),
                                                            "image/jpeg")},
                             data={"text": "Don't forget a jacket.", "emotion": "happiness", "intensity": "MD"})
        assert answer.status_code == 202, answer.text
        job = answer.json()
        assert answer.headers["location"] == job["url"] and job["status"] in ("queued", "running")
        done = wait_done(client, job["id"])
        assert done["status"] == "done", done["error"]
        assert set(done["times"]) == {"tts", "face", "generate", "encode"} and done["progress"] == 1.0
        assert done["inputs"]["emotions"] == ["HAP"] and done["inputs"]["intensity"] == "MD"
        assert done["model"]["md5"] and done["model"]["uri"] == str(model_dir)
        video = client.get(done["video_url"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert client.get(done["video_url"], params={"download": True}).headers["content-disposition"].startswith(
            "attachment")
        assert [j["id"] for j in client.get("/api/videos").json()] == [job["id"]]
        face = client.get(done["face_url"])
        assert face.status_code == 200 and cv2.imdecode(np.frombuffer(face.content, np.uint8), 1).shape == (128, 128, 3)
        assert client.get("/openapi.json").json()["paths"]["/api/videos"]["post"]["requestBody"]
        assert "Make the video" in client.get("/").text and client.get("/static/app.js").status_code == 200
    # server-made names only: the upload's name appears nowhere
    assert not any("evil" in name for name in kept_files(folder))
    out = folder / "videos" / f"{job['id']}.mp4"
    info = probe(out)
    assert (info.width, info.height) == (256, 256) and out.read_bytes() == video.content
    # the same inputs through `synthtext generate` have the same inputs hash: one inference core
    photo = next((folder / "photos").glob(f"{done['inputs']['photo']}.jpg"))
    cli_out = tmp_path / "cli.mp4"
    assert main(["generate", "--image", str(photo), "--text", "Don't forget a jacket.", "--emotion", "HAP",
                 "--intensity", "MD", "--model", str(model_dir), "--out", str(cli_out), "--no-prefect"]) == 0
    server_side = json.loads(out.with_suffix(".json").read_text())
    assert json.loads(cli_out.with_suffix(".json").read_text())["inputs_key"] == server_side["inputs_key"]
    assert server_side["inputs_key"].startswith(job["id"])


def test_identical_requests_share_one_render(model_dir, tmp_path):
    folder = tmp_path / "app"
    with make_client(model_dir, folder) as client:
        photo = upload(client)
        fields = {"photo": photo, "text": "Hello there.", "emotion": "SAD"}
        first, second = (client.post("/api/videos", data=fields) for _ in range(2))
        assert first.status_code == second.status_code == 202
        assert first.json()["id"] == second.json()["id"] and second.json()["shared"]
        assert wait_done(client, first.json()["id"])["status"] == "done"
        assert client.post("/api/videos", data=fields).json()["shared"]
        other = client.post("/api/videos", data={**fields, "emotion": "ANG"}).json()
        assert other["id"] != first.json()["id"]
        assert wait_done(client, other["id"])["status"] == "done"
    assert len(list((folder / "videos").glob("*.mp4"))) == 2


def bad_request(case: str, tmp_path: Path) -> tuple[dict, dict, int, str]:
    """(files, fields, expected status, words the message must contain) for one kind of mistake."""
    photo = PHOTO.read_bytes()
    fields = {"text": "Hello there.", "emotion": "HAP"}
    if case == "not an image":
        return {"image": ("a.jpg", b"%PDF-1.4 not a picture", "image/jpeg")}, fields, 422, "not an image"
    if case == "decompression bomb":
        from PIL import Image

        bomb = tmp_path / "bomb.png"
        Image.new("L", (9000, 6000)).save(bomb)  # 54 MP of zeros: a small file, a huge image
        assert bomb.stat().st_size < 1_000_000
        return {"image": ("b.png", bomb.read_bytes(), "image/png")}, fields, 413, "million"
    if case == "too large":
        return {"image": ("c.jpg", photo + bytes(16 * 2**20), "image/jpeg")}, fields, 413, "15 MB"
    if case == "no face":
        ok, grey = cv2.imencode(".png", np.full((240, 320, 3), 128, np.uint8))
        return {"image": ("d.png", grey.tobytes(), "image/png")}, fields, 422, "no face"
    image = {"image": ("e.jpg", photo, "image/jpeg")}
    if case == "empty text":
        return image, {**fields, "text": "  \n "}, 422, "empty"
    if case == "too long text":
        return image, {**fields, "text": "a" * 5001}, 422, "5000"
    if case == "unknown emotion":
        return image, {**fields, "emotion": "joyful"}, 422, "joyful"
    if case == "unknown voice":
        return image, {**fields, "voice": "/etc/passwd"}, 422, "unknown voice"
    if case == "unknown photo":
        return {}, {**fields, "photo": "0" * 32}, 404, "unknown photo"
    if case == "no photo":
        return {}, fields, 404, "unknown photo"
    if case == "unknown tag":
        return image, {**fields, "text": "Great news! [joyful] Really."}, 422, "'[joyful]' at character 13"
    if case == "unclosed tag":
        return image, {**fields, "text": "Great news! [sad But I'm sorry."}, 422, "never closed"
    if case == "tags and all emotions":
        return image, {**fields, "text": "Hi. [sad] Bye.", "all_emotions": "true"}, 422, "do not mix"
    wav = ("speech.wav", wav_bytes(tmp_path), "audio/wav")
    if case == "recording and tagged text":
        return {**image, "audio": wav}, {**fields, "text": "Hi. [sad] Bye."}, 422, "tags"
    if case == "recording and text":
        return {**image, "audio": wav}, fields, 422, "not both"
    if case == "silent recording":
        return {**image, "audio": ("quiet.wav", wav_bytes(tmp_path, silent=True), "audio/wav")}, \
            {"emotion": "HAP"}, 422, "the recording is silent"
    if case == "not a recording":
        return {**image, "audio": ("fake.mp3", b"ID3 but no audio at all" * 50, "audio/mpeg")}, \
            {"emotion": "HAP"}, 422, "the recording holds no audio"
    if case == "recording of an unknown kind":
        return {**image, "audio": ("speech.exe", wav[1], "audio/wav")}, {"emotion": "HAP"}, 415, "a .exe file"
    raise ValueError(case)


BAD_CASES = ["not an image", "decompression bomb", "too large", "no face", "empty text", "too long text",
             "unknown emotion", "unknown voice", "unknown photo", "no photo", "unknown tag", "unclosed tag",
             "tags and all emotions", "recording and tagged text", "recording and text", "silent recording",
             "not a recording", "recording of an unknown kind"]


def test_bad_input_gets_a_clear_4xx_and_nothing_is_kept(model_dir, tmp_path):
    folder = tmp_path / "app"
    with make_client(model_dir, folder) as client:
        for case in BAD_CASES:
            files, fields, status, words = bad_request(case, tmp_path)
            answer = client.post("/api/videos", files=files or None, data=fields)
            assert answer.status_code == status, (case, answer.text)
            assert words in answer.json()["detail"], (case, answer.json())
            assert str(folder) not in answer.json()["detail"]  # no server paths in messages
            assert kept_files(folder) == [], case  # no photo, no job, no video
            assert client.get("/api/videos").json() == [], case
        no_face = client.post("/api/photos", files=bad_request("no face", tmp_path)[0])
        assert no_face.status_code == 422 and "no face" in no_face.json()["detail"]
        assert client.get("/api/videos/not-a-job").status_code == 404
        assert client.get("/api/samples/..%2F..%2Fpyproject.toml").status_code == 404
    assert kept_files(folder) == []


def test_tagged_text_makes_segments_and_each_is_checked(checked_model_dir, tmp_path):
    folder = tmp_path / "app"
    with make_client(checked_model_dir, folder) as client:
        photo = upload(client)
        answer = client.post("/api/videos", data={"photo": photo, "text": "Great news!  [sad] But I'm sorry.",
                                                  "emotion": "happy", "intensity": "MD"})
        assert answer.status_code == 202, answer.text
        done = wait_done(client, answer.json()["id"])
        assert done["status"] == "done", done["error"]
        segments = done["segments"]
        assert [(s["emotion"], s["intensity"], s["text"].strip()) for s in segments] == [
            ("HAP", "MD", "Great news!"), ("SAD", "MD", "But I'm sorry.")]
        assert segments[0]["first_frame"] == 0 and segments[0]["end_frame"] == segments[1]["first_frame"]
        assert segments[1]["end_frame"] == pytest.approx(done["seconds"] * done["fps"], abs=1)
        for segment in segments:  # checked: what the face shows, how sure the evaluator is
            assert segment["shown"] in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD", "no face")
            assert 0.0 <= segment["confidence"] <= 1.0 and segment["match"] == (segment["shown"] == segment["emotion"])
        check = done["self_check"]
        assert check["evaluator"].endswith("evaluator.json") and check["segments"] == 2
        assert check["mismatches"] == len(done["warnings"]) == sum(not s["match"] for s in segments)
        assert done["inputs"]["audio"] is None and done["inputs"]["text"] == "Great news! [sad] But I'm sorry."
        listed = client.get("/api/videos").json()[0]
        assert listed["segments"] == segments and listed["self_check"] == check
    sidecar = json.loads((folder / "videos" / f"{done['id']}.json").read_text())
    assert sidecar["segments"] == segments and sidecar["self_check"] == check
    assert sidecar["warnings"] == done["warnings"]  # written once, as Verdict.warning makes them
    saved = json.loads((folder / "index.json").read_text())["jobs"][0]
    assert saved["segments"] == segments and saved["warnings"] == done["warnings"]


def test_an_uploaded_recording_drives_the_face(model_dir, tmp_path):
    from synthtext.data.media import probe

    folder = tmp_path / "app"
    with make_client(model_dir, folder) as client:
        recording = ("../my speech.wav", wav_bytes(tmp_path), "audio/wav")
        answer = client.post("/api/videos", files={"image": ("p.jpg", PHOTO.read_bytes(), "image/jpeg"),
                                                   "audio": recording},
                             data={"emotion": "SAD", "voice": "default", "speed": "1.5"})
        assert answer.status_code == 202, answer.text
        done = wait_done(client, answer.json()["id"])
        assert done["status"] == "done", done["error"]
        assert done["inputs"]["audio"].endswith(".wav") and done["inputs"]["text"] == ""
        assert done["inputs"]["voice"] is None and done["inputs"]["speed"] == 1.0  # a recording has neither
        assert done["seconds"] == pytest.approx(1.0, abs=0.05)
        assert [s["emotion"] for s in done["segments"]] == ["SAD"]
        assert "skipped" in done["self_check"] and done["warnings"] == []  # the tiny model has no evaluator
        assert client.app.state.service.engines == {}  # no speech synthesizer was made
        again = client.post("/api/videos", files={"audio": ("other name.wav", recording[1], "audio/wav")},
                            data={"photo": done["inputs"]["photo"], "emotion": "SAD"})
        assert again.status_code == 202 and again.json()["id"] == done["id"] and again.json()["shared"]
    sidecar = json.loads((folder / "videos" / f"{done['id']}.json").read_text())
    assert sidecar["audio"] and sidecar["tts"] is None and sidecar["sample_rate"] == 22050
    assert probe(folder / "videos" / f"{done['id']}.mp4").width == 256
    assert [p.name for p in (folder / "recordings").iterdir()] == [done["inputs"]["audio"]]  # a server-made name
    assert not any("speech" in name for name in kept_files(folder))


def test_a_full_queue_answers_429_and_every_accepted_job_ends(model_dir, tmp_path):
    with make_client(model_dir, tmp_path / "app", workers=1, queue_size=1) as client:
        photo = upload(client)
        long_text = "This sentence keeps the only worker busy for a while. " * 4
        answers = [client.post("/api/videos", data={"photo": photo, "text": f"{n}. {long_text}", "emotion": "NEU"})
                   for n in range(4)]
        codes = [a.status_code for a in answers]
        assert codes[0] == 202 and 429 in codes, codes
        refused = next(a for a in answers if a.status_code == 429)
        assert int(refused.headers["retry-after"]) >= 1 and "queue is full" in refused.json()["detail"]
        accepted = [a.json()["id"] for a in answers if a.status_code == 202]
        assert [wait_done(client, i)["status"] for i in accepted] == ["done"] * len(accepted)
        assert sorted(j["id"] for j in client.get("/api/videos").json()) == sorted(accepted)


def test_samples_and_photo_upload_show_the_aligned_face(model_dir, tmp_path):
    with make_client(model_dir, tmp_path / "app") as client:
        names = [s["name"] for s in client.get("/api/samples").json()]
        assert "grace_hopper.jpg" in names and "official_obama.jpg" in names
        photo = client.post("/api/photos", files={"sample": (None, "official_obama.jpg")}).json()
        assert photo["faces"] >= 1 and client.get(photo["face_url"]).headers["content-type"] == "image/png"
        # a phone photo: pixels stored sideways plus an EXIF orientation tag
        from PIL import Image

        turned = tmp_path / "phone.jpg"
        image = Image.open(PHOTO).rotate(90, expand=True)  # stored turned a quarter to the left
        image.save(tmp_path / "sideways.jpg")
        sideways = client.post("/api/photos", files={"image": ("s.jpg", (tmp_path / "sideways.jpg").read_bytes())})
        assert sideways.status_code == 422 and "no face" in sideways.json()["detail"]
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation 6: turn 90 degrees clockwise to display
        image.save(turned, exif=exif)
        answer = client.post("/api/photos", files={"image": ("p.jpg", turned.read_bytes(), "image/jpeg")})
        assert answer.status_code == 201, answer.text
        assert (answer.json()["width"], answer.json()["height"]) == Image.open(PHOTO).size


@pytest.mark.slow
def test_new_jobs_follow_the_champion_alias(tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from synthtext.ops import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracking.setup(tmp_path)
    versions = []
    for seed in (1, 2):
        folder = save_tiny_generator(tmp_path / f"generator{seed}", seed)
        with mlflow.start_run(experiment_id=experiment) as run:
            versions.append(tracking.register_folder(run.info.run_id, folder, "generator"))
    registry = MlflowClient()
    registry.set_registered_model_alias("synthtext-generator", "champion", versions[0])
    fields = {"text": "Hello there.", "emotion": "FEA"}
    with make_client(tracking.CHAMPION_URI, tmp_path / "app", repo=tmp_path) as client:
        photo = upload(client)
        first = wait_done(client, client.post("/api/videos", data={**fields, "photo": photo}).json()["id"])
        assert first["status"] == "done" and first["model"]["version"] == versions[0]
        assert client.get("/api/model").json()["version"] == versions[0]
        registry.set_registered_model_alias("synthtext-generator", "champion", versions[1])  # a retrain promoted
        assert client.get("/api/model").json()["version"] == versions[1]
        second = wait_done(client, client.post("/api/videos", data={**fields, "photo": photo}).json()["id"])
        assert second["status"] == "done" and second["model"]["version"] == versions[1]
        assert second["id"] != first["id"] and second["model"]["md5"] != first["model"]["md5"]
        assert {j["model"]["version"] for j in client.get("/api/videos").json()} == set(versions)


def test_serve_refuses_bad_settings(model_dir, tmp_path, capsys):
    from synthtext.cli import main

    assert main(["serve", "--model", str(model_dir), "--workers", "0"]) == 1
    assert main(["serve", "--model", str(tmp_path / "no-model")]) == 1
    # a server open to the network without tokens is refused before anything loads
    assert main(["serve", "--model", str(model_dir), "--host", "0.0.0.0", "--out-dir", str(tmp_path / "app")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("synthtext: error:") for line in err)
    assert "tokens" in err[2] and not (tmp_path / "app").exists()


def start_server(model_dir: Path, folder: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "synthtext.cli", "serve", "--model", str(model_dir),
                               "--out-dir", str(folder), "--port", str(port)], cwd=REPO, env=env,
                              stdout=log.open("w"), stderr=subprocess.STDOUT)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/voices", timeout=2)
            return server
        except OSError:
            if server.poll() is not None:
                raise AssertionError(f"the server exited: {log.read_text()}") from None
            time.sleep(0.3)
    server.kill()
    raise AssertionError(f"the server did not start: {log.read_text()}")


def post_form(url: str, fields: dict) -> dict:
    data = urllib.parse.urlencode(fields).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=30) as answer:
        return json.loads(answer.read())


LONG_TEXT = "A long speech that is cut short. " * 12


@pytest.mark.slow
def test_a_killed_server_keeps_finished_videos_and_fails_the_interrupted_job(model_dir, tmp_path):
    folder, port = tmp_path / "app", free_port()
    server = start_server(model_dir, folder, port, tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        with make_client(model_dir, tmp_path / "scratch") as scratch:  # the photo id is its hash: same here
            photo_id = upload(scratch)
        boundary = "synthtextboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode() + PHOTO.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"{base}/api/photos", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert json.loads(answer.read())["photo"] == photo_id
        finished = post_form(f"{base}/api/videos", {"photo": photo_id, "text": "Hello.", "emotion": "HAP"})
        end = time.monotonic() + 120
        while json.loads(urllib.request.urlopen(f"{base}{finished['url']}").read())["status"] != "done":
            assert time.monotonic() < end
            time.sleep(0.2)
        long_job = post_form(f"{base}/api/videos", {"photo": photo_id, "emotion": "SAD", "text": LONG_TEXT})
        while json.loads(urllib.request.urlopen(f"{base}{long_job['url']}").read())["step"] not in ("generate",
                                                                                                    "encode"):
            time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    kept = sorted(f"{finished['id']}{s}" for s in (".json", ".mp4", ".wav"))
    assert [p.name for p in sorted((folder / "videos").iterdir()) if not p.name.startswith(".")] == kept
    with make_client(model_dir, folder) as client:  # restarted on the same folder
        assert sorted(p.name for p in (folder / "videos").iterdir()) == kept  # the killed job's temporaries removed
        jobs = {j["id"]: j for j in client.get("/api/videos").json()}
        assert jobs[finished["id"]]["status"] == "done"
        assert client.get(jobs[finished["id"]]["video_url"]).status_code == 200
        interrupted = jobs[long_job["id"]]
        assert interrupted["status"] == "failed" and "interrupted" in interrupted["error"]
        again = client.post("/api/videos", data={"photo": photo_id, "emotion": "SAD", "text": LONG_TEXT})
        assert again.status_code == 202 and again.json()["id"] == long_job["id"]  # submitted again: runs again


# ---------------------------------------------------------------- the page in a real browser


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# CI (.ci/run) installs Chromium and sets this: there a missing browser fails the page tests instead of skipping them
NEEDS_CHROMIUM = CHROMIUM is None and not os.environ.get("SYNTHTEXT_REQUIRE_CHROMIUM")


class DevTools:
    """Just enough of the Chrome DevTools protocol over a websocket to drive one page."""

    def __init__(self, url: str):
        from websockets.sync.client import connect

        self.socket = connect(url, max_size=64 * 2**20, open_timeout=30)
        self.next_id = 0

    def __call__(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        result = self("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 120):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}; status: {self.js('document.body.innerText')}")


@pytest.mark.slow
@pytest.mark.skipif(NEEDS_CHROMIUM, reason="no Chromium: install it to run the browser test "
                    "(Debian/Ubuntu: apt-get install -y chromium)")
def test_the_page_in_headless_chromium(model_dir, tmp_path):
    from synthtext.app.server import create_app

    app = create_app(str(model_dir), tmp_path / "app", REPO)
    with browser_on(app, tmp_path) as (page, base):
        page("Page.navigate", url=f"{base}/")
        page.wait("document.readyState === 'complete' && document.querySelectorAll('#samples button').length > 0")
        # before a photo is chosen: no face box, and no image on the page that failed to load (a broken image)
        assert page.js("getComputedStyle(document.getElementById('face-box')).display") == "none"
        page.wait("[...document.images].every(i => !i.checkVisibility() || (i.complete && i.naturalWidth > 0))")
        assert page.js("getComputedStyle(document.getElementById('voice-box')).display") == "none"  # one voice
        # drop a photo on the drop zone (a real DragEvent carrying a file)
        page.js("(async () => { const blob = await (await fetch('/api/samples/official_obama.jpg')).blob();"
                " const files = new DataTransfer(); files.items.add(new File([blob], 'o.jpg', {type: 'image/jpeg'}));"
                " document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: files,"
                " bubbles: true, cancelable: true})); })()")
        page.wait("!document.getElementById('face-box').hidden")
        dropped = page.js("document.getElementById('face').src")
        assert "/api/photos/" in dropped and dropped.endswith("/face")
        # then upload another through the file picker
        document = page("DOM.getDocument")["root"]["nodeId"]
        picker = page("DOM.querySelector", nodeId=document, selector="#photo-file")["nodeId"]
        page("DOM.setFileInputFiles", nodeId=picker, files=[str(PHOTO)])
        page.wait(f"!document.getElementById('face-box').hidden && document.getElementById('face').src !== "
                  f"'{dropped}' && document.getElementById('face').complete "
                  "&& document.getElementById('face').naturalWidth === 128")
        # a recording instead of the text disables the text; then back to the text
        assert "[happy]" in page.js("document.getElementById('tags-hint').textContent")
        recorder = page("DOM.querySelector", nodeId=document, selector="#audio-file")["nodeId"]
        (tmp_path / "speech.wav").write_bytes(wav_bytes(tmp_path))
        page("DOM.setFileInputFiles", nodeId=recorder, files=[str(tmp_path / "speech.wav")])
        page.wait("document.getElementById('text').disabled && !document.getElementById('audio-clear').hidden")
        assert "speech.wav" in page.js("document.getElementById('audio-note').textContent")
        page.js("document.getElementById('audio-clear').click()")
        assert page.js("!document.getElementById('text').disabled && !document.getElementById('audio-file').value")
        page.js("document.querySelector('#emotions button[data-emotion=\"SAD\"]').click()")
        assert page.js("document.querySelector('#emotions [aria-pressed=\"true\"]').dataset.emotion") == "SAD"
        page.js("document.getElementById('text').value = 'Hello from the browser. [happy] Bye.'; "
                "document.getElementById('text').dispatchEvent(new Event('input'))")
        # the intensity slider with its named points, head motion and blinks (on by default)
        assert page.js("document.getElementById('intensity-value').textContent") == "1.00 (HI)"
        assert page.js("document.getElementById('blinks').checked && document.getElementById('head-motion').value")\
            == "1"
        page.js("document.querySelector('#intensity-points button[data-value=\"0.75\"]').click()")
        assert page.js("document.getElementById('intensity-value').textContent") == "0.75 (MD)"
        page.js("for (const [id, value] of [['intensity', '1.3'], ['head-motion', '0.4']]) {"
                " document.getElementById(id).value = value;"
                " document.getElementById(id).dispatchEvent(new Event('input')); }"
                " document.getElementById('blinks').click()")
        assert page.js("document.getElementById('intensity-value').textContent") == "1.30"
        assert page.js("document.getElementById('head-motion-value').textContent") == "0.40"
        page.js("document.getElementById('submit').click()")
        page.wait("document.querySelector('#steps li.active, #steps li.done') !== null", timeout=10)
        page.wait("document.getElementById('status').textContent.startsWith('Done')")
        state = page.wait("(() => { const v = document.getElementById('player');"
                          " return v.readyState >= 2 && v.duration > 0 ? [v.readyState, v.duration] : null })()")
        assert state[0] >= 2 and 0.5 < state[1] < 10, state
        assert page.js("document.getElementById('download').href").endswith("/video?download=true")
        inputs = page.js("fetch('/api/videos').then(r => r.json()).then(jobs => jobs[0].inputs)")
        assert (inputs["intensity"], inputs["head_motion"], inputs["blinks"]) == (1.3, 0.4, False), inputs
        assert "head motion 0.4 · no blinks" in page.js("document.getElementById('result-inputs').textContent")
        rows = page.js("[...document.querySelectorAll('#segments tr')].map(r => r.textContent)")
        assert len(rows) == 3 and "SAD" in rows[1] and "HAP" in rows[2] and "Bye." in rows[2], rows
        assert not page.js("document.getElementById('check').hidden")
        assert page.js("document.getElementById('check-note').textContent").startswith("self-check skipped: ")
        gallery = page.wait("[...document.querySelectorAll('#gallery .card')].map(c => c.dataset.status + ' ' "
                            "+ c.textContent)")
        assert len(gallery) == 1 and gallery[0].startswith("done") and "Hello from the browser." in gallery[0]
        assert "SAD" not in page.js("document.getElementById('submit-error').textContent")
        page.wait("document.getElementById('model-info').textContent.includes('weights md5')")
        page.js("document.getElementById('player').pause(); document.getElementById('player').currentTime = 0.5")
        time.sleep(0.5)
        shot = base64.b64decode(page("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"])
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "app.png").write_bytes(shot)
        assert cv2.imdecode(np.frombuffer(shot, np.uint8), 1).shape[1] >= 1000


@contextlib.contextmanager
def browser_on(app, tmp_path: Path):
    """The app served on a free port and a headless Chromium driven over DevTools: yields (page, base URL)."""
    assert CHROMIUM, "no Chromium (SYNTHTEXT_REQUIRE_CHROMIUM is set): apt-get install -y chromium"

    profile = tmp_path / "chromium-profile"
    with serve_in_thread(app, stop_s=30) as base:
        browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                    "--window-size=1280,1500", "--autoplay-policy=no-user-gesture-required",
                                    "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            end = time.monotonic() + 60
            while not (profile / "DevToolsActivePort").is_file():
                assert time.monotonic() < end and browser.poll() is None, "Chromium did not start"
                time.sleep(0.2)
            devtools_port = (profile / "DevToolsActivePort").read_text().split()[0]
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list").read())
            page = DevTools(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
            page("Page.enable")
            yield page, base
        finally:
            browser.terminate()
            browser.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.skipif(NEEDS_CHROMIUM, reason="no Chromium: install it to run the browser test "
                    "(Debian/Ubuntu: apt-get install -y chromium)")
def test_the_page_asks_for_the_token_once(model_dir, tmp_path):
    from synthtext.app.access import Tokens
    from synthtext.app.server import create_app

    token = "ann-token-0123456789abcdef"
    voices = {"default": None, "amy": str(tmp_path / "amy.onnx")}  # listed, never loaded here
    app = create_app(str(model_dir), tmp_path / "app", REPO, voices=voices,
                     tokens=Tokens.parse(f"ann:{token}", "tokens"))
    with browser_on(app, tmp_path) as (page, base):
        page("Page.navigate", url=f"{base}/")
        page.wait("document.readyState === 'complete' && !document.getElementById('token-form').hidden")
        assert page.js("document.getElementById('gallery').textContent") == ""  # nothing shown without a token

        def enter(value: str) -> None:
            page.js(f"document.getElementById('token').value = {json.dumps(value)};"
                    " document.getElementById('token-form').requestSubmit()")

        enter("not-a-token-0123456789")
        page.wait("document.getElementById('token-error').textContent.includes('not one this server knows')")
        enter(token)
        page.wait("document.getElementById('token-form').hidden"
                  " && document.getElementById('user').textContent === 'signed in as ann'")
        assert page.js(f"sessionStorage.getItem('synthtext-token') === {json.dumps(token)}")
        page("Page.reload")  # asked once: the tab keeps it
        page.wait("document.readyState === 'complete' && document.getElementById('user').textContent !== ''"
                  " && document.querySelectorAll('#samples button').length > 0")
        assert page.js("document.getElementById('token-form').hidden")
        assert page.js("getComputedStyle(document.getElementById('token-form')).display") == "none"
        page.wait("document.querySelectorAll('#voice option').length === 2")  # two voices: the list shows them
        assert page.js("[...document.querySelectorAll('#voice option')].map(o => o.value)") == ["default", "amy"]
        assert page.js("getComputedStyle(document.getElementById('voice-box')).display") != "none"
        page.js("document.querySelector('#samples button[data-sample=\"official_obama.jpg\"]').click()")
        page.wait("(() => { const face = document.getElementById('face');"
                  " return face.src.startsWith('blob:') && face.complete && face.naturalWidth === 128 })()")
        page.js("document.getElementById('text').value = 'Hello with a token.';"
                " document.getElementById('text').dispatchEvent(new Event('input'));"
                " document.getElementById('submit').click()")
        page.wait("document.getElementById('status').textContent.startsWith('Done')")
        state = page.wait("(() => { const v = document.getElementById('player');"
                          " return v.readyState >= 2 && v.duration > 0 ? [v.src, v.duration] : null })()")
        assert state[0].startswith("blob:")
        # the download link is the finished file, fetched with the token (the live stream may play first)
        page.wait("document.getElementById('download').href.startsWith('blob:')")
        page.wait("document.querySelectorAll('#gallery .card img[src^=\"blob:\"]').length === 1")
        page.js("document.getElementById('delete').click()")
        page.wait("document.getElementById('status').textContent === 'Deleted.'"
                  " && document.getElementById('gallery').textContent === 'No videos yet.'")
    assert not list((tmp_path / "app" / "videos").glob("*.mp4"))
