"""Evaluation of a generator on people it never trained on: the validation speakers (against a static
and a real baseline) and held-out photos of people in neither split.

Validation clips: every video (generated under each of the six emotions, the static reference frame
repeated, the real clip) is measured the same way at the aligned crop size, the clips' own
resolution (a motion decoder moves the reference's own pixels at that size; a pixel decoder's
frames are scaled up to it): landmarks by the pipeline's own backend (detected once, then tracked,
as in the align stage).

Held-out photos: each photo speaks the speech of a few validation clips in all six emotions, as the
aligned face at ``size`` px (``render.face_frames``) and pasted back into the photo at its own
resolution (``render.paste_back``); landmarks of pasted-back frames are tracked in the photo's
face region, at the photo's resolution.

The metrics are ``synthtext.evaluation.table``'s; measuring one video is ``synthtext.evaluation.measures``'.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np

from synthtext import EMOTIONS
from synthtext.data.clipfile import audio_length, read_attrs, read_clip
from synthtext.data.frames import frames_at_height
from synthtext.evaluation.evaluator import EmotionEvaluator, Measurer
from synthtext.evaluation.face_metrics import FaceJudge, Reference
from synthtext.evaluation.liveliness import measure_video as liveliness
from synthtext.evaluation.measures import (
    Measured,
    best_offset_correlation,
    confusion,
    ground_truth_opening,
    measure,
    mouth_opening,
    speech_envelope,
    sync_metrics,
    video_metrics,
)
from synthtext.evaluation.sync_metrics import frechet_distance, inception_features, load_inception, lse
from synthtext.evaluation.table import Video, summarise
from synthtext.inference.infer import animate, prepare_face
from synthtext.inference.life import Life
from synthtext.inference.render import face_frames, generate_frames, paste_back
from synthtext.ops.config import EVALUATE_REFERENCES
from synthtext.ops.errors import SynthTextError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# ---------------------------------------------------------------- validation clips


@dataclass
class Speech:
    clip: str
    audio: np.ndarray
    sample_rate: int
    fps: float


def clip_inputs(path: str | Path, seconds: float | None):
    """(the clip, its first ``seconds`` of real frames at the crop size, that speech)."""
    clip = read_clip(path)
    fps, rate = float(clip.attrs["fps"]), int(clip.attrs["sample_rate"])
    frames = min(len(clip.video), int(round(seconds * fps))) if seconds else len(clip.video)
    audio = clip.audio[:audio_length(frames, rate, fps)]
    return clip, clip.video[:frames], Speech(str(clip.attrs["clip_id"]), audio, rate, fps)


def neutral_features(frame: np.ndarray, measurer: Measurer, aligned: bool = True) -> np.ndarray:
    """The expression geometry of a reference frame or photo: the evaluator reads every video relative
    to the face it starts from, so that a person's face shape is not taken for an emotion."""
    return measure(frame[None], measurer, aligned).features


def evaluator_sample(path: str | Path, reference_file: str | Path, measurer: Measurer,
                     seconds: float | None) -> tuple[np.ndarray, str]:
    """The evaluator's features of a real clip (relative to the first frame of ``reference_file``, a
    neutral clip of the same actor), measured as every video is, and its emotion label."""
    clip, real, _ = clip_inputs(path, seconds)
    neutral = neutral_features(first_frame(str(reference_file)), measurer)
    return measure(real, measurer).features - neutral, str(clip.attrs["emotion"])


