"""The web page and HTTP API: photo + text + emotion -> a talking-face video, from the registry's champion.

The text may carry emotion tags (``Great news! [sad] But I'm sorry.``, ``synthtext.inference.markup``), or a
recording of speech (wav, mp3, flac, ogg, m4a ...) may drive the face instead of synthesized speech.
The face blinks and its head moves with the speech unless the request says otherwise (``blinks``,
``head_motion`` 0..1), and ``intensity`` is LO, MD, HI or a number 0..1.5 (``synthtext.inference.markup``).
Each finished job records its segments and the self-check of each (the emotion asked for, the one the
face shows, the evaluator's confidence), the warnings for mismatches, or why the check was skipped.
A job's video can be watched while it is made: ``/api/videos/{id}/live`` sends a fragmented MP4 as it
grows (``synthtext.inference.live``; the page plays it through Media Source Extensions).

Forms and uploads are read by FastAPI (python-multipart) into the models of ``server_schema``, from which
``/openapi.json`` is generated; the jobs, photos and the queue are ``server_service.VideoService``'s.

With tokens (``server_access``) every call but the page, the samples, the voices and ``/api/session`` needs
``Authorization: Bearer <token>`` (401 without a known one), and each token sees, fetches and deletes only
its own photos and videos (another's are unknown: 404), an admin token everyone's.
"""

# (no `from __future__ import annotations`: the routes' annotations name this app's own dependencies, which
# FastAPI can read only as objects, not as strings resolved in the module)
import asyncio
import os
import queue
from pathlib import Path
from typing import Annotated

import torch
from fastapi import Depends, FastAPI, Form, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from synthtext.app.access import MAX_QUEUED_PER_TOKEN, OPEN, Access, Tokens
from synthtext.app.model import ModelSource
from synthtext.app.schema import (
    Job,
    NewJob,
    Photo,
    PhotoForm,
    PhotoSample,
    Problem,
    Sample,
    Session,
    VideoForm,
    VideoRequest,
    problems,
)
from synthtext.app.service import TooMany, VideoService
from synthtext.app.uploads import (
    FORM_FIELDS_BYTES,
    MAX_AUDIO_BYTES,
    MAX_UPLOAD_BYTES,
    BadInput,
    BodyLimit,
    samples,
)
from synthtext.ops import tracking
from synthtext.ops.errors import SynthTextError

WEB = Path(__file__).resolve().parent / "web"
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")
NOT_A_FORM = ("send the form as multipart/form-data (an image file plus the text fields), or a JSON object with a "
              "photo id")
JSON_VIDEO = {"requestBody": {"content": {"application/json": {"schema": VideoRequest.model_json_schema()}}}}
JSON_PHOTO = {"requestBody": {"content": {"application/json": {"schema": PhotoSample.model_json_schema()}}}}
IMAGES = {"image/jpeg": {}, "image/png": {}}
UNKNOWN_TOKEN = "the token is not one this server knows: ask its admin for yours"
# What a client (or a fuzzer following the schema) can do next with what a call returned.
PHOTO_LINKS = {
    "face": {"operationId": "photo_face", "parameters": {"photo_id": "$response.body#/photo"}},
    "delete": {"operationId": "delete_photo", "parameters": {"photo_id": "$response.body#/photo"}},
    "video": {"operationId": "add_video", "requestBody": {
        "photo": "$response.body#/photo", "text": "Hello there.", "emotion": "happy"}}}
JOB_LINKS = {name: {"operationId": operation, "parameters": {"job_id": "$response.body#/id"}}
             for name, operation in (("job", "get_video"), ("video", "video_file"), ("delete", "delete_video"))}


