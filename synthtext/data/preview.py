"""Contact sheets of aligned clips: frames with their landmarks, so alignment can be checked by eye."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from synthtext.data.clipfile import read_clip
from synthtext.data.frames import contact_sheet
from synthtext.data.template import eye_centres, template


def clip_strip(path: str | Path, frames: int = 6, scale: int = 1) -> np.ndarray:
    """One row: ``frames`` evenly spaced frames of a clip with landmarks (green) and the template's
    eye centres (red crosses), with the clip id written on the first frame. RGB uint8."""
    clip = read_clip(path)
    size = clip.video.shape[1]
    picks = np.linspace(0, len(clip.video) - 1, frames).round().astype(int)
    tiles = []
    for t in picks:
        tile = np.ascontiguousarray(clip.video[t])
        if scale != 1:
            tile = cv2.resize(tile, (size * scale, size * scale), interpolation=cv2.INTER_NEAREST)
        for x, y in clip.landmarks[t] * scale:
            cv2.circle(tile, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1)
        for x, y in eye_centres(template(size)) * scale:
            cv2.drawMarker(tile, (int(round(x)), int(round(y))), (255, 0, 0), cv2.MARKER_CROSS, 6, 1)
        tiles.append(tile)
    cv2.putText(tiles[0], f"{clip.attrs['clip_id']}", (2, 10 * scale), cv2.FONT_HERSHEY_PLAIN, 0.7 * scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate(tiles, axis=1)


def align_preview(paths: Sequence[str | Path], out: str | Path, frames: int = 6, max_clips: int = 16) -> Path:
    """Write a PNG with one strip per clip (the first ``max_clips`` in sorted order), atomically."""
    strips = [[clip_strip(p, frames)] for p in sorted(paths)[:max_clips]]
    if not strips:
        empty = np.zeros((64, 256, 3), np.uint8)
        cv2.putText(empty, "no aligned clips", (8, 36), cv2.FONT_HERSHEY_PLAIN, 1.0, (255, 255, 255), 1)
        strips = [[empty]]
    return contact_sheet(strips, out)
