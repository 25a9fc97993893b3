"""Optional metrics that need published weights the user supplies: LSE-D / LSE-C with SyncNet
(Chung & Zisserman, "Out of time", 2016) and FID with an Inception network.

- SyncNet: the ``syncnet_v2.model`` state_dict published with the SyncNet paper's code. The network
  below reproduces that model's layer sequence so the file's parameter names and shapes load as
  they are (``weights_only``). Video: 224x224 face crops, 5-frame windows, BGR 0..255; audio: 13
  MFCCs at 100 Hz (python_speech_features, as SyncNet was trained), 20-step windows.
  LSE-D is the mean feature distance at the best audio-video offset (lower is better), LSE-C the
  median distance over offsets minus that minimum (higher is better).
- FID: a TorchScript Inception feature extractor (for example the ``inception-2015-12-05.pt`` file
  used by StyleGAN2-ADA's metrics), called as ``net(uint8 images [N, 3, H, W], return_features=True)``
  -> [N, 2048]; the Fréchet distance between the feature statistics of two frame sets.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import python_speech_features
import soxr
import torch
from scipy import linalg
from torch import nn

from synthtext.ops.errors import SynthTextError

VSHIFT = 15  # offsets searched, in frames, each way


def _conv_stage(dims: int, cin: int, cout: int, kernel, stride=1, padding=0, pool=None, pool_stride=None,
                pool_padding=0, inplace: bool = True) -> list[nn.Module]:
    conv = (nn.Conv2d, nn.Conv3d)[dims - 2]
    norm = (nn.BatchNorm2d, nn.BatchNorm3d)[dims - 2]
    layers: list[nn.Module] = [conv(cin, cout, kernel, stride=stride, padding=padding), norm(cout), nn.ReLU(inplace)]
    if pool is not None:
        layers.append((nn.MaxPool2d, nn.MaxPool3d)[dims - 2](pool, stride=pool_stride, padding=pool_padding))
    return layers


def _head(features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, features))


class SyncNet(nn.Module):
    """Audio (MFCC) and lip (5 face frames) embeddings in one space."""

    def __init__(self, features: int = 1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_conv_stage(2, 1, 64, 3, padding=1, pool=1, pool_stride=1),
            *_conv_stage(2, 64, 192, 3, padding=1, pool=3, pool_stride=(1, 2)),
            *_conv_stage(2, 192, 384, 3, padding=1),
            *_conv_stage(2, 384, 256, 3, padding=1),
            *_conv_stage(2, 256, 256, 3, padding=1, pool=3, pool_stride=2),
            *_conv_stage(2, 256, 512, (5, 4), inplace=False))
        self.netfcaud = _head(features)
        self.netfclip = _head(features)
        self.netcnnlip = nn.Sequential(
            *_conv_stage(3, 3, 96, (5, 7, 7), stride=(1, 2, 2), pool=(1, 3, 3), pool_stride=(1, 2, 2)),
            *_conv_stage(3, 96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1), pool=(1, 3, 3),
                         pool_stride=(1, 2, 2), pool_padding=(0, 1, 1)),
            *_conv_stage(3, 256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *_conv_stage(3, 256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *_conv_stage(3, 256, 256, (1, 3, 3), padding=(0, 1, 1), pool=(1, 3, 3), pool_stride=(1, 2, 2)),
            *_conv_stage(3, 256, 512, (1, 6, 6)))

    def audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """[N, 1, 13, 20] -> [N, features]"""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def lips(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, 3, 5, 224, 224] (BGR, 0..255) -> [N, features]"""
        return self.netfclip(self.netcnnlip(frames).flatten(1))


def load_syncnet(path: str | Path) -> SyncNet:
    """SyncNet from a state_dict file (read with ``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise SynthTextError(f"SyncNet weights {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = SyncNet(features=state["netfcaud.3.weight"].shape[0])
        # The published file predates BatchNorm's num_batches_tracked counters; every weight must be there.
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise KeyError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError, AttributeError) as exc:
        raise SynthTextError(f"{path} is not SyncNet weights (a state_dict of the published model): {exc}") from exc
    return net.eval()


def mfcc_frames(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """13 MFCCs per 10 ms [13, steps], computed the way SyncNet's training data was (16-bit scale)."""
    if sample_rate != 16000:
        audio = soxr.resample(audio.astype(np.float32), sample_rate, 16000)
    return python_speech_features.mfcc(np.asarray(audio, np.float64) * 32767, 16000).T


@torch.no_grad()
def lse(net: SyncNet, frames: np.ndarray, audio: np.ndarray, sample_rate: int, batch: int = 16) -> dict:
    """LSE-D, LSE-C and the best offset of one video (RGB frames [T, H, W, 3], 25 fps)."""
    mfcc = mfcc_frames(audio, sample_rate)
    usable = min(len(frames), mfcc.shape[1] // 4) - 5
    if usable < 1:
        return {}
    faces = np.stack([cv2.resize(f[..., ::-1], (224, 224), interpolation=cv2.INTER_CUBIC) for f in frames])
    video = torch.from_numpy(faces.astype(np.float32)).permute(3, 0, 1, 2)  # [3, T, 224, 224]
    cc = torch.from_numpy(mfcc.astype(np.float32))[None]  # [1, 13, steps]
    lip_feats, aud_feats = [], []
    for start in range(0, usable, batch):
        index = range(start, min(usable, start + batch))
        lip_feats.append(net.lips(torch.stack([video[:, i:i + 5] for i in index])))
        aud_feats.append(net.audio(torch.stack([cc[:, :, 4 * i:4 * i + 20] for i in index])))
    lips, sound = torch.cat(lip_feats), torch.cat(aud_feats)
    padded = nn.functional.pad(sound, (0, 0, VSHIFT, VSHIFT))
    dists = torch.stack([nn.functional.pairwise_distance(lips[i:i + 1].expand(2 * VSHIFT + 1, -1),
                                                         padded[i:i + 2 * VSHIFT + 1]) for i in range(len(lips))])
    mean = dists.mean(0)
    best = int(mean.argmin())
    return {"lse_d": float(mean[best]), "lse_c": float(mean.median() - mean[best]), "lse_offset": float(VSHIFT - best)}


# ---------------------------------------------------------------- FID


def load_inception(path: str | Path):
    """A TorchScript Inception feature extractor (no pickled Python code is run)."""
    path = Path(path)
    if not path.is_file():
        raise SynthTextError(f"Inception network {path} not found")
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as exc:
        raise SynthTextError(f"{path} is not a TorchScript Inception feature extractor: {exc}") from exc


@torch.no_grad()
def inception_features(net, frames: np.ndarray, batch: int = 32) -> np.ndarray:
    """[N, D] features of RGB uint8 frames (resized to 299x299)."""
    out = []
    for start in range(0, len(frames), batch):
        chunk = np.stack([cv2.resize(f, (299, 299), interpolation=cv2.INTER_CUBIC)
                          for f in frames[start:start + batch]])
        out.append(net(torch.from_numpy(chunk).permute(0, 3, 1, 2).contiguous(), return_features=True).numpy())
    return np.concatenate(out).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of two feature sets [N, D]."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = np.asarray(linalg.sqrtm(cov_a @ cov_b))
    if not np.isfinite(root).all():  # singular product: nudge both covariances
        eps = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    root = root.real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))