def explain(error: RequestValidationError | ValidationError) -> str:
    """A validation error as one sentence: each wrong field with what it should be."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "the request"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if "UploadFile" in message:
            message = "send a file here (a form part with a file name), not a text field"
        parts.append(f"{where}: {message}")
    return "; ".join(dict.fromkeys(parts))


def form_kind(request: Request) -> str:
    """``form``, ``json``, or refused (415) for any other body."""
    kind = request.headers.get("content-type", "").lower()
    if kind.startswith("application/json"):
        return "json"
    if kind.startswith(FORMS):
        return "form"
    raise BadInput(NOT_A_FORM, 415)


async def json_fields(request: Request, model: type[BaseModel]) -> BaseModel:
    """A JSON body read into ``model``, or why it cannot be (422)."""
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise BadInput('send a JSON object of fields ({"photo": ..., "text": ...})')
        return model.model_validate(data)
    except ValueError as exc:  # not JSON, or JSON whose fields are wrong
        raise BadInput(explain(exc) if isinstance(exc, ValidationError) else
                       f"the JSON body could not be read: {exc}") from exc


def file_or_404(path: Path, missing: str, **kwargs) -> FileResponse:
    """A file's response, or 404 when it is gone (deleted since the job or photo was looked up)."""
    if not path.is_file():
        raise BadInput(missing, 404)
    return FileResponse(path, **kwargs)


