"""The API's forms as FastAPI reads them (python-multipart): the schema at /openapi.json is generated from the
models the server validates with, a JSON body works as a form without files, and each mistake in a field
gets one sentence (not a list of error objects), through the real app and a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_serve import PHOTO, kept_files, make_client, save_tiny_generator, upload, wait_done


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_generator(tmp_path_factory.mktemp("models") / "generator", seed=0)


def test_the_schema_is_generated_from_the_forms(model_dir, tmp_path):
    with make_client(model_dir, tmp_path / "app") as client:
        spec = client.get("/openapi.json").json()
    post = spec["paths"]["/api/videos"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}
    form = spec["components"]["schemas"][content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]]
    fields = {"image", "audio", "photo", "text", "emotion", "intensity", "blinks", "head_motion"}
    assert fields <= set(form["properties"])
    assert form["properties"]["speed"]["minimum"] == 0.25 and form["properties"]["text"]["maxLength"] == 5000
    assert "image" not in content["application/json"]["schema"]["properties"]
    # every refusal is one documented sentence: {"detail": "..."}
    problem = {"$ref": "#/components/schemas/Problem"}
    for status in ("404", "413", "415", "422", "429"):
        assert post["responses"][status]["content"]["application/json"]["schema"] == problem, status
    assert spec["paths"]["/api/videos/{job_id}/video"]["get"]["responses"]["200"]["content"] == {"video/mp4": {}}


def test_json_urlencoded_and_multipart_make_the_same_job(model_dir, tmp_path):
    folder = tmp_path / "app"
    with make_client(model_dir, folder) as client:
        photo = upload(client)
        sample = client.post("/api/photos", json={"sample": "grace_hopper.jpg"})  # a sample needs no file
        assert sample.status_code == 201 and sample.json()["photo"] == photo  # (the same photo as PHOTO)
        fields = {"photo": photo, "text": "Hello there.", "emotion": "HAP", "intensity": 0.8, "blinks": False}
        as_json = client.post("/api/videos", json=fields)
        assert as_json.status_code == 202, as_json.text
        as_form = client.post("/api/videos", data={**fields, "blinks": "no"})
        multipart = client.post("/api/videos", data={**fields, "blinks": "false"},
                                files={"audio": ("", b"", "application/octet-stream")})  # an empty file input
        assert as_form.json()["id"] == multipart.json()["id"] == as_json.json()["id"]
        job = wait_done(client, as_json.json()["id"])
        assert job["status"] == "done" and job["inputs"]["blinks"] is False and job["inputs"]["intensity"] == 0.8
        default = client.post("/api/videos", data={"photo": photo, "text": "Hello there.", "emotion": "HAP"}).json()
        assert default["inputs"]["blinks"] is True and default["inputs"]["head_motion"] == 1.0  # left out: on


def test_each_mistake_is_one_sentence_and_keeps_nothing(model_dir, tmp_path):
    folder = tmp_path / "app"
    with make_client(model_dir, folder) as client:
        image = {"image": ("p.jpg", PHOTO.read_bytes(), "image/jpeg")}
        cases = [
            ({"data": {"text": "Hi.", "emotion": "HAP", "speed": "9"}, "files": image}, 422, "speed"),
            ({"data": {"text": "Hi.", "emotion": "HAP", "blinks": "maybe"}, "files": image}, 422, "blinks"),
            ({"data": {"text": "Hi.", "emotion": "HAP", "seed": "-1"}, "files": image}, 422, "seed"),
            ({"json": [1, 2]}, 422, "JSON object"),
            ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "could not be read"),
            ({"content": b"text", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
            ({"content": b"x" * (31 * 2**20), "headers": {"content-type": "multipart/form-data; boundary=b"}},
             413, "30 MB"),
        ]
        for request, status, words in cases:
            answer = client.post("/api/videos", **request)
            assert answer.status_code == status, (request.get("data"), answer.text)
            assert isinstance(answer.json()["detail"], str) and words in answer.json()["detail"], answer.json()
            assert kept_files(folder) == []
        wrong = client.patch("/api/videos")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"
        assert client.get("/api/videos/abc/video", params={"download": "perhaps"}).status_code == 422
