"""The generator: speech, image, emotion and noise encoders feeding a recurrent up-sampling decoder.

Two decoder heads (``ModelConfig.decoder``):

- ``pixels`` (the paper): the decoder's output is the frame.
- ``motion`` (the default): per frame, a dense motion field, a blend mask and a small synthesized
  image. The frame is the reference warped by the field, blended by the mask with the synthesized
  image, which fills what the photo does not show (mouth interior, teeth). The field is in
  normalised image coordinates, so it does not depend on resolution: ``compose`` applies it to a
  reference of any size, and inference applies it to the photo itself (``synthtext.inference.infer``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from synthtext.data.template import template
from synthtext.model.config import ModelConfig


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(8, cout), cout), nn.LeakyReLU(0.2))


class SpeechEncoder(nn.Module):
    """Log-mel windows [B, T, n_mels, mel_context] -> one code per video frame [B, T, speech_dim]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        width = cfg.speech_dim
        self.frame = nn.Sequential(
            nn.Conv1d(cfg.n_mels, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool1d(1),
        )
        self.lstm = nn.LSTM(width, cfg.speech_dim, batch_first=True)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        b, t = mels.shape[:2]
        per_frame = self.frame(mels.flatten(0, 1)).view(b, t, -1)  # temporal context within each frame
        return self.lstm(per_frame)[0]  # and across frames


class ImageEncoder(nn.Module):
    """Reference face [B, 3, S, S] -> code [B, image_dim] and per-level features (decoder skips)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        channels = (3, *cfg.filters)
        pairs = zip(channels[:-1], channels[1:], strict=True)
        self.levels = nn.ModuleList(conv_block(a, b, stride=2) for a, b in pairs)
        self.code = nn.Linear(cfg.filters[-1] * cfg.bottleneck ** 2, cfg.image_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips, x = [], image
        for level in self.levels:
            x = level(x)
            skips.append(x)
        return torch.tanh(self.code(x.flatten(1))), skips


class NoiseEncoder(nn.Module):
    """Per-frame Gaussian noise through an LSTM: smooth, varied motion not explained by speech."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.noise_dim = cfg.noise_dim
        self.lstm = nn.LSTM(cfg.noise_dim, cfg.noise_dim, batch_first=True)

    def forward(self, batch: int, frames: int, device: torch.device, generator: torch.Generator | None = None):
        noise = torch.randn(batch, frames, self.noise_dim, device=device, generator=generator) * 0.33
        return self.lstm(noise)[0]


class ConvGRUCell(nn.Module):
    """A convolutional GRU: a recurrent state with the spatial layout of a feature map."""

    def __init__(self, channels: int):
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1)
        self.candidate = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], 1)))
        return (1 - update) * h + update * candidate


