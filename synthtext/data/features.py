"""What the networks read and write, shared by training, inference and evaluation: log-mel windows
of speech, frames as tensors and back, landmarks in normalised coordinates."""

from __future__ import annotations

import cv2
import librosa
import numpy as np
import torch

from synthtext.model.config import ModelConfig


def log_mel(audio: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Log-mel spectrogram [n_mels, frames] with ``mel_per_frame`` frames per video frame, frame k
    centred on sample k * hop."""
    mel = librosa.feature.melspectrogram(y=audio.astype(np.float32), sr=cfg.sample_rate, n_fft=4 * cfg.hop,
                                         hop_length=cfg.hop, n_mels=cfg.n_mels, fmin=50, fmax=cfg.sample_rate // 2)
    return ((np.log10(mel + 1e-6) + 3.0) / 3.0).astype(np.float32)


def mel_windows(mel: np.ndarray, start: int, frames: int, cfg: ModelConfig) -> np.ndarray:
    """The mel context of video frames start..start+frames: [frames, n_mels, mel_context].

    Video frame t is centred on mel frame ``mel_per_frame * t + mel_per_frame // 2``.
    """
    half = cfg.mel_context // 2
    padded = np.pad(mel, ((0, 0), (cfg.mel_context, cfg.mel_context)), mode="edge")
    out = np.empty((frames, cfg.n_mels, cfg.mel_context), np.float32)
    for i in range(frames):
        centre = cfg.mel_per_frame * (start + i) + cfg.mel_per_frame // 2 + cfg.mel_context
        out[i] = padded[:, centre - half:centre - half + cfg.mel_context]
    return out


def normalised_points(points: np.ndarray, size: int) -> np.ndarray:
    """Pixel coordinates (centres at integers) in a ``size`` crop -> normalised coordinates (the image
    spans -1..1, as ``grid_sample`` with ``align_corners=False`` reads them). float32, same shape."""
    return ((points.astype(np.float32) + 0.5) * (2.0 / size) - 1.0).astype(np.float32)


def to_tensor_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [T, H, W, 3] -> float32 [T, 3, size, size] in [-1, 1]."""
    if frames.shape[1] != size:
        frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    return (frames.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[N, 3, S, S] in [-1, 1] -> [N, S, S, 3] uint8."""
    return ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