def spread_clips(files: list[str], count: int | None) -> list[str]:
    """``count`` clips spread over the people and the emotions: the actors in turn, each actor's clips
    in turn over the emotions, starting where the previous actor stopped (None: every clip, as given)."""
    if not count or count >= len(files):
        return list(files)
    attrs = {f: read_attrs(f) for f in files}
    actors = sorted({str(a["actor"]) for a in attrs.values()})
    per_actor = -(-count // len(actors))
    queues = []
    for index, actor in enumerate(actors):
        mine = [f for f in files if str(attrs[f]["actor"]) == actor]
        start = index * per_actor
        order = sorted(mine, key=lambda f: (sum(1 for g in mine[:mine.index(f)]
                                                if attrs[g]["emotion"] == attrs[f]["emotion"]),
                                            (EMOTIONS.index(attrs[f]["emotion"]) - start) % len(EMOTIONS)))
        queues.append(order)
    picked: list[str] = []
    while len(picked) < count:
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def reference_clips(files: list[str], kind: str) -> dict[str, str]:
    """The clip whose first frame is each clip's reference: a neutral clip of the same actor
    (``neutral``, as in training with ``reference: neutral``), or the clip itself (``clip``)."""
    if kind not in EVALUATE_REFERENCES:
        raise SynthTextError(f"evaluate.reference must be one of {', '.join(EVALUATE_REFERENCES)}, not {kind!r}")
    attrs = {f: read_attrs(f) for f in files}
    neutral = {}
    for f, a in sorted(attrs.items()):
        if a["emotion"] == "NEU":
            neutral.setdefault(str(a["actor"]), f)
    if kind == "clip":
        return {f: f for f in files}
    return {f: neutral.get(str(a["actor"]), f) for f, a in attrs.items()}


@functools.lru_cache(maxsize=64)
def first_frame(path: str) -> np.ndarray:
    """A clip file's first frame (a reference frame: read once per evaluation)."""
    with h5py.File(path, "r") as f:
        return f["video"][0]


@functools.lru_cache(maxsize=64)
def first_landmarks(path: str) -> np.ndarray:
    """The 68 points of a clip file's first frame (where a generated video draws the expression)."""
    with h5py.File(path, "r") as f:
        return f["landmarks"][0]


@dataclass
class Instruments:
    """Everything that measures a video, built once per evaluation."""

    measurer: Measurer
    evaluator: EmotionEvaluator
    judge: FaceJudge
    face_frames: int = 4  # frames per video for identity and re-detection (the descriptor is slow)
    syncnet: object | None = None  # SyncNet for LSE-D / LSE-C
    references: dict = field(default_factory=dict)  # reference frame file -> (Reference, neutral features)
    life: Life | None = None  # held-out photos: blinks and head motion, as users get them by default
    outside: object | None = None  # the outside judge (``synthtext.evaluation.judge.OutsideJudge``) for held-out photos

    def reference(self, path: str) -> tuple[Reference, np.ndarray]:
        """The reference frame of a clip file: for identity and sharpness, and its expression geometry."""
        if path not in self.references:
            frame = first_frame(path)
            self.references[path] = (self.judge.reference(frame), neutral_features(frame, self.measurer))
        return self.references[path]


def measure_video(frames: np.ndarray, tools: Instruments, reference: Reference, neutral: np.ndarray, speech: Speech,
                  conditions: tuple[str, ...], real: tuple[np.ndarray, Measured] | None = None,
                  truth: np.ndarray | None = None, aligned: bool = True, face_frames: int | None = None,
                  condition: str | None = None, own: bool = True,
                  region: tuple[slice, slice] | None = None) -> tuple[Video, Measured]:
    """Every metric of one video; ``neutral``: the expression geometry of the face it starts from;
    ``conditions``: the emotions its evaluator answer is scored against; ``real``: the real clip and
    its landmarks, for the image and motion metrics; ``region``: where in the frames landmarks are
    tracked (a photo's face region: the same points, found without searching the whole photo)."""
    measured = measure(frames if region is None else frames[:, region[0], region[1]], tools.measurer, aligned)
    if real is not None:
        values = video_metrics(frames, real[0], measured, real[1], speech.audio, speech.sample_rate, speech.fps)
    else:
        values = sync_metrics(measured.landmarks, speech.audio, speech.sample_rate, speech.fps)
        values["face_found"] = float(np.isfinite(measured.landmarks[:, 0, 0]).mean())
    if truth is not None:
        values["gt_opening_r"] = best_offset_correlation(mouth_opening(measured.landmarks), truth, 0)[0]
    if tools.syncnet is not None and aligned:
        values.update(lse(tools.syncnet, frames, speech.audio, speech.sample_rate))
    faces = tools.judge.measure(frames, reference, face_frames or tools.face_frames)
    values["sharpness"] = faces.sharpness
    predicted = tools.evaluator.predict(measured.features - neutral)[0]
    video = Video(values=values, per_frame={"identity": faces.identity, "found": faces.found}, predicted=predicted,
                  hit=float(np.mean([predicted == c for c in conditions])), condition=condition, own=own)
    return video, measured


@dataclass
class ClipResult:
    clip: str
    emotion: str
    videos: dict[str, Video]  # each emotion's generated video; "static" and "real" with baselines
    frames: dict[str, np.ndarray]  # kept frames (report samples, FID): "real", "static", emotions
    speech: Speech


def evaluate_clip(path: str, reference_file: str, generator, tools: Instruments, seconds: float | None,
                  seed: int = 0, baselines: bool = True, source: Path | None = None,
                  keep: tuple[str, ...] = ()) -> ClipResult:
    """A validation clip: generated under each emotion from the reference frame (the first frame of
    ``reference_file``), and with ``baselines`` the static and real videos, all at the crop size.
    Frames named in ``keep`` ("real", "static", "own" or emotions) are kept; the rest are dropped
    once measured, so memory does not grow with the validation split."""
    clip, real, speech = clip_inputs(path, seconds)
    emotion = str(clip.attrs["emotion"])
    reference_frame = first_frame(reference_file)
    reference, neutral = tools.reference(reference_file)
    real_measured = measure(real, tools.measurer)
    truth = ground_truth_opening(source / f"{speech.clip}.json", len(real), speech.fps) if source else None
    videos, kept = {}, {}
    keep = tuple(emotion if k == "own" else k for k in keep)
    if baselines:
        candidates = {"real": (real, (emotion,), None), "static": (np.repeat(reference_frame[None], len(real), 0),
                                                                    EMOTIONS, None)}
    else:
        candidates = {}
    for condition in EMOTIONS:
        candidates[condition] = (None, (condition,), condition)
    for name, (frames, conditions, condition) in candidates.items():
        if frames is None:
            frames = generate_frames(generator, speech.audio, speech.sample_rate, reference_frame, condition, seed,
                                     size=real.shape[1], landmarks=first_landmarks(reference_file))[:len(real)]
        own = condition in (None, emotion)  # image and motion metrics: only the own emotion is ever read
        videos[name], _ = measure_video(frames, tools, reference, neutral, speech, conditions,
                                        (real, real_measured) if own else None, truth,
                                        face_frames=1 if name == "static" else None, condition=condition, own=own)
        if name in keep:
            kept[name] = frames
    return ClipResult(clip=speech.clip, emotion=emotion, videos=videos, frames=kept, speech=speech)


def validation_columns(clips: list[ClipResult]) -> dict[str, dict]:
    """The generated, static and real columns of the table."""
    generated = [v for c in clips for name, v in c.videos.items() if name in EMOTIONS]
    columns = {"generated": summarise(generated)}
    for kind in ("static", "real"):
        if all(kind in c.videos for c in clips):
            columns[kind] = summarise([c.videos[kind] for c in clips])
    return columns


def per_emotion_accuracy(clips: list[ClipResult]) -> dict[str, dict]:
    out = {}
    for emotion in EMOTIONS:
        generated = [c.videos[emotion].predicted == emotion for c in clips]
        real = [c.videos["real"].predicted == emotion for c in clips if c.emotion == emotion]
        out[emotion] = {"generated": float(np.mean(generated)), "real": float(np.mean(real)) if real else None}
    return out


def generated_confusion(clips: list[ClipResult]) -> np.ndarray:
    """Rows: the emotion condition, columns: the evaluator's answer, over every generated video."""
    return confusion([e for _ in clips for e in EMOTIONS], [c.videos[e].predicted for c in clips for e in EMOTIONS])


def add_fid(table: dict, clips: list[ClipResult], inception: Path, champion: list[ClipResult] | None = None) -> None:
    """FID of the generated (own emotion) and static frames (and the champion's) against the real frames
    of the same clips (``evaluate_clip`` with keep ("real", "static", "own"))."""
    net = load_inception(inception)
    real = inception_features(net, np.concatenate([c.frames["real"] for c in clips]))
    columns = [("generated", clips, lambda c: c.frames[c.emotion]), ("static", clips, lambda c: c.frames["static"])]
    if champion is not None:
        columns.append(("champion", champion, lambda c: c.frames[c.emotion]))
    for kind, source, pick in columns:
        table[kind]["fid"] = frechet_distance(inception_features(net, np.concatenate([pick(c) for c in source])), real)
    table["real"]["fid"] = 0.0


# ---------------------------------------------------------------- held-out photos


def heldout_photos(folder: str | Path) -> list[Path]:
    """The photos of people the model never saw (every image in the folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SynthTextError(f"evaluate.photos: {folder} is not a folder of face photos (or set it to null)")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise SynthTextError(f"evaluate.photos: {folder} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
    return photos


@dataclass
class PhotoResult:
    """A held-out photo: its videos' measures at both sizes, and stills and clips for people to look at."""

    name: str
    region: np.ndarray  # the photo's face region at its own resolution (the part the motion can move)
    videos: dict[str, list[Video]]  # "face" (aligned, ``size`` px) and "photo" (pasted back) -> videos
    peaks: dict[str, np.ndarray]  # emotion -> pasted-back face region at peak mouth opening (first speech)
    clips: dict[str, np.ndarray]  # emotion -> pasted-back face region over the first speech, scaled to ``cell``
    speech: Speech  # the first speech
    judged: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # kind -> emotion -> outside reading [6]
    lively: dict[str, dict] = field(default_factory=dict)  # kind -> liveliness measures of the long speech
    strip: dict[str, np.ndarray] = field(default_factory=dict)  # "blink", "vowel" -> frames around them


def face_region(face) -> tuple[slice, slice]:
    """The photo box under the aligned crop: the part of the photo the generated motion can change."""
    side = face.crop.shape[0]
    corners = cv2.transform(np.array([[[0, 0], [side, 0], [0, side], [side, side]]], np.float32),
                            cv2.invertAffineTransform(face.matrix))[0]
    height, width = (face.image.shape[0] // 2) * 2, (face.image.shape[1] // 2) * 2
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int), (width, height))
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def peak_frame(measured: Measured, speech: Speech, frames: int) -> int:
    """The frame with the widest measured mouth opening (the loudest frame if no mouth was measured)."""
    opening = mouth_opening(measured.landmarks)
    if np.isfinite(opening).any():
        return int(np.nanargmax(opening))
    return int(np.argmax(speech_envelope(speech.audio, speech.sample_rate, speech.fps, frames)))


