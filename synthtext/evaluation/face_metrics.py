"""What a person checks first in a generated face: is it still the same person, is it sharp, is it a face.

- identity: the Euclidean distance between dlib's face descriptors (its face-recognition ResNet,
  ``dlib_face_recognition_resnet_model_v1.dat`` from face-recognition-models) of a frame and of the
  reference photo; two images of one person are closer than 0.6 (dlib's threshold), real frames of
  an actor expressing any emotion stay within 0.45 of the actor's neutral frame;
- sharpness: the variance of the Laplacian of the grey face box, frame over reference;
- re-detection: whether dlib's frontal detector finds a face in the frame at its own resolution.

The descriptor costs about 0.15 s a face on one CPU core, so identity and re-detection are measured
on a few frames spread evenly over each video (``sample_frames``); sharpness on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from synthtext.data.landmarks import predictor_path
from synthtext.ops.errors import SynthTextError

SAME_PERSON = 0.6  # dlib's threshold: descriptors of one person are closer than this
IDENTITY_KEPT = 0.45  # real frames of an actor in any emotion stay this close to the neutral frame
UPSAMPLE_BELOW = 200  # frames with a shorter side are upsampled once by the detector (small faces)


def recognition_model_path() -> Path:
    """dlib's face-recognition ResNet, shipped next to the 68-point predictor in face-recognition-models."""
    path = predictor_path().with_name("dlib_face_recognition_resnet_model_v1.dat")
    if not path.is_file():
        raise SynthTextError(f"dlib face-recognition model missing at {path}: reinstall face-recognition-models")
    return path


def sample_frames(total: int, count: int) -> np.ndarray:
    """``count`` frame indices spread evenly over ``total`` frames, first and last included."""
    return np.unique(np.linspace(0, total - 1, max(1, min(count, total))).round().astype(int))


def laplacian_variance(image: np.ndarray, box: tuple[slice, slice] | None = None) -> float:
    """Variance of the Laplacian of the grey image (in ``box``): high for sharp detail, low for blur."""
    part = image if box is None else image[box]
    grey = cv2.cvtColor(part, cv2.COLOR_RGB2GRAY) if part.ndim == 3 else part
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def sharpness_ratio(frames: np.ndarray, reference: np.ndarray, box: tuple[slice, slice] | None = None) -> float:
    """Mean Laplacian variance of the frames over the reference's, in the same box (1: as sharp)."""
    base = laplacian_variance(reference, box)
    if base <= 0:
        return float("nan")
    return float(np.mean([laplacian_variance(frame, box) for frame in frames]) / base)


@dataclass
class Reference:
    """What generated frames are compared with: the descriptor of the person and their face box."""

    image: np.ndarray
    descriptor: np.ndarray | None  # None when no face was found in the reference
    box: tuple[slice, slice]  # the face box in the reference's pixels (the whole image if no face)


@dataclass
class FaceMeasures:
    """One video: identity distance and re-detection on the sampled frames, sharpness over all frames."""

    frames: np.ndarray  # the sampled frame indices
    identity: np.ndarray  # distance to the reference per sampled frame, NaN where no face was found
    found: np.ndarray  # bool per sampled frame: the detector found a face
    sharpness: float


class FaceJudge:
    """dlib's frontal detector, 68-point predictor and face-recognition ResNet, loaded once."""

    def __init__(self):
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path()))
        self._recognition = dlib.face_recognition_model_v1(str(recognition_model_path()))

    def detect(self, image: np.ndarray):
        """The largest face dlib finds in the RGB image as is (small frames upsampled once), or None."""
        upsample = 1 if min(image.shape[:2]) < UPSAMPLE_BELOW else 0
        faces = self._detector(np.ascontiguousarray(image), upsample)
        return max(faces, key=lambda r: r.area()) if len(faces) else None

    def describe(self, image: np.ndarray, face=None) -> np.ndarray | None:
        """The 128-d descriptor of the largest face (or of the detected ``face``), None when there is none."""
        image = np.ascontiguousarray(image)
        if face is None:
            face = self.detect(image)
        if face is None:
            return None
        shape = self._predictor(image, face)
        return np.asarray(self._recognition.compute_face_descriptor(image, shape))

    def reference(self, image: np.ndarray) -> Reference:
        """The reference photo or frame: its descriptor and face box (the detector's box)."""
        face = self.detect(image)
        if face is None:
            return Reference(image=image, descriptor=None, box=(slice(None), slice(None)))
        height, width = image.shape[:2]
        box = (slice(max(face.top(), 0), min(face.bottom() + 1, height)),
               slice(max(face.left(), 0), min(face.right() + 1, width)))
        return Reference(image=image, descriptor=self.describe(image, face), box=box)

    def measure(self, frames: np.ndarray, reference: Reference, count: int) -> FaceMeasures:
        """Identity and re-detection on ``count`` frames spread over the video; sharpness on all frames
        (frames must have the reference's size: the face box is the reference's)."""
        if frames.shape[1:3] != reference.image.shape[:2]:
            raise ValueError(f"frames {frames.shape[1:3]} and reference {reference.image.shape[:2]} differ in size")
        picks = sample_frames(len(frames), count)
        identity = np.full(len(picks), np.nan)
        found = np.zeros(len(picks), bool)
        for i, index in enumerate(picks):
            face = self.detect(frames[index])
            found[i] = face is not None
            if face is not None and reference.descriptor is not None:
                identity[i] = identity_distance(self.describe(frames[index], face), reference.descriptor)
        return FaceMeasures(frames=picks, identity=identity, found=found,
                            sharpness=sharpness_ratio(frames, reference.image, reference.box))


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two face descriptors (< 0.6: the same person)."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
