"""Pictures people look at: resized frames, labels, contact sheets and emotion grids."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from synthtext.ops.files import write_png_atomic


def resize_frames(frames: np.ndarray, size: int | tuple[int, int], interpolation: int | None = None) -> np.ndarray:
    """Frames [T, H, W, C] at ``size`` (a side, or (width, height)); unchanged when already that size. By
    default they are averaged down (INTER_AREA) and interpolated up (INTER_CUBIC)."""
    width, height = (size, size) if isinstance(size, int) else size
    if frames.shape[1:3] == (height, width):
        return frames
    if interpolation is None:
        interpolation = cv2.INTER_CUBIC if height > frames.shape[1] else cv2.INTER_AREA
    return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in frames])


def fit_frames(frames: np.ndarray, side: int) -> np.ndarray:
    """Frames made small enough to fit a ``side`` x ``side`` box (even sides, for H.264); never enlarged."""
    height, width = frames.shape[1:3]
    scale = side / max(height, width)
    if scale >= 1:
        return frames
    return resize_frames(frames, (int(width * scale) // 2 * 2, int(height * scale) // 2 * 2), cv2.INTER_AREA)


def frames_at_height(frames: np.ndarray, height: int) -> np.ndarray:
    """Frames scaled (INTER_AREA) to ``height``, keeping their aspect with an even width."""
    width = max(2, int(round(frames.shape[2] * height / frames.shape[1] / 2)) * 2)
    return resize_frames(frames, (width, height), cv2.INTER_AREA)


def contact_sheet(rows: list[list[np.ndarray]], out: str | Path) -> Path:
    """Write a grid of RGB tiles (a list of rows; the tiles of a row share a height, the rows a width) as
    a PNG, atomically."""
    sheet = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    return write_png_atomic(out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


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
