"""Inference: a photo, speech and an emotion -> talking-face frames.

Faces are prepared exactly as training saw them (the model folder's ``preprocess.json`` names the
landmark backend, crop size and template); speech of any length is cut into the model's windows
with overlap and cross-faded so that window borders leave no seam; ``paste_back`` puts the
generated face back into the photo through the inverse of the alignment transform (the frames
themselves are drawn by ``synthtext.inference.render``).
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import soxr
import torch
from PIL import Image, ImageOps

from synthtext.data.align import warp_frame
from synthtext.data.features import log_mel, mel_windows, to_tensor_frames
from synthtext.data.geometry import similarity, transform_points
from synthtext.data.landmarks import make_backend
from synthtext.data.template import RIGID_POINTS, template
from synthtext.inference.life import Life, life_track
from synthtext.model import Generator, ModelConfig
from synthtext.model.io import load_model
from synthtext.ops import tracking
from synthtext.ops.errors import SynthTextError
from synthtext.ops.hashing import folder_md5

REGISTRY_PREFIX = "models:/"
DEFAULT_PREPROCESS = {"landmark_backend": "dlib", "size": 128, "detect_upsample": 1}
DETECT_MAX_SIDE = 1024  # photos are searched for faces at most this large; landmarks use full resolution


# ---------------------------------------------------------------- the model


@dataclass
class LoadedModel:
    generator: Generator
    cfg: ModelConfig
    preprocess: dict  # how training prepared faces: landmark_backend, size, detect_upsample
    source: str  # what the user named (folder or models:/ URI)
    md5: str  # hash of the model folder's files: identifies the weights in sidecars and lineage
    # The emotion evaluator stored with the model and where it came from, or why there is none: set by
    # ``selfcheck.attach_evaluator`` (kept out of here, so that training code does not depend on it).
    evaluator: object | None = None
    evaluator_note: str = ""


def load_generator(ref: str | Path, repo: str | Path = ".") -> LoadedModel:
    """A generator from a model folder or a registry URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``).

    Weights are read with ``weights_only``: no pickled code from a model file is ever run.
    """
    ref = check_model_ref(ref)
    if ref.startswith(REGISTRY_PREFIX):
        with tempfile.TemporaryDirectory() as scratch:
            folder = _download_registered(ref, repo, Path(scratch))
            return _load_folder(folder, ref)
    return _load_folder(Path(ref), ref)


def check_model_ref(ref: str | Path) -> str:
    """A registry URI, or a folder that exists (checked cheaply, before anything is loaded)."""
    ref = str(ref)
    if not ref.startswith(REGISTRY_PREFIX) and not Path(ref).exists():
        raise SynthTextError(f"model {ref} not found: give a model folder (models/generator after dvc repro) "
                             f"or a registry URI such as {tracking.CHAMPION_URI}")
    return ref


def _download_registered(uri: str, repo: str | Path, scratch: Path) -> Path:
    # mlflow is imported here, not at the top: it takes seconds, and only registry URIs need it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per run, not a bar per file
    import mlflow
    from mlflow.exceptions import MlflowException

    store = tracking.use_store(Path(repo))
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(scratch)))
    except (MlflowException, OSError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise SynthTextError(f"model {uri} not found in the registry {store} ({reason}): run `make demo` "
                             "(or dvc repro) first, or give --model models/generator") from exc


def _load_folder(folder: Path, source: str) -> LoadedModel:
    try:
        generator, cfg = load_model(folder, Generator)
    except pickle.UnpicklingError as exc:
        raise SynthTextError(f"{source}: model.pt is not a plain state_dict (it needs code unpickled to load); "
                             "this code can load only weights") from exc
    except (RuntimeError, KeyError, ValueError, TypeError, EOFError) as exc:
        raise SynthTextError(f"{source} does not hold generator weights this code can load: {exc}") from exc
    prep_file = folder / "preprocess.json"
    preprocess = {**DEFAULT_PREPROCESS, **(json.loads(prep_file.read_text()) if prep_file.is_file() else {})}
    generator.eval()
    return LoadedModel(generator=generator, cfg=cfg, preprocess=preprocess, source=source, md5=folder_md5(folder))


# ---------------------------------------------------------------- the face


@dataclass
class Face:
    image: np.ndarray  # the photo, RGB uint8
    crop: np.ndarray  # aligned crop, RGB uint8 [size, size, 3]
    matrix: np.ndarray  # 2x3 photo -> crop
    landmarks: np.ndarray  # [68, 2] in crop pixels
    faces: int  # faces found in the photo (the largest is used)

    def matrix_at(self, size: int) -> np.ndarray:
        """Photo -> crop transform for a crop of ``size`` pixels (pixel centres kept aligned)."""
        k = size / self.crop.shape[0]
        return np.vstack([self.matrix[0] * k, self.matrix[1] * k]) + np.array([[0, 0, 0.5 * k - 0.5]] * 2)

    def crop_at(self, size: int) -> np.ndarray:
        """The aligned face warped from the photo at ``size`` x ``size`` (sharp at any size)."""
        if size == self.crop.shape[0]:
            return self.crop
        interpolation = cv2.INTER_LINEAR if size > self.crop.shape[0] else cv2.INTER_AREA
        return cv2.warpAffine(self.image, self.matrix_at(size), (size, size), flags=interpolation,
                              borderMode=cv2.BORDER_REPLICATE)


def read_image(path: str | Path) -> np.ndarray:
    """Any still image OpenCV or Pillow can read, as RGB uint8 (EXIF rotation applied)."""
    path = Path(path)
    if not path.is_file():
        raise SynthTextError(f"image {path} not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is not None:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except Exception as exc:  # Pillow raises many types for broken files
        raise SynthTextError(f"{path} is not a readable image (corrupt or an unknown format)") from exc


def prepare_face(path: str | Path, preprocess: dict, backend=None) -> Face:
    """Find the largest face in the photo and align it onto the template, as the align stage does."""
    image = read_image(path)
    backend = backend or make_backend(preprocess["landmark_backend"], int(preprocess.get("detect_upsample", 1)))
    scale = min(1.0, DETECT_MAX_SIDE / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    boxes = backend.detect(small)
    if not boxes:
        raise SynthTextError(f"no face found in {path}: give a photo with one clearly visible, roughly frontal face")
    box = tuple(v / scale for v in boxes[0])
    points = backend.landmarks(image, box)
    size = int(preprocess["size"])
    matrix = similarity(points[RIGID_POINTS], template(size)[RIGID_POINTS])
    crop = warp_frame(image, matrix, size)
    return Face(image=image, crop=crop, matrix=matrix, landmarks=transform_points(matrix, points), faces=len(boxes))


# ---------------------------------------------------------------- generation


def frame_count(samples: int, sample_rate: int, fps: int) -> int:
    """Video frames that cover the speech: its length rounded up to a whole frame."""
    return max(1, int(np.ceil(samples * fps / sample_rate - 1e-9)))


def window_starts(total: int, frames: int, overlap: int) -> list[int]:
    """First frames of the windows that cover ``total`` frames, ``overlap`` frames shared by neighbours."""
    if total <= frames:
        return [0]
    stride = frames - overlap
    starts = list(range(0, total - frames + 1, stride))
    if starts[-1] != total - frames:
        starts.append(total - frames)
    return starts


def crossfade_weights(frames: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """Per-frame weights of one window: linear ramps over the overlapped ends, flat elsewhere."""
    ramp = np.arange(1, frames + 1, dtype=np.float32) / (overlap + 1)
    weights = np.ones(frames, np.float32)
    if not first:
        weights = np.minimum(weights, ramp)
    if not last:
        weights = np.minimum(weights, ramp[::-1])
    return weights


@dataclass
class Animation:
    """The generator's output for one utterance at the model's resolution, before it meets a photo:
    ``frames`` [T, 3, S, S] in [-1, 1] (pixel decoder), or ``flow`` [T, 2, S, S] (normalised
    coordinates), ``mask`` [T, 1, S, S], ``synth`` [T, 3, S, S] and ``points`` [T, 68, 2] (the landmark
    displacements already in ``flow``) (motion decoder); with a ``Life``, ``life`` [T, 4] (lid closure,
    roll, yaw, pitch in degrees: ``synthtext.inference.life``), rendered over the field by ``move_pixels``.
    ``points``: the reference's 68 landmarks in the network's pixels (where its eyes are)."""

    parts: dict[str, torch.Tensor]
    points: np.ndarray | None = None

    def __len__(self) -> int:
        return len(next(iter(self.parts.values())))

    @property
    def motion(self) -> bool:
        return "flow" in self.parts

    def chunk(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        return {k: v[start:stop] for k, v in self.parts.items()}


@torch.no_grad()
def animate(generator: Generator, audio: np.ndarray, sample_rate: int, crop: np.ndarray, emotion: str | np.ndarray,
            seed: int = 0, overlap: int | None = None, batch: int = 16, life: Life | None = None,
            landmarks: np.ndarray | None = None) -> Animation:
    """The generator's output for speech of any length, on the generator's device (the caller chooses
    eval or train mode): every piece of ``animate_chunks`` joined (use that to stream long speech)."""
    pieces = list(animate_chunks(generator, audio, sample_rate, crop, emotion, seed, overlap, batch, life, landmarks))
    return Animation({k: torch.cat([p.parts[k] for p in pieces]) for k in pieces[0].parts}, pieces[0].points)


@torch.no_grad()
def animate_chunks(generator: Generator, audio: np.ndarray, sample_rate: int, crop: np.ndarray,
                   emotion: str | np.ndarray, seed: int = 0, overlap: int | None = None,
                   batch: int = 16, life: Life | None = None, landmarks: np.ndarray | None = None
                   ) -> Iterator[Animation]:
    """The generator's output for speech of any length as consecutive pieces (``batch`` windows' worth
    of frames each), each yielded as soon as no later window touches its frames: memory stays flat in
    the length of the speech.

    The speech is resampled to the model's rate; windows of ``cfg.frames`` overlap by ``overlap``
    frames (default a quarter window) and are cross-faded, so neighbouring windows agree at the border;
    the windows go through the network ``batch`` at a time. ``crop``: the aligned face (any size; the
    network sees it at its own resolution). ``emotion``: one emotion code for the whole speech, or
    per-frame emotion weights [T, 6] (``markup.emotion_track``: an emotion that changes within the clip).
    ``life``: blinks and head motion (``synthtext.inference.life``), scheduled from the speech and ``seed``, in
    each piece's ``life`` part; ``landmarks``: the crop's 68 points in its pixels (default: the template).
    """
    cfg = generator.cfg
    device = next(generator.parameters()).device
    speech = audio.astype(np.float32)
    if sample_rate != cfg.sample_rate:
        speech = soxr.resample(speech, sample_rate, cfg.sample_rate, quality="HQ").astype(np.float32)
    total = frame_count(len(audio), sample_rate, cfg.fps)
    overlap = max(1, cfg.frames // 4) if overlap is None else overlap
    if not 0 <= overlap < cfg.frames:
        raise SynthTextError(f"overlap must be 0..{cfg.frames - 1} frames")
    mel = log_mel(speech, cfg)
    starts = window_starts(total, cfg.frames, overlap)
    reference = torch.from_numpy(to_tensor_frames(crop[None], cfg.image_size)).to(device)
    track = emotion_frames(emotion, total + cfg.frames, cfg.emotions)
    noise = torch.Generator(device=device).manual_seed(seed)
    side = cfg.image_size
    points = template(side) if landmarks is None else np.asarray(landmarks, np.float64) * side / crop.shape[0]
    lively = None
    if life is not None and not life.still and cfg.decoder == "motion":
        lively = torch.from_numpy(life_track(speech, cfg.sample_rate, total, cfg.fps, seed, life)).to(device)
    base = 0  # the first frame not yet yielded: the accumulators hold frames base, base + 1, ...
    acc: dict[str, torch.Tensor] = {}
    weight = torch.zeros(0, device=device)
    for offset in range(0, len(starts), batch):
        chunk = starts[offset:offset + batch]
        mels = torch.from_numpy(np.stack([mel_windows(mel, s, cfg.frames, cfg) for s in chunk])).to(device)
        weights = torch.from_numpy(np.stack([track[s:s + cfg.frames] for s in chunk])).to(device)
        parts, _ = generator.decode(mels, reference.expand(len(chunk), -1, -1, -1), weights, generator=noise)
        if generator.cfg.decoder == "motion" and generator.decoder.expressions is not None:
            parts = without_table(generator, parts, weights)
        end = chunk[-1] + cfg.frames - base  # the accumulators must reach the last window's end
        if len(weight) < end:
            weight = torch.cat([weight, torch.zeros(end - len(weight), device=device)])
            for name, value in parts.items():
                old = acc.get(name, torch.zeros(0, *value.shape[2:], device=device))
                acc[name] = torch.cat([old, torch.zeros(end - len(old), *value.shape[2:], device=device)])
        for i, start in enumerate(chunk):
            w = torch.from_numpy(crossfade_weights(cfg.frames, overlap, start == starts[0],
                                                   start == starts[-1])).to(device)
            at = start - base
            for name, value in parts.items():
                acc[name][at:at + cfg.frames] += value[i] * w.view(-1, *[1] * (value.dim() - 2))
            weight[at:at + cfg.frames] += w
        last = offset + batch >= len(starts)
        ready = total if last else min(starts[offset + batch], total)  # later windows start there
        if ready > base or (last and base == 0):  # (no speech at all: one empty piece)
            n = ready - base
            parts = {k: v[:n] / weight[:n].view(-1, *[1] * (v.dim() - 1)) for k, v in acc.items()}
            if lively is not None:
                parts["life"] = lively[base:ready]
            yield Animation(parts, points)
            acc = {k: v[n:].clone() for k, v in acc.items()}
            weight = weight[n:].clone()
            base = ready


def without_table(generator: Generator, parts: dict[str, torch.Tensor], weights: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
    """The decoder's parts without its learnt expression table's emotion moves, and each frame's emotion
    weights [B, T, 6] as ``emotion``: the expression is drawn on the photo at its own resolution instead,
    from the corpus's action units (``synthtext.inference.expression``), so it is not made twice. NEU's
    row stays (a NEU video is exactly the decoder's). Taking every row out relative to NEU's instead
    (so that NEU's row stayed in every frame) lowered the validation videos' PSNR from 23.92 to 23.68
    against the real clips (static: 23.81): the rows are not a shared posture plus an expression."""
    decoder = generator.decoder
    rows = decoder.expressions.clone()
    rows[generator.cfg.emotions.index("NEU")] = 0
    table = torch.einsum("bte,ekc->btkc", weights.to(rows.dtype), rows)
    return {**parts, "points": parts["points"] - table,
            "flow": parts["flow"] + torch.einsum("btkc,khw->btchw", table, decoder.kernels),
            "emotion": weights.to(parts["flow"].dtype)}


def emotion_frames(emotion: str | np.ndarray, length: int, emotions: tuple[str, ...]) -> np.ndarray:
    """Per-frame emotion weights [length, 6] (float32) from one emotion code or a [T, 6] track (cut, or
    extended with its last row: the last window may reach past the speech)."""
    if isinstance(emotion, str):
        if emotion not in emotions:
            raise SynthTextError(f"unknown emotion {emotion!r}: use one of {', '.join(emotions)}")
        track = np.zeros((1, len(emotions)), np.float32)
        track[0, emotions.index(emotion)] = 1.0
    else:
        track = np.asarray(emotion, np.float32)
        if track.ndim != 2 or track.shape[1] != len(emotions) or not len(track):
            raise SynthTextError(f"emotion weights must be [frames, {len(emotions)}], not {list(track.shape)}")
    return np.concatenate([track, np.repeat(track[-1:], max(0, length - len(track)), axis=0)])[:length]
