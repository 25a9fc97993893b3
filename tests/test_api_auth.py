"""A server a team shares: bearer tokens, each token's photos and videos its own (both ways), an admin who
sees all, DELETE, the per-token cap on waiting jobs, retention by age and by disk, and the refusal to listen
on the network without tokens; through the real app and a tiny model."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pytest

from synthtext.app.access import Tokens, add_serve_options, load_tokens, serve_settings
from synthtext.ops.errors import SynthTextError
from tests.test_serve import PHOTO, make_client, save_tiny_generator, wait_done

ALICE, BOB, BOSS = "alice-token-0123456789", "bob-token-0123456789ab", "boss-token-0123456789ab"
TOKENS = f"alice:{ALICE}\nbob:{BOB}  # a comment\nboss:{BOSS}:admin\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_generator(tmp_path_factory.mktemp("models") / "generator", seed=0)


def as_user(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def settings(*argv: str, environ: dict | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    add_serve_options(parser)
    return serve_settings(parser.parse_args(argv), environ or {})


def test_a_network_server_needs_tokens_or_says_it_is_open(tmp_path):
    with pytest.raises(SynthTextError, match="--tokens FILE .* or --insecure-no-auth"):
        settings("--host", "0.0.0.0")
    assert settings("--host", "0.0.0.0", "--insecure-no-auth")["tokens"] is None
    assert settings()["tokens"] is None and settings("--host", "::1")["tokens"] is None  # this machine only
    file = tmp_path / "tokens.txt"
    file.write_text(TOKENS)
    tokens = settings("--host", "0.0.0.0", "--tokens", str(file), "--keep-days", "7")["tokens"]
    assert len(tokens) == 3 and tokens.find(BOSS).admin and tokens.find(ALICE).name == "alice"
    assert tokens.find("alice") is None and tokens.find(ALICE + "x") is None
    from_env = settings("--host", "0.0.0.0", environ={"SYNTHTEXT_TOKENS": f"alice:{ALICE},bob:{BOB}"})["tokens"]
    assert from_env.find(BOB).name == "bob" and not from_env.find(BOB).admin
    for text, words in [(f"alice:{'x' * 8}", "at least 16"), (f"alice:{ALICE}\nbob:{ALICE}", "its own token"),
                        (f"al ice:{ALICE}", "NAME:TOKEN"), (f"alice:{ALICE}:root", "NAME:TOKEN"), ("", "no tokens")]:
        with pytest.raises(SynthTextError, match=words):
            Tokens.parse(text, "tokens.txt")
    with pytest.raises(SynthTextError, match="contradict"):
        settings("--tokens", str(file), "--insecure-no-auth")
    with pytest.raises(SynthTextError, match="no such file"):
        load_tokens(str(tmp_path / "missing.txt"))
    for wrong in (["--keep-days", "0"], ["--max-disk-gb", "-1"], ["--max-queued", "0"]):
        with pytest.raises(SynthTextError):
            settings(*wrong)


def test_each_token_sees_only_its_own_photos_and_videos(model_dir, tmp_path):
    tokens = Tokens.parse(TOKENS, "tokens")
    with make_client(model_dir, tmp_path / "app", tokens=tokens, max_queued=1) as client:
        assert client.get("/api/session").json() == {"auth": True, "user": None, "admin": False}
        assert client.get("/api/session", headers=as_user(BOSS)).json()["admin"]
        assert client.get("/api/session", headers=as_user("nobody-0123456789abc")).status_code == 401
        assert client.get("/api/voices").status_code == client.get("/api/samples").status_code == 200
        for headers in ({}, as_user("nobody-0123456789abc"), {"Authorization": f"Basic {ALICE}"}):
            refused = client.get("/api/videos", headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert "token" in refused.json()["detail"]
        image = {"image": ("p.jpg", PHOTO.read_bytes(), "image/jpeg")}
        photos = {name: client.post("/api/photos", files=image, headers=as_user(token)).json()["photo"]
                  for name, token in (("alice", ALICE), ("bob", BOB))}
        assert photos["alice"] != photos["bob"]  # the same photo: one id each, nothing shared
        fields = {"text": "Hello there.", "emotion": "HAP"}
        jobs = {}
        for name, token in (("alice", ALICE), ("bob", BOB)):
            answer = client.post("/api/videos", data={**fields, "photo": photos[name]}, headers=as_user(token))
            assert answer.status_code == 202 and not answer.json()["shared"], answer.text
            jobs[name] = answer.json()
        assert jobs["alice"]["id"] != jobs["bob"]["id"]  # identical requests: a render each
        busy = client.post("/api/videos", data={**fields, "photo": photos["alice"], "emotion": "SAD"},
                           headers=as_user(ALICE))  # alice's one job still waits or runs
        assert busy.status_code in (202, 429)
        if busy.status_code == 429:
            assert "wait for one to finish" in busy.json()["detail"] and int(busy.headers["retry-after"]) >= 1
        else:
            wait_done(TokenClient(client, ALICE), busy.json()["id"])
        for name, token in (("alice", ALICE), ("bob", BOB)):
            assert wait_done(TokenClient(client, token), jobs[name]["id"])["status"] == "done"
        # both ways: a token can neither list, fetch, use nor delete the other's
        for (me, token), (other, _) in [(("alice", ALICE), ("bob", BOB)), (("bob", BOB), ("alice", ALICE))]:
            mine = client.get("/api/videos", headers=as_user(token)).json()
            assert {j["owner"] for j in mine} == {me} and jobs[other]["id"] not in {j["id"] for j in mine}
            theirs = jobs[other]
            for path in (theirs["url"], f"{theirs['url']}/video", theirs["face_url"]):
                hidden = client.get(path, headers=as_user(token))
                assert hidden.status_code == 404 and me not in hidden.text and other not in hidden.text, path
            missing = client.get(f"/api/videos/{'0' * 24}", headers=as_user(token)).json()["detail"]
            assert client.get(theirs["url"], headers=as_user(token)).json()["detail"] == missing.replace(
                "0" * 24, theirs["id"])  # the same answer as for a job that does not exist
            used = client.post("/api/videos", data={**fields, "photo": photos[other]}, headers=as_user(token))
            assert used.status_code == 404 and "unknown photo" in used.json()["detail"]
            assert client.delete(theirs["url"], headers=as_user(token)).status_code == 404
            assert client.delete(f"/api/photos/{photos[other]}", headers=as_user(token)).status_code == 404
        admin = client.get("/api/videos", headers=as_user(BOSS)).json()
        assert {j["owner"] for j in admin} >= {"alice", "bob"}
        assert client.get(f"{jobs['bob']['url']}/video", headers=as_user(BOSS)).status_code == 200
        # deleting: alice's own job, then the admin deletes bob's
        assert client.delete(jobs["alice"]["url"], headers=as_user(ALICE)).status_code == 204
        assert client.get(jobs["alice"]["url"], headers=as_user(ALICE)).status_code == 404
        assert client.get(jobs["bob"]["url"], headers=as_user(BOB)).json()["status"] == "done"
        assert client.delete(jobs["bob"]["url"], headers=as_user(BOSS)).status_code == 204
        assert client.delete(f"/api/photos/{photos['alice']}", headers=as_user(ALICE)).status_code == 204
        assert client.get(f"/api/photos/{photos['alice']}/face", headers=as_user(ALICE)).status_code == 404
        spec = client.get("/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert spec["paths"]["/api/videos"]["get"]["security"] and "security" not in spec["paths"]["/api/voices"]["get"]
    videos = tmp_path / "app" / "videos"
    assert not any(videos.glob(f"{jobs['alice']['id']}.*")) and not any(videos.glob(f"{jobs['bob']['id']}.*"))


class TokenClient:
    """A client that sends one token with every GET (for ``wait_done``)."""

    def __init__(self, client, token: str):
        self.client, self.token = client, token

    def get(self, path: str):
        return self.client.get(path, headers=as_user(self.token))


def test_retention_deletes_the_oldest_finished_videos_never_a_pending_one(model_dir, tmp_path):
    folder, fields = tmp_path / "app", {"emotion": "NEU"}
    with make_client(model_dir, folder) as client:
        photo = client.post("/api/photos", files={"image": ("p.jpg", PHOTO.read_bytes())}).json()["photo"]
        old, new = (client.post("/api/videos", data={**fields, "photo": photo, "text": text}).json()["id"]
                    for text in ("An old video.", "A new video."))
        assert [wait_done(client, i)["status"] for i in (old, new)] == ["done", "done"]
        spare = client.post("/api/photos", files={"sample": (None, "official_obama.jpg")}).json()["photo"]
    index = json.loads((folder / "index.json").read_text())  # ten days pass for the old video and the spare photo
    for record in index["jobs"]:
        if record["id"] == old:
            record["finished"] -= 10 * 86400
    (folder / "index.json").write_text(json.dumps(index))
    ten_days_ago = time.time() - 10 * 86400
    for path in (folder / "photos").glob(f"{spare}.*"):
        os.utime(path, (ten_days_ago, ten_days_ago))
    with make_client(model_dir, folder, keep_days=7) as client:
        assert [j["id"] for j in client.get("/api/videos").json()] == [new]
        assert not list((folder / "videos").glob(f"{old}.*")) and not list((folder / "photos").glob(f"{spare}.*"))
        assert client.get(f"/api/photos/{photo}/face").status_code == 200  # a kept video still uses it
    # a disk cap smaller than one video: each finished video goes, oldest first; waiting and running ones stay
    with make_client(model_dir, folder, max_disk_gb=1e-6) as client:
        assert client.get("/api/videos").json() == [] and not list((folder / "videos").glob("*.mp4"))
        service = client.app.state.service
        long_text = "This sentence keeps the only worker busy for a while. " * 3
        running, queued = (client.post("/api/videos", data={**fields, "photo": upload_again(client),
                                                             "text": f"{n}. {long_text}"}).json()["id"]
                           for n in range(2))
        while service.get(running)["status"] != "running":
            time.sleep(0.05)
        deleted = service.sweep()  # (the running job takes seconds: it is still running)
        assert running not in deleted and queued not in deleted
        assert service.get(queued)["status"] == "queued"
        end = time.monotonic() + 120
        while client.get(f"/api/videos/{queued}").status_code != 404:  # made, then deleted once it was done
            assert time.monotonic() < end
            time.sleep(0.1)
        assert client.get("/api/videos").json() == [] and not list((folder / "videos").iterdir())


def upload_again(client) -> str:
    return client.post("/api/photos", files={"image": ("p.jpg", PHOTO.read_bytes())}).json()["photo"]
