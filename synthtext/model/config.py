"""One dataclass for every architecture size; named profiles for the paper and for CPU runs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from synthtext import EMOTIONS
from synthtext.data.clipfile import SCHEMA_VERSION
from synthtext.ops.config import DECODERS
from synthtext.ops.errors import SynthTextError


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 64  # aligned face crops are image_size x image_size
    filters: tuple[int, ...] = (32, 64, 128, 256)  # image-encoder pyramid (the decoder mirrors it)
    frames: int = 8  # training window, video frames
    speech_dim: int = 128  # per-frame speech code
    image_dim: int = 128  # reference-face code
    emotion_dim: int = 16
    noise_dim: int = 16
    n_mels: int = 40
    mel_per_frame: int = 4  # mel hop = sample_rate / (fps * mel_per_frame)
    mel_context: int = 12  # mel frames seen for each video frame (about 120 ms)
    sample_rate: int = 16000
    fps: int = 25
    emotions: tuple[str, ...] = field(default=EMOTIONS)
    schema_version: int = SCHEMA_VERSION
    # motion: each frame is the reference warped by a predicted motion field, blended by a mask with a
    # small synthesized image (mouth interior, teeth); pixels: the frame is synthesized outright (the paper).
    decoder: str = "motion"
    max_flow: float = 0.25  # largest displacement of the motion field, in half image widths
    expression_table: bool = True  # motion: a learnt landmark displacement per emotion (the same on every face)
    # motion: how far each landmark's move spreads (Gaussian sigma, image widths). Tried 0.045 (more local:
    # a brow's raise carries the eyes less): on the demo, validation emotion 0.67 -> 0.61 and PSNR fell
    # below the static baseline (23.95 vs 24.03), so 0.07 stays.
    kernel_sigma: float = 0.07

    def __post_init__(self):
        if self.decoder not in DECODERS:
            raise SynthTextError(f"decoder must be one of {', '.join(DECODERS)}, not {self.decoder!r}")
        if self.image_size % 2 ** len(self.filters) or self.image_size // 2 ** len(self.filters) < 2:
            raise SynthTextError(f"image_size {self.image_size} must be a multiple of 2**{len(self.filters)} "
                                 f"and at least {2 ** (len(self.filters) + 1)}")

    @property
    def bottleneck(self) -> int:
        """Side of the smallest feature map."""
        return self.image_size // 2 ** len(self.filters)

    @property
    def hop(self) -> int:
        return self.sample_rate // (self.fps * self.mel_per_frame)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        data.setdefault("decoder", "pixels")  # folders written before the motion decoder existed
        data.setdefault("expression_table", False)  # and before the expression table
        data.setdefault("kernel_sigma", 0.07)  # and before the kernels' width was set
        if tuple(data.get("emotions", EMOTIONS)) != EMOTIONS:
            raise SynthTextError(f"model emotion order {data['emotions']} differs from {EMOTIONS}")
        return cls(**data)

    def save(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


PROFILES: dict[str, ModelConfig] = {
    # The paper: 128x128 faces, filters 64-128-256-512-512, 32-frame windows, 512-d codes, 128-d noise.
    "paper": ModelConfig(image_size=128, filters=(64, 128, 256, 512, 512), frames=32, speech_dim=512,
                         image_dim=512, emotion_dim=64, noise_dim=128, decoder="pixels"),
    # The CPU demo default (motion decoder; `decoder: pixels` in params.yaml for the paper's).
    "cpu": ModelConfig(),
    # For tests: seconds per step.
    "tiny": ModelConfig(image_size=32, filters=(8, 16, 32), frames=4, speech_dim=32, image_dim=32, emotion_dim=8,
                        noise_dim=8, n_mels=20),
}


def profile(name: str, **overrides) -> ModelConfig:
    """A named profile, optionally with some fields changed."""
    if name not in PROFILES:
        raise SynthTextError(f"unknown model profile {name!r}: use one of {', '.join(PROFILES)}")
    return replace(PROFILES[name], **overrides)