class Decoder(nn.Module):
    """Per-frame codes [B, T, D] + encoder skips -> frames [B, T, 3, S, S] in [-1, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        code_dim = cfg.speech_dim + cfg.image_dim + cfg.emotion_dim + cfg.noise_dim
        top = cfg.filters[-1]
        self.side = cfg.bottleneck
        self.project = nn.Linear(code_dim, top * self.side ** 2)
        self.recurrent = ConvGRUCell(top)
        # Up-sampling pyramid mirroring the encoder; each level also sees the same-size encoder skip.
        reversed_filters = list(reversed(cfg.filters))
        outs = [*reversed_filters[1:], reversed_filters[-1]]
        self.ups = nn.ModuleList(
            conv_block(cin + skip, cout) for cin, skip, cout in zip([top, *outs[:-1]], reversed_filters, outs,
                                                                   strict=True))
        self.motion = cfg.decoder == "motion"
        self.max_flow = cfg.max_flow
        if self.motion:
            # Per frame, how far each of the 68 template landmarks moves from the reference: a field
            # spread from them by fixed Gaussian kernels carries expression and speech; the convolutional
            # head adds a residual field, the mask and the synthesized image.
            self.points = nn.Linear(code_dim, 68 * 2)
            nn.init.zeros_(self.points.weight)
            nn.init.zeros_(self.points.bias)
            # Each emotion's own landmark displacements, added to those above: an expression is the same
            # move on every face (in the template's frame), learnt directly rather than squeezed
            # through the codes, so a face the model never saw makes it as fully as a training face.
            self.expressions = nn.Parameter(torch.zeros(len(cfg.emotions), 68, 2)) if cfg.expression_table else None
            self.register_buffer("kernels", landmark_kernels(cfg.image_size, cfg.kernel_sigma), persistent=False)
            # flow (2) + mask (1) + synthesized image (3); starts as "copy the reference"
            self.to_out = nn.Conv2d(outs[-1], 6, 3, padding=1)
            nn.init.normal_(self.to_out.weight, std=1e-3)  # near zero, but gradients reach the layers below
            nn.init.zeros_(self.to_out.bias)
            with torch.no_grad():
                self.to_out.bias[2] = 3.0  # mask = sigmoid(3) = 0.95: mostly the warped reference
        else:
            self.to_rgb = nn.Conv2d(outs[-1], 3, 3, padding=1)

    def forward(self, codes: torch.Tensor, skips: list[torch.Tensor],
                emotions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """-> ``{"frames"}`` (pixels) or ``{"flow" [B,T,2,S,S], "mask" [B,T,1,S,S], "synth" [B,T,3,S,S],
        "points" [B,T,68,2]}`` (motion; ``points``: the landmark displacements inside ``flow``).
        ``emotions`` [B, T, 6]: each frame's emotion weights (for the expression table)."""
        b, t, _ = codes.shape
        x = self.project(codes).view(b, t, -1, self.side, self.side)
        h = torch.zeros_like(x[:, 0])
        states = []
        for step in range(t):  # temporal coherence at the bottleneck
            h = self.recurrent(x[:, step], h)
            states.append(h)
        y = torch.stack(states, 1).flatten(0, 1)  # [B*T, C, s, s]
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            skip = skip.repeat_interleave(t, 0)
            y = up(torch.cat([y, skip], 1))
            y = F.interpolate(y, scale_factor=2, mode="nearest")
        if not self.motion:
            return {"frames": torch.tanh(self.to_rgb(y)).view(b, t, 3, *y.shape[-2:])}
        out = self.to_out(y).view(b, t, 6, *y.shape[-2:])
        points = self.max_flow * torch.tanh(self.points(codes)).view(b, t, 68, 2)  # normalised displacements
        if self.expressions is not None and emotions is not None:
            points = points + torch.einsum("bte,ekc->btkc", emotions.to(points.dtype), self.expressions)
        spread = -torch.einsum("btkc,khw->btchw", points, self.kernels)  # frame pixel samples the reference there
        return {"flow": spread + self.max_flow * torch.tanh(out[:, :, :2]), "mask": torch.sigmoid(out[:, :, 2:3]),
                "synth": torch.tanh(out[:, :, 3:]), "points": points}


