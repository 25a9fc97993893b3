"""A short sample video from a trained generator: the clip's own speech and first frame, generated frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from synthtext.data.clipfile import audio_length, read_clip
from synthtext.data.features import to_tensor_frames, to_uint8
from synthtext.data.media import write_video
from synthtext.inference.render import generate_frames
from synthtext.model import Generator
from synthtext.model.io import load_model


@torch.no_grad()
def write_sample_video(generator: Generator, clip_path: Path, out: Path, seconds: float = 3.0) -> Path:
    """Generate up to ``seconds`` of the clip from its first frame, its speech and its emotion, the
    way inference does (cross-faded windows), and write an mp4 with the clip's audio: real frames
    left, generated right."""
    cfg = generator.cfg
    clip = read_clip(clip_path)
    rate, fps = clip.attrs["sample_rate"], clip.attrs["fps"]
    total = min(len(clip.video), int(seconds * cfg.fps))
    audio = clip.audio[:audio_length(total, rate, fps)]
    was_training = generator.training
    generator.eval()
    fake = generate_frames(generator, audio, rate, clip.video[0], clip.attrs["emotion"],
                           landmarks=clip.landmarks[0])[:total]
    generator.train(was_training)
    real = to_uint8(torch.from_numpy(to_tensor_frames(clip.video[:total], cfg.image_size)))
    write_video(out, np.concatenate([real, fake], axis=2), cfg.fps, audio, rate)
    return out


def sample_video(stage: str, model_dir: Path, files: list[str], folder: Path) -> Path:
    """A sample mp4 (real | generated, with the clip's audio) of the first file, by the trained generator."""
    generator, _ = load_model(model_dir, Generator)
    return write_sample_video(generator, Path(files[0]), folder / f"{stage}_sample.mp4")
