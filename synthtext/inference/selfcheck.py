"""Every video checks that its emotion shows.

The independent emotion evaluator that ``evaluate`` trains on real clips is stored with the model
(``evaluator.json`` in a model folder, or the ``evaluator`` tag of a registry version). While a video
is made, the landmarks of its aligned face are tracked piece by piece; at the end each segment (one
emotion of the text, see ``synthtext.inference.markup``) is read by the evaluator, relative to the photo's own
face as every evaluated video is. A segment whose face reads as another emotion is a mismatch: one
warning line, and exit status 2 with ``--strict``.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synthtext import EMOTIONS
from synthtext.data.align import warp_frame
from synthtext.evaluation.evaluator import EmotionEvaluator, Measurer, measured_features
from synthtext.inference.infer import REGISTRY_PREFIX, Face, LoadedModel
from synthtext.inference.markup import TRANSITION_SECONDS
from synthtext.ops.errors import SynthTextError
from synthtext.ops.tracking import registry_version, use_store


@dataclass
class Verdict:
    emotion: str  # asked for
    shown: str  # what the evaluator reads
    confidence: float  # its probability for ``shown``
    first_frame: int
    end_frame: int
    start: float  # seconds
    end: float
    match: bool

    def warning(self) -> str:
        return (f"{self.start:.1f}-{self.end:.1f} s asked {self.emotion}, the face reads {self.shown} "
                f"({self.confidence:.2f})")

    def to_json(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


STRIDE = 4  # every fourth frame is measured (6 a second): the reading is a mean over the segment


class SelfCheck:
    """Made with the segments' frame spans ``(emotion, first_frame, end_frame)``; feed it each generated
    piece in order (``observe``), then ask for the ``verdicts``."""

    def __init__(self, evaluator: EmotionEvaluator, backend, face: Face, spans: list[tuple[str, int, int]],
                 stride: int = STRIDE, pasted: bool = False):
        """``pasted``: the video's frames are the photo with the face pasted back (else the aligned face,
        at any size)."""
        self.evaluator, self.spans, self.stride = evaluator, spans, max(1, stride)
        self.face, self.pasted = face, pasted
        self.measurer = Measurer(backend, face.crop.shape[0])
        # The face's box, detected once on the crop: the generated frames keep the face where the crop
        # has it, so each segment's track starts in this box instead of searching its first frame.
        boxes = backend.detect(face.crop)
        self.box = boxes[0] if boxes else None
        self.neutral = measured_features(self.measurer.landmarks(face.crop[None], tracker=self._tracker()))
        self.frames: list[np.ndarray] = []  # the measured frames' numbers
        self.landmarks: list[np.ndarray] = []
        self.seen = 0  # frames observed so far
        self.trackers: dict[int, object] = {}

    def observe(self, frames: np.ndarray) -> None:
        """Track the face in the next piece of the video as it is written (uint8 [T, H, W, 3]), at the
        aligned crop's size as ``evaluate`` measures: an aligned face of another size is resized to it
        (as ``evaluate`` does with the 256 px held-out videos), a pasted-back photo is warped back onto
        the crop. Only every ``stride``-th frame of each segment is measured. Each segment is tracked
        from its own first frame (in the face box found on the crop), as every clip the evaluator
        learnt from and every video it was tested on: the tracker starts each frame from the last
        one's face, and a track begun in another emotion's frames lands on other points of the same
        image. The check reads the frames the user gets; it renders nothing of its own."""
        start, count = self.seen, len(frames)
        self.seen += count
        for index, (_, first, end) in enumerate(self.spans):
            wanted = np.arange(max(first, start), min(end, start + count))
            wanted = wanted[(wanted - first) % self.stride == 0]
            if not len(wanted):
                continue
            picked = frames[wanted - start]
            if self.pasted:
                picked = np.stack([warp_frame(f, self.face.matrix, self.face.crop.shape[0]) for f in picked])
            tracker = self.trackers.setdefault(index, self._tracker())
            self.frames.append(wanted)
            self.landmarks.append(self.measurer.landmarks(picked, tracker=tracker))

    def _tracker(self):
        tracker = self.measurer.tracker()
        return tracker if self.box is None else tracker.start_at(self.box)

    def verdicts(self, fps: float) -> list[Verdict]:
        """One verdict per segment. The frames where the face is changing from one emotion to the next
        (``markup.TRANSITION_SECONDS`` around each border) are left out of both segments when the
        segment is long enough to spare them."""
        numbers = np.concatenate(self.frames) if self.frames else np.zeros(0, int)
        points = np.concatenate(self.landmarks) if self.landmarks else np.zeros((0, 68, 2))
        half = int(round(TRANSITION_SECONDS * fps / 2))
        out = []
        for index, (emotion, first, end) in enumerate(self.spans):
            a = first + (half if index > 0 else 0)
            b = end - (half if index < len(self.spans) - 1 else 0)
            if b - a < max(3 * self.stride, (end - first) // 3):
                a, b = first, end
            chosen = points[(numbers >= a) & (numbers < b)]
            if not len(chosen) or not np.isfinite(chosen[:, 0, 0]).any():
                out.append(Verdict(emotion, "no face", 0.0, first, end, first / fps, end / fps, False))
                continue
            probs = self.evaluator.probabilities(measured_features(chosen) - self.neutral)[0]
            shown = EMOTIONS[int(np.argmax(probs))]
            out.append(Verdict(emotion, shown, float(probs.max()), first, end, first / fps, end / fps,
                               shown == emotion))
        return out


def attach_evaluator(model: LoadedModel, evaluator: str | Path | None = None, repo: str | Path = ".") -> LoadedModel:
    """Set ``model.evaluator`` (and ``evaluator_note``: where it came from, or why there is none): the
    file ``evaluator`` if given, else ``evaluator.json`` in the model folder, else the one ``evaluate``
    stored with the registry version (its ``evaluator`` tag)."""
    if evaluator:
        model.evaluator, model.evaluator_note = EmotionEvaluator.load(Path(evaluator)), str(evaluator)
    elif model.source.startswith(REGISTRY_PREFIX):
        use_store(Path(repo))
        with tempfile.TemporaryDirectory() as scratch:
            model.evaluator, model.evaluator_note = registered_evaluator(model.source, Path(scratch))
    elif (Path(model.source) / "evaluator.json").is_file():
        model.evaluator = EmotionEvaluator.load(Path(model.source) / "evaluator.json")
        model.evaluator_note = f"{model.source}/evaluator.json"
    else:
        model.evaluator = None
        model.evaluator_note = f"{model.source} holds no evaluator.json (the emotion evaluator that evaluate trains)"
    return model


def registered_evaluator(uri: str, scratch: Path) -> tuple[EmotionEvaluator | None, str]:
    """The evaluator that ``evaluate`` stored with a registry version (its ``evaluator`` tag)."""
    import mlflow  # imported here, not at the top: it takes seconds, and only registry URIs need it
    from mlflow.exceptions import MlflowException

    try:
        version = registry_version(mlflow.MlflowClient(), uri)
        tag = version.tags.get("evaluator")
        if not tag:
            return None, f"{uri} (v{version.version}) has no stored emotion evaluator (it was never evaluated)"
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=tag, dst_path=str(scratch)))
        return EmotionEvaluator.load(path), f"stored with v{version.version} ({tag})"
    except (MlflowException, OSError, SynthTextError) as exc:
        return None, f"the emotion evaluator of {uri} could not be read ({str(exc).splitlines()[0][:200]})"
