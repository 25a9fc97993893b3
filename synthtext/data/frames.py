"""Pictures people look at: resized frames, labels, emotion grids, sample grids and confusion matrices."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from synthtext.data.features import to_uint8


def sample_grid(real: torch.Tensor, fake: torch.Tensor, items: int = 4, frames: int = 4) -> np.ndarray:
    """Rows: real, generated (for up to ``items`` clips); columns: the first ``frames`` frames."""
    rows = []
    for i in range(min(items, real.shape[0])):
        step = max(1, real.shape[1] // frames)
        for video in (real[i], fake[i]):
            rows.append(np.concatenate(list(to_uint8(video[::step][:frames])), axis=1))
    return np.concatenate(rows, axis=0)


def confusion_image(matrix: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """A confusion matrix drawn as an RGB picture (rows: true, columns: predicted)."""
    cell, margin = 48, 40
    n = len(labels)
    image = np.full((margin + n * cell, margin + n * cell, 3), 255, np.uint8)
    norm = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    for i in range(n):
        cv2.putText(image, labels[i], (4, margin + i * cell + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(image, labels[i], (margin + i * cell + 8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        for j in range(n):
            shade = int(255 - 200 * norm[i, j])
            y, x = margin + i * cell, margin + j * cell
            image[y:y + cell - 2, x:x + cell - 2] = (shade, shade, 255)
            cv2.putText(image, str(int(matrix[i, j])), (x + 14, y + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    return image


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size:
        return frames
    interp = cv2.INTER_CUBIC if size > frames.shape[1] else cv2.INTER_AREA
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])


def label(frame: np.ndarray, text: str) -> np.ndarray:
    """A caption on a dark band in the frame's top-left corner."""
    out = frame.copy()
    scale = max(0.4, frame.shape[1] / 320)
    thick = max(1, int(round(scale * 1.5)))
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, height // 3)
    out[:height + base + 2 * pad, :width + 2 * pad] //= 3
    cv2.putText(out, text, (pad, pad + height), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def emotion_grid(clips: dict[str, np.ndarray], rest_gap: int, columns: int = 3) -> tuple[np.ndarray, list[tuple]]:
    """The emotions in a grid, speaking in turn: while one speaks (its own speech and frames) the
    others hold their first frame, dimmed. Returns frames and the (emotion, first, last) segments."""
    names = list(clips)
    rows = -(-len(names) // columns)
    height, width = clips[names[0]].shape[1:3]
    rest = {k: (label(v[0], k).astype(np.float32) * 0.55).astype(np.uint8) for k, v in clips.items()}
    out, segments, position = [], [], 0
    for speaking in names:
        segment = list(clips[speaking]) + [clips[speaking][-1]] * rest_gap
        segments.append((speaking, position, position + len(clips[speaking])))
        for frame in segment:
            canvas = np.zeros((rows * height, columns * width, 3), np.uint8)
            for cell, name in enumerate(names):
                r, c = divmod(cell, columns)
                canvas[r * height:(r + 1) * height, c * width:(c + 1) * width] = \
                    label(frame, name) if name == speaking else rest[name]
            out.append(canvas)
        position += len(segment)
    return np.stack(out), segments
