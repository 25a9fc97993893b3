"""The pictures a training run logs: real and generated frames side by side, and confusion matrices."""

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