def who_asks(tokens: Tokens | None):
    """The dependency that says who sent a request: its token's ``Access`` (401 without a known token), or
    ``OPEN`` on a server without tokens (then the schema declares no security)."""
    if tokens is None:
        def everyone() -> Access:
            return OPEN
        return everyone
    bearer = HTTPBearer(auto_error=False, description="a token from the server's --tokens file")

    def token_holder(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Access:
        if credentials is None:
            raise HTTPException(401, "this server needs a token: send the header Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})
        access = tokens.find(credentials.credentials)
        if access is None:
            raise HTTPException(401, UNKNOWN_TOKEN,
                                headers={"WWW-Authenticate": "Bearer"})
        return access
    return token_holder


def create_app(model: str = tracking.CHAMPION_URI, folder: str | Path = "data/app", repo: str | Path = ".",
               workers: int = 1, queue_size: int = 8, voices: dict[str, str | None] | None = None,
               tokens: Tokens | None = None, keep_days: float | None = None, max_disk_gb: float | None = None,
               max_queued: int = MAX_QUEUED_PER_TOKEN) -> FastAPI:
    """The FastAPI app; its workers start and stop with the app's lifespan. With ``tokens`` each call needs
    a bearer token and sees only its owner's jobs; ``keep_days`` and ``max_disk_gb`` delete old videos;
    ``max_queued`` caps the jobs one token may have waiting or running."""
    repo = Path(repo).resolve()
    # The workers share the cores: each job's network gets its share of them (one worker: all of them;
    # more threads than cores make every job slower).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    service = VideoService(ModelSource(model, repo), Path(folder), workers, queue_size, voices, max_queued,
                           keep_days, max_disk_gb)
    who = who_asks(tokens)
    Who = Annotated[Access, Depends(who)]
    locked = problems(401) if tokens else {}  # the statuses of calls that need a token
    service.models.current()  # a missing model or alias is said now, not at the first request

    async def lifespan(app: FastAPI):
        service.start()
        yield
        await asyncio.to_thread(service.stop)

    app = FastAPI(title="SynthText", summary="photo + text + emotion -> a talking-face video",
                  version="1", lifespan=lifespan, responses=problems(422),
                  generate_unique_id_function=lambda route: route.name)  # operation ids: the functions' names
    app.state.service = service
    app.add_middleware(BodyLimit, limits={
        "/api/photos": MAX_UPLOAD_BYTES + FORM_FIELDS_BYTES,
        "/api/videos": MAX_UPLOAD_BYTES + MAX_AUDIO_BYTES + FORM_FIELDS_BYTES})

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(SynthTextError)
    async def synthtext_error(request: Request, exc: SynthTextError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": explain(exc)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route that matched it
            probe = {"type": "http", "path": request.url.path, "root_path": "", "method": "GET"}
            methods = {m for r in app.router.routes if getattr(r, "methods", None) and r.matches(probe)[0].value
                       for m in r.methods}
            headers["Allow"] = ", ".join(sorted(methods))
        detail = str(exc.detail)
        if exc.status_code == 400:  # FastAPI's word for a body it could not parse
            detail = f"the form could not be read ({detail.rstrip('.')}): {NOT_A_FORM}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/api/samples", summary="The bundled sample photos")
    def list_samples() -> list[Sample]:
        return [Sample(name=name, url=f"/api/samples/{name}") for name in samples()]

    @app.get("/api/samples/{name}", summary="One bundled sample photo", response_class=FileResponse,
             responses={200: {"content": IMAGES}, **problems(404)})
    def sample(name: str) -> FileResponse:
        found = samples().get(name)
        if found is None:
            raise BadInput(f"no sample photo {name!r}", 404)
        return FileResponse(found)

    @app.get("/api/voices", summary="The voices a job may name")
    def list_voices() -> list[str]:
        return list(service.voices)

    @app.get("/api/session", summary="Whether this server needs a token and, given one, whose it is",
             responses=problems(401))
    def session(request: Request) -> Session:
        if tokens is None:
            return Session(auth=False, user=None, admin=False)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not token:
            return Session(auth=True, user=None, admin=False)
        access = tokens.find(token.strip()) if scheme.lower() == "bearer" else None
        if access is None:
            raise HTTPException(401, UNKNOWN_TOKEN, headers={"WWW-Authenticate": "Bearer"})
        return Session(auth=True, user=access.name, admin=access.admin)

    @app.post("/api/photos", status_code=201, openapi_extra=JSON_PHOTO,
              responses={201: {"links": PHOTO_LINKS}, **locked, **problems(400, 404, 413, 415, 422)},
              summary="Upload a photo (or pick a sample): its id and the aligned face, or why there is none")
    async def add_photo(request: Request, form: Annotated[PhotoForm, Form(media_type=FORMS[0])],
                        access: Who) -> Photo:
        if form_kind(request) == "json":
            form = PhotoForm(sample=(await json_fields(request, PhotoSample)).sample)
        if form.sample:
            found = samples().get(form.sample)
            if found is None:
                raise BadInput(f"no sample photo {form.sample!r}", 404)
            data = found.read_bytes()
        else:
            data = await form.image.read() if form.image else b""
        return await run_in_threadpool(service.uploads.add_photo, data, access)

    @app.get("/api/photos/{photo_id}/face", summary="The aligned face of an uploaded photo (PNG)",
             response_class=FileResponse, responses={200: {"content": {"image/png": {}}}, **locked, **problems(404)})
    def photo_face(photo_id: str, access: Who) -> FileResponse:
        service.uploads.photo_path(photo_id, access)
        return file_or_404(service.photos / f"{photo_id}.face.png", f"unknown photo {photo_id!r}",
                           media_type="image/png")

    @app.delete("/api/photos/{photo_id}", status_code=204, response_class=Response,
                responses={**locked, **problems(404, 409)},
                summary="Delete an uploaded photo and its face (409 while a video being made uses it)")
    def delete_photo(photo_id: str, access: Who) -> Response:
        service.delete_photo(photo_id, access)
        return Response(status_code=204)

    @app.post("/api/videos", status_code=202, openapi_extra=JSON_VIDEO,
              responses={202: {"headers": {"Location": {"schema": {"type": "string"},
                                                        "description": "the job's URL"}}, "links": JOB_LINKS},
                         **locked, **problems(400, 404, 413, 415, 422),
                         429: {"model": Problem, "headers": {"Retry-After": {"schema": {"type": "integer"}}}}},
              summary="Ask for a video from text (emotion tags allowed) or a recording: 202 and the job "
                      "(identical requests share one job); 429 when the queue, or this token's share of it, is full")
    async def add_video(request: Request, form: Annotated[VideoForm, Form(media_type=FORMS[0])],
                        access: Who) -> NewJob:
        image, audio = form.image, form.audio
        if form_kind(request) == "json":
            fields, image, audio = await json_fields(request, VideoRequest), None, None
        else:
            fields = VideoRequest.model_validate(form.model_dump(exclude={"image", "audio"}))
        photo = {"photo": fields.photo or "", "new": False}
        recording = {"recording": None, "new": False}
        image_data = await image.read() if image else b""
        if image_data:
            photo = await run_in_threadpool(service.uploads.add_photo, image_data, access)
        try:
            if audio and (audio.filename or audio.size):  # a file input left empty sends neither
                recording = await run_in_threadpool(service.uploads.add_recording, await audio.read(),
                                                    audio.filename, access)
            record, new = await run_in_threadpool(service.submit, fields, photo["photo"], recording["recording"],
                                                  access)
        except (BadInput, queue.Full, TooMany) as exc:
            if photo["new"]:  # a refused request keeps nothing
                service.uploads.forget_photo(photo["photo"])
            if recording["new"]:
                service.uploads.forget_recording(recording["recording"])
            if isinstance(exc, BadInput):
                raise
            return JSONResponse({"detail": str(exc) or "the queue is full: try again later"}, status_code=429,
                                headers={"Retry-After": str(service.retry_after())})
        shown = service.public(record)
        shown["shared"] = not new
        return JSONResponse(shown, status_code=202, headers={"Location": shown["url"]})

    @app.get("/api/videos", summary="Every job of this token (of all, for an admin), newest first (the gallery)",
             responses=locked)
    def list_videos(access: Who) -> list[Job]:
        return service.listing(access)

    @app.get("/api/videos/{job_id}", responses={**locked, **problems(404)},
             summary="A job: status, step, progress, error, inputs, model version; when done its segments with the "
                     "emotion each asked for and the one the face shows (the self-check), the warnings for "
                     "mismatches, or why the check was skipped")
    def get_video(job_id: str, access: Who) -> Job:
        return service.public(service.get(job_id, access))

    @app.delete("/api/videos/{job_id}", status_code=204, response_class=Response,
                responses={**locked, **problems(404, 409)},
                summary="Delete a job and its video; a queued job is taken off the queue (409 while it is made)")
    def delete_video(job_id: str, access: Who) -> Response:
        service.delete(job_id, access)
        return Response(status_code=204)

    @app.get("/api/videos/{job_id}/video", summary="The finished mp4", response_class=FileResponse,
             responses={200: {"content": {"video/mp4": {}}}, **locked, **problems(404, 409)})
    def video_file(job_id: str, access: Who, download: bool = False) -> FileResponse:
        record = service.get(job_id, access)
        if record["status"] != "done":
            raise BadInput(f"video {job_id} is {record['status']}, not done", 409)
        return file_or_404(service.videos / f"{job_id}.mp4", f"no video job {job_id!r}", media_type="video/mp4",
                           filename=f"synthtext-{job_id}.mp4" if download else None)

    @app.get("/api/videos/{job_id}/live", response_class=StreamingResponse,
             responses={200: {"content": {"video/mp4": {}}, "headers": {"X-Stream": {
                 "schema": {"type": "string", "enum": ["live", "finished"]},
                 "description": "live: a fragmented MP4 that grows as the frames are encoded; finished: the "
                                "finished mp4 (the job was done)"}}}, **locked, **problems(404, 409)},
             summary="The video while it is being made: a fragmented MP4 sent as it grows, from its first fragment "
                     "until the job ends (any player: the page, ffplay, VLC); a queued job's once it starts; a done "
                     "job's finished mp4 (409 for a failed job)")
    def live_video(job_id: str, access: Who) -> Response:
        record = service.get(job_id, access)
        if record["status"] == "failed":
            raise BadInput(f"video {job_id} failed: {record['error']}", 409)
        if record["status"] == "done":
            return file_or_404(service.videos / f"{job_id}.mp4", f"no video job {job_id!r}", media_type="video/mp4",
                               headers={"X-Stream": "finished"})
        return StreamingResponse(service.live_stream(job_id), media_type="video/mp4",
                                 headers={"X-Stream": "live", "Cache-Control": "no-store"})

    @app.get("/api/model", summary="The model new jobs use: name, version, alias, evaluation figures",
             responses={**locked, **problems(503)})
    def model_info(access: Who) -> dict:
        return service.models.describe()

    @app.get("/api/model/lineage", summary="The `synthtext lineage` record of the model in use", responses=locked)
    def model_lineage(access: Who) -> dict:
        try:
            return service.models.lineage()
        except SynthTextError as exc:
            return {"error": str(exc)}

    return app
