"""Losses: mouth-weighted reconstruction and perceptual features (the pipeline's emotion network by
default, or VGG19 from a user-given weights file, as in the paper)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from synthtext.ops.errors import SynthTextError


def reconstruction_loss(fake: torch.Tensor, real: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """L1 weighted by the mouth attention map ([B, T, 1, S, S], 1 elsewhere)."""
    return ((fake - real).abs() * weights).sum() / (weights.sum() * real.shape[2])


class EmotionFeatures(nn.Module):
    """Perceptual features from the pretrained emotion discriminator's conv levels (frozen)."""

    def __init__(self, emotion_net: nn.Module):
        super().__init__()
        self.net = emotion_net.eval().requires_grad_(False)

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        return self.net.features(frames)


# VGG19 "features" layout: channels per conv, "M" for max-pool; activations after relu1_1 ... relu5_1.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
VGG19_TAPS = (1, 6, 11, 20, 29)  # indices (in the Sequential) of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1


def vgg19_features() -> nn.Sequential:
    """VGG19's convolutional part, with the same module indices as torchvision's ``vgg19().features``."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers)


class VGG19Features(nn.Module):
    """Perceptual features from VGG19 (ImageNet) loaded from a state_dict file (keys ``features.N.weight``
    as torchvision saves them, or ``N.weight``), with ImageNet normalisation."""

    def __init__(self, weights: str | Path):
        super().__init__()
        path = Path(weights)
        if not path.is_file():
            raise SynthTextError(f"VGG19 weights {path} not found: set loss.vgg19_weights to a state_dict file")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
        self.body = vgg19_features()
        try:
            self.body.load_state_dict(state)
        except RuntimeError as exc:
            raise SynthTextError(f"{path} is not a VGG19 state_dict: {exc}") from exc
        self.body.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        x = ((frames + 1) / 2 - self.mean) / self.std
        out = []
        for index, layer in enumerate(self.body):
            x = layer(x)
            if index in VGG19_TAPS:
                out.append(x)
            if index >= VGG19_TAPS[-1]:
                break
        return out


def perceptual_loss(extractor: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of the extractor's features for frames [N, 3, S, S]."""
    with torch.no_grad():
        targets = extractor(real)
    return sum(F.l1_loss(a, b) for a, b in zip(extractor(fake), targets, strict=True)) / len(targets)


def coarse_loss(fake: torch.Tensor, real: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """L1 between frames [B, T, 3, S, S] averaged over ``factor`` x ``factor`` blocks: a wide basin for a
    motion field, whose gradient from a sharp L1 alone sees only a pixel or two around each edge."""
    pool = lambda x: F.avg_pool2d(x.flatten(0, 1), factor)  # noqa: E731
    return F.l1_loss(pool(fake), pool(real))


def flow_smoothness(flow: torch.Tensor) -> torch.Tensor:
    """Total variation of a motion field [B, T, 2, S, S], in pixels per pixel."""
    pixels = flow * flow.shape[-1] / 2
    return (pixels[..., 1:, :] - pixels[..., :-1, :]).abs().mean() + \
        (pixels[..., :, 1:] - pixels[..., :, :-1]).abs().mean()


def mask_prior(mask: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
    """Mean of (1 - mask) outside the mouth: the synthesized image may fill the mouth, and the rest of
    the face must come from the photo's own pixels. ``mouth``: the attention map (1, up to 5 on the
    mouth) of ``synthtext.model.train.data.mouth_weights`` [B, T, 1, S, S]."""
    outside = 1 - ((mouth - 1) / 2).clamp(0, 1)
    return ((1 - mask) * outside).mean()


def landmark_flow_loss(flow: torch.Tensor, landmarks: torch.Tensor, ref_landmarks: torch.Tensor) -> torch.Tensor:
    """Where the field is defined by the faces themselves: at each of the frame's 68 landmarks the field
    must point to the same landmark in the reference. flow [B, T, 2, S, S]; landmarks [B, T, 68, 2] and
    ref_landmarks [B, 68, 2] in normalised coordinates. Mean L1 in pixels of the model's resolution."""
    b, t = flow.shape[:2]
    at_points = F.grid_sample(flow.flatten(0, 1), landmarks.flatten(0, 1)[:, :, None, :].to(flow.dtype),
                              mode="bilinear", padding_mode="border", align_corners=False)[..., 0]  # [BT, 2, 68]
    wanted = (ref_landmarks[:, None] - landmarks).flatten(0, 1).transpose(1, 2)  # [BT, 2, 68]
    return (at_points - wanted.to(flow.dtype)).abs().mean() * flow.shape[-1] / 2


def landmark_points_loss(points: torch.Tensor, landmarks: torch.Tensor, ref_landmarks: torch.Tensor,
                         size: int) -> torch.Tensor:
    """The decoder's landmark displacements [B, T, 68, 2] against the true ones (the frame's landmarks
    minus the reference's, normalised coordinates). Mean L1 in pixels of a ``size`` image."""
    return (points - (landmarks - ref_landmarks[:, None]).to(points.dtype)).abs().mean() * size / 2