def landmark_kernels(size: int, sigma: float = 0.07, floor: float = 0.05) -> torch.Tensor:
    """[68, size, size] weights that spread values given at the 68 template landmarks over the image:
    Gaussians of ``sigma`` (in image widths) normalised to sum to 1 near the face and fading to 0 away
    from it (``floor`` is a background kernel that moves nothing)."""

    centres = torch.from_numpy(template(size)).float()  # pixel coordinates
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    d2 = (xs[None] - centres[:, 0, None, None]) ** 2 + (ys[None] - centres[:, 1, None, None]) ** 2
    gauss = torch.exp(-d2 / (2 * (sigma * size) ** 2))
    return gauss / (gauss.sum(0, keepdim=True) + floor)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward warp: output pixel p samples ``image`` at p + flow(p). image [N, C, H, W]; flow
    [N, 2, h, w] in normalised coordinates (x, y; the image spans -1..1), resized to H x W if needed."""
    n, _, height, width = image.shape
    if flow.shape[-2:] != (height, width):
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    identity = torch.eye(2, 3, dtype=image.dtype, device=image.device).expand(n, 2, 3)
    grid = F.affine_grid(identity, [n, 1, height, width], align_corners=False)
    return F.grid_sample(image, grid + flow.permute(0, 2, 3, 1), mode=mode, padding_mode="border",
                         align_corners=False)


def compose(reference: torch.Tensor, parts: dict[str, torch.Tensor], mode: str = "bilinear") -> torch.Tensor:
    """Frames [B, T, 3, H, W] from the decoder's parts and a reference [B, 3, H, W] of any size H x W:
    the reference warped by the field (sampled with ``mode``: bilinear in training, bicubic for the
    sharper output of inference), blended by the mask with the synthesized image (both resized)."""
    if "frames" in parts:
        return parts["frames"]
    flow, mask, synth = parts["flow"], parts["mask"], parts["synth"]
    b, t = flow.shape[:2]
    size = reference.shape[-2:]
    moved = warp(reference.repeat_interleave(t, 0), flow.flatten(0, 1), mode)
    if mask.shape[-2:] != size:
        mask = F.interpolate(mask.flatten(0, 1), size=size, mode="bilinear", align_corners=False).view(b, t, 1, *size)
        synth = F.interpolate(synth.flatten(0, 1), size=size, mode="bilinear",
                              align_corners=False).view(b, t, 3, *size)
    return mask * moved.view(b, t, 3, *size) + (1 - mask) * synth


class Generator(nn.Module):
    """Speech + reference face + emotion + noise -> a talking-face clip, plus an emotion guess from speech."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.speech = SpeechEncoder(cfg)
        self.image = ImageEncoder(cfg)
        self.emotion = nn.Embedding(len(cfg.emotions), cfg.emotion_dim)
        self.noise = NoiseEncoder(cfg)
        self.decoder = Decoder(cfg)
        self.aux_emotion = nn.Linear(cfg.speech_dim, len(cfg.emotions))

    def forward(self, mels: torch.Tensor, reference: torch.Tensor, emotion: torch.Tensor,
                generator: torch.Generator | None = None, parts: bool = False):
        """mels [B, T, n_mels, ctx], reference [B, 3, S, S] in [-1, 1], emotion [B] class ids, [B, 6]
        weights (a blend of emotions) or [B, T, 6] (each frame's blend) -> (video [B, T, 3, S, S], emotion
        logits from speech [B, 6]), and with ``parts`` the decoder's outputs too (``Decoder.forward``)."""
        out, aux = self.decode(mels, reference, emotion, generator)
        video = compose(reference, out)
        return (video, aux, out) if parts else (video, aux)

    def decode(self, mels: torch.Tensor, reference: torch.Tensor, emotion: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The decoder's outputs at the model's resolution and the speech emotion logits."""
        b, t = mels.shape[:2]
        speech = self.speech(mels)  # [B, T, speech_dim]
        image, skips = self.image(reference)  # [B, image_dim]
        weights = self.emotion_weights(emotion, t)
        codes = torch.cat([
            speech,
            image[:, None].expand(b, t, -1),
            weights @ self.emotion.weight,  # the weighted mix of the emotions' embeddings, per frame
            self.noise(b, t, mels.device, generator),
        ], dim=-1)
        return self.decoder(codes, skips, weights), self.aux_emotion(speech.mean(1))

    def emotion_weights(self, emotion: torch.Tensor, frames: int) -> torch.Tensor:
        """Class ids [B], weights [B, 6] or per-frame weights [B, T, 6] -> per-frame weights [B, T, 6]."""
        if emotion.dim() == 1:
            emotion = F.one_hot(emotion.long(), len(self.cfg.emotions))
        if emotion.dim() == 2:
            emotion = emotion[:, None].expand(-1, frames, -1)
        return emotion.to(self.emotion.weight.dtype)
