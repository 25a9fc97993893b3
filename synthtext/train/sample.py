"""A short sample video from a trained generator: the clip's own speech and first frame, generated frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from synthtext.clipfile import read_clip
from synthtext.media import write_video
from synthtext.models import Generator
from synthtext.train.data import log_mel, mel_windows, to_tensor_frames
from synthtext.train.loop import to_uint8


@torch.no_grad()
def render_sample(generator: Generator, clip_path: Path, out: Path, seconds: float = 3.0) -> Path:
    """Generate up to ``seconds`` of the clip window by window (real frames left, generated right)
    and write an mp4 with the clip's audio."""
    cfg = generator.cfg
    clip = read_clip(clip_path)
    device = next(generator.parameters()).device
    total = min(len(clip.video), int(seconds * cfg.fps)) // cfg.frames * cfg.frames or cfg.frames
    mel = log_mel(clip.audio, cfg)
    reference = torch.from_numpy(to_tensor_frames(clip.video[:1], cfg.image_size)).to(device)
    emotion = torch.tensor([cfg.emotions.index(clip.attrs["emotion"])], device=device)
    noise = torch.Generator(device=device).manual_seed(0)
    generator.eval()
    pieces = []
    for start in range(0, total, cfg.frames):
        mels = torch.from_numpy(mel_windows(mel, start, cfg.frames, cfg))[None].to(device)
        pieces.append(to_uint8(generator(mels, reference, emotion, generator=noise)[0][0]))
    generator.train()
    fake = np.concatenate(pieces)[:total]
    real = to_uint8(torch.from_numpy(to_tensor_frames(clip.video[:total], cfg.image_size)))
    audio = clip.audio[:round(total * clip.attrs["sample_rate"] / clip.attrs["fps"])]
    write_video(out, np.concatenate([real, fake], axis=2), cfg.fps, audio, clip.attrs["sample_rate"])
    return out