def evaluate_photo(path: str | Path, speeches: list[Speech], model, tools: Instruments, size: int = 256,
                   seed: int = 0, cell: int = 256, long_speech: Speech | None = None) -> PhotoResult:
    """A held-out photo speaking each speech in all six emotions, as the aligned face at ``size`` px and
    pasted back at the photo's resolution; identity is measured against the photo at both sizes. With
    ``tools.outside`` the outside judge reads the first speech's videos; with ``long_speech`` the photo
    also speaks it (NEU, blinks and head motion on) for the liveliness measures."""
    face = prepare_face(path, model.preprocess)
    photo = face.image[:(face.image.shape[0] // 2) * 2, :(face.image.shape[1] // 2) * 2]
    photo_ref = tools.judge.reference(photo)
    face_ref = tools.judge.reference(face.crop_at(size))
    face_ref.descriptor = photo_ref.descriptor  # the person in the photo is the yardstick at both sizes
    neutral = neutral_features(face.crop, tools.measurer)  # geometry is the same at any size, aligned or not
    region = face_region(face)
    videos: dict[str, list[Video]] = {"face": [], "photo": []}
    peaks, clips, judged = {}, {}, {"face": {}, "photo": {}}
    for index, speech in enumerate(speeches):
        for emotion in EMOTIONS:
            animation = animate(model.generator, speech.audio, speech.sample_rate, face.crop, emotion, seed,
                                life=tools.life, landmarks=face.landmarks)
            for kind, frames, reference in (("face", face_frames(animation, face, size), face_ref),
                                            ("photo", paste_back(animation, face), photo_ref)):
                video, measured = measure_video(frames, tools, reference, neutral, speech, (emotion,),
                                                aligned=kind == "face", condition=emotion,
                                                region=None if kind == "face" else region)
                videos[kind].append(video)
                if index == 0 and tools.outside is not None:
                    judged[kind][emotion] = tools.outside.clip_probabilities(
                        frames if kind == "face" else frames[:, region[0], region[1]])
                if index == 0 and kind == "photo":
                    peaks[emotion] = frames[peak_frame(measured, speech, len(frames))][region]
                    clips[emotion] = frames_at_height(frames[:, region[0], region[1]], cell)
    result = PhotoResult(name=Path(path).stem, region=photo[region], videos=videos, peaks=peaks, clips=clips,
                         speech=speeches[0], judged=judged if tools.outside is not None else {})
    if long_speech is not None:
        lively_photo(result, face, long_speech, model, tools, size, seed, region)
    return result


def lively_photo(result: PhotoResult, face, speech: Speech, model, tools: Instruments, size: int, seed: int,
                 region: tuple[slice, slice], around: int = 4) -> None:
    """The photo speaking a long speech in NEU with blinks and head motion: its liveliness measures at both
    sizes, and frames of the pasted-back face around the deepest blink and the widest-open mouth."""
    animation = animate(model.generator, speech.audio, speech.sample_rate, face.crop, "NEU", seed,
                        life=tools.life or Life(), landmarks=face.landmarks)
    pasted = paste_back(animation, face)[:, region[0], region[1]]
    result.lively = {"face": liveliness(face_frames(animation, face, size), speech.fps),
                     "photo": liveliness(pasted, speech.fps)}
    centres = {"vowel": int(np.argmax(speech_envelope(speech.audio, speech.sample_rate, speech.fps, len(pasted))))}
    if "life" in animation.parts and animation.parts["life"][:, 0].max() > 0:
        centres["blink"] = int(animation.parts["life"][:, 0].argmax())
    for name, t in centres.items():
        picked = np.clip(np.arange(t - around, t + around + 1), 0, len(pasted) - 1)
        result.strip[name] = frames_at_height(pasted[picked], 160)


def heldout_columns(photos: list[PhotoResult]) -> dict[str, dict]:
    """The two held-out columns of the table: the aligned face and the photo with the face pasted back."""
    return {"heldout_face": summarise([v for p in photos for v in p.videos["face"]], "heldout"),
            "heldout_photo": summarise([v for p in photos for v in p.videos["photo"]], "heldout")}


def heldout_breakdown(photos: list[PhotoResult]) -> dict[str, dict]:
    """Held-out metrics per photo and per emotion, at both sizes: {"photos": {name: {kind: column}},
    "emotions": {emotion: {kind: column}}}."""
    kinds = ("face", "photo")
    return {"photos": {p.name: {k: summarise(p.videos[k], "heldout") for k in kinds} for p in photos},
            "emotions": {e: {k: summarise([v for p in photos for v in p.videos[k] if v.condition == e], "heldout")
                             for k in kinds} for e in EMOTIONS}}
