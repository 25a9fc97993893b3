"""68-point landmark backends behind one interface.

Both backends find faces with dlib's HOG frontal detector (offline, no weights to fetch) and
differ in the landmark model: dlib's ensemble-of-regression-trees predictor shipped in
``face-recognition-models`` (evaluated by ``synthtext.data.ert``: dlib's numbers, 2-4x faster), or the FAN network
of the ``face-alignment`` package.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Protocol

import cv2
import dlib
import numpy as np

from synthtext.data import ert
from synthtext.ops.errors import SynthTextError

Box = tuple[float, float, float, float]
"""A face box (left, top, right, bottom) in image pixels."""


class LandmarkBackend(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """All faces in an RGB uint8 image, largest first."""

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """68 (x, y) points [68, 2] float64 of the face in ``box``."""


def predictor_path() -> Path:
    """The 68-point dlib predictor shipped in ``face-recognition-models``.

    Located with ``find_spec`` because the package's ``__init__`` imports the removed ``pkg_resources``.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SynthTextError("package face-recognition-models is not installed: run `make demo` or "
                             "`pip install face-recognition-models`")
    path = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise SynthTextError(f"dlib 68-point predictor missing at {path}: reinstall face-recognition-models")
    return path


def _largest_first(boxes: list[Box]) -> list[Box]:
    return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


class _DlibDetection:
    """Face detection shared by both backends: dlib HOG on the grey image."""

    def __init__(self, upsample: int):
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Faces at ``upsample``; at 0 (faces of about 80 px and up, 4x faster than 1), an image where
        none is found is searched again upsampled once, so smaller faces are still found."""
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        rects = self._detector(grey, self.upsample)
        if not rects and self.upsample == 0:
            rects = self._detector(grey, 1)
        return _largest_first([(float(r.left()), float(r.top()), float(r.right()), float(r.bottom()))
                               for r in rects])


class DlibBackend(_DlibDetection):
    """dlib detector + dlib 68-point shape predictor (default; fully offline).

    The predictor's model file is dlib's; ``synthtext.data.ert`` evaluates it, giving the very points
    ``dlib.shape_predictor`` gives (tested) in a half to a quarter of the time."""

    name = "dlib"

    def __init__(self, upsample: int = 1, model_path: str | Path | None = None):
        super().__init__(upsample)
        self._model = ert.read_model(model_path or predictor_path())

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        return ert.predict(self._model, rgb, tuple(int(round(v)) for v in box))


class FaceAlignmentBackend(_DlibDetection):
    """dlib detector + the face-alignment package's 2D FAN.

    FAN weights are fetched by face-alignment into the torch hub cache on first use
    (``$TORCH_HOME/hub/checkpoints``); on an offline machine place them there beforehand.
    """

    name = "face_alignment"

    def __init__(self, upsample: int = 1, device: str = "cpu"):
        super().__init__(upsample)
        import face_alignment  # here, not at the top: the optional backend loads torch models on import

        try:
            with warnings.catch_warnings():
                # we detect with dlib ourselves; face-alignment's own dlib wrapper warns it is deprecated
                warnings.simplefilter("ignore", UserWarning)
                self._fa = face_alignment.FaceAlignment(
                    face_alignment.LandmarksType.TWO_D, device=device, face_detector="dlib",
                    flip_input=False, compile=False,
                )
        except OSError as exc:  # URLError is an OSError: no network and no cached weights
            raise SynthTextError(
                f"face-alignment could not load its FAN weights ({exc}); put 2DFAN4-11f355bf06.pth.tar "
                f"in {os.path.join(_torch_hub_dir(), 'checkpoints')} or use align.backend: dlib"
            ) from exc

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        found = self._fa.get_landmarks_from_image(rgb, detected_faces=[np.asarray(box, dtype=np.float64)])
        return np.asarray(found[0][:, :2], dtype=np.float64)


def _torch_hub_dir() -> str:
    import torch.hub  # here: the dlib backend (every align worker) needs no torch

    return torch.hub.get_dir()


BACKENDS = {"dlib": DlibBackend, "face_alignment": FaceAlignmentBackend}


def make_backend(name: str, upsample: int = 1) -> LandmarkBackend:
    """Build the landmark backend named in params (``dlib`` or ``face_alignment``)."""
    if name not in BACKENDS:
        raise SynthTextError(f"unknown landmark backend {name!r}: use one of {', '.join(BACKENDS)}")
    return BACKENDS[name](upsample=upsample)
