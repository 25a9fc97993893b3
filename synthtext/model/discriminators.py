"""Frame discriminator (Wasserstein critic with gradient penalty) and emotion discriminator (7 classes)."""

from __future__ import annotations

import torch
from torch import nn

from synthtext.model.config import ModelConfig


def down_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2))


class FrameDiscriminator(nn.Module):
    """A frame and the reference face, stacked as 6 channels -> realness score (a WGAN critic)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        channels = (6, *cfg.filters)
        self.body = nn.Sequential(*(down_block(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True)))
        self.score = nn.Linear(cfg.filters[-1] * cfg.bottleneck ** 2, 1)

    def forward(self, frames: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """frames [N, 3, S, S], reference [N, 3, S, S] -> scores [N]."""
        return self.score(self.body(torch.cat([frames, reference], 1)).flatten(1)).squeeze(1)


def gradient_penalty(critic: FrameDiscriminator, real: torch.Tensor, fake: torch.Tensor,
                     reference: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (||grad critic(x_hat)|| - 1)^2 on random interpolates of real and fake frames."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grads = torch.autograd.grad(critic(mixed, reference).sum(), mixed, create_graph=True)[0]
    return ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()


class EmotionDiscriminator(nn.Module):
    """A clip [B, T, 3, S, S] -> logits over the 6 emotions + "generated" (class 6).

    Per-frame convolutions, then an LSTM over time. ``features`` exposes the conv activations: the
    perceptual loss uses them as a face-specific feature extractor.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        channels = (3, *cfg.filters)
        self.levels = nn.ModuleList(down_block(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True))
        hidden = 2 * cfg.speech_dim
        self.frame_code = nn.Linear(cfg.filters[-1] * cfg.bottleneck ** 2, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.classes = nn.Linear(hidden, len(cfg.emotions) + 1)

    def features(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Activations of every conv level for frames [N, 3, S, S]."""
        out, x = [], frames
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        x = self.features(video.flatten(0, 1))[-1]
        codes = torch.relu(self.frame_code(x.flatten(1))).view(b, t, -1)
        return self.classes(self.lstm(codes)[0].mean(1))
