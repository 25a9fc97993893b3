"""Random training windows from the aligned HDF5 clips, with the seed's augmentation."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from synthtext import EMOTIONS
from synthtext.data.features import log_mel, mel_windows, normalised_points, to_tensor_frames
from synthtext.data.geometry import similarity, transform_points
from synthtext.model.config import ModelConfig
from synthtext.ops.config import REFERENCES, TrainParams

STABLE_POINTS = np.array([27, 28, 29, 30, 36, 39, 42, 45])  # nose bridge and eye corners: no expression moves them


def stabilise(video: np.ndarray, landmarks: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each frame moved (similarity on the nose bridge and eye corners) into the pose of the landmarks
    ``pose`` [68, 2]: head motion removed, expression and speech kept. uint8 [T, S, S, 3], [T, 68, 2]."""
    size = video.shape[1]
    video, landmarks = video.copy(), landmarks.astype(np.float32).copy()
    for t in range(len(video)):
        matrix = similarity(landmarks[t][STABLE_POINTS], pose[STABLE_POINTS])
        video[t] = cv2.warpAffine(video[t], matrix, (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        landmarks[t] = transform_points(matrix, landmarks[t])
    return video, landmarks


def mouth_weights(landmarks: np.ndarray, size: int, source_size: int) -> np.ndarray:
    """Per-frame attention maps [T, 1, size, size]: 1 everywhere, up to 1 + 4 on the mouth."""
    scale = size / source_size
    out = np.ones((len(landmarks), 1, size, size), np.float32)
    for t, points in enumerate(landmarks):
        mouth = points[48:68] * scale
        mask = np.zeros((size, size), np.float32)
        hull = cv2.convexHull(np.round(mouth).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0)
        mask = cv2.dilate(mask, np.ones((max(3, size // 16),) * 2, np.uint8))
        out[t, 0] += 4.0 * cv2.GaussianBlur(mask, (0, 0), max(1.0, size / 32))
    return out


class ClipWindows(Dataset):
    """Random windows of ``cfg.frames`` frames: item i is a window of clip ``i mod clips``, drawn with
    a generator seeded by (seed, i) — so ``length`` items cover a whole training run without epochs
    (default: ``windows`` per clip).

    Each item: video [T, 3, S, S], reference [3, S, S], mels [T, n_mels, ctx], emotion id, mouth
    weights [T, 1, S, S], landmarks [T, 68, 2] of the clip's frames and ref_landmarks [68, 2] of the
    reference frame (normalised coordinates). With ``still_head`` the window's frames are moved into
    the reference frame's head pose (``stabilise``): the generator then learns expression and speech,
    not head motion that speech cannot predict. The reference is a random frame of the same clip
    (``reference="clip"``, the seed's choice) or of a neutral clip of the same actor (``"neutral"``,
    when the actor has one): then the reference does not already show the target emotion, and the
    generator must take the expression from the emotion condition; ``"mixed"`` draws either, half and
    half. ``reference`` and ``still_head`` default to TrainParams'. Files are opened per item, so it works in
    DataLoader worker processes.
    """

    def __init__(self, files: list[Path], cfg: ModelConfig, windows: int = 4, augment: bool = True, seed: int = 0,
                 length: int | None = None, reference: str = TrainParams.defaults()["reference"],
                 still_head: bool = TrainParams.defaults()["still_head"]):
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {', '.join(REFERENCES)}, not {reference!r}")
        self.files, self.cfg, self.augment, self.seed = list(files), cfg, augment, seed
        self.still_head = still_head
        self.length = length or len(self.files) * windows
        self.lengths, actors, emotions = [], [], []
        for path in self.files:
            with h5py.File(path, "r") as f:
                self.lengths.append(len(f["video"]))
                actors.append(str(f.attrs["actor"]))
                emotions.append(str(f.attrs["emotion"]))
        self.reference = reference
        self.references = {i: [i] for i in range(len(self.files))}
        if reference in ("neutral", "mixed"):
            pairs = list(enumerate(zip(actors, emotions, strict=True)))
            for i, actor in enumerate(actors):
                self.references[i] = [j for j, (a, e) in pairs if a == actor and e == "NEU"] or [i]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        clip = index % len(self.files)
        rng = np.random.default_rng([self.seed, index])
        length = self.lengths[clip]
        start = int(rng.integers(0, max(1, length - cfg.frames + 1)))
        choices = [clip] if self.reference == "mixed" and rng.random() < 0.5 else self.references[clip]
        source = choices[int(rng.integers(0, len(choices)))]
        with h5py.File(self.files[source], "r") as f:
            ref_index = int(rng.integers(0, self.lengths[source]))
            reference = f["video"][ref_index]
            ref_landmarks = f["landmarks"][ref_index]
        with h5py.File(self.files[clip], "r") as f:
            video = f["video"][start:start + cfg.frames]
            landmarks = f["landmarks"][start:start + cfg.frames]
            audio = f["audio"][()]
            emotion = EMOTIONS.index(f.attrs["emotion"])
            source_size = video.shape[1]
        if len(video) < cfg.frames:  # a clip shorter than the window: repeat the last frame
            extra = cfg.frames - len(video)
            video = np.concatenate([video, np.repeat(video[-1:], extra, 0)])
            landmarks = np.concatenate([landmarks, np.repeat(landmarks[-1:], extra, 0)])
        if self.still_head:
            video, landmarks = stabilise(video, landmarks, ref_landmarks)
        frames = to_tensor_frames(video, cfg.image_size)
        ref = to_tensor_frames(reference[None], cfg.image_size)[0]
        if self.augment:  # the same colour jitter on the clip and its reference, noise on the reference
            gain, bias = rng.uniform(0.85, 1.15, 3).astype(np.float32), rng.uniform(-0.08, 0.08, 3).astype(np.float32)
            frames = np.clip(frames * gain[:, None, None] + bias[:, None, None], -1, 1)
            ref = np.clip(ref * gain[:, None, None] + bias[:, None, None]
                          + rng.normal(0, 0.03, ref.shape).astype(np.float32), -1, 1)
        mels = mel_windows(log_mel(audio, cfg), start, cfg.frames, cfg)
        return {"video": torch.from_numpy(np.ascontiguousarray(frames)), "reference": torch.from_numpy(ref),
                "mels": torch.from_numpy(mels), "emotion": torch.tensor(emotion),
                "mouth": torch.from_numpy(mouth_weights(landmarks, cfg.image_size, source_size)),
                "landmarks": torch.from_numpy(normalised_points(landmarks, source_size)),
                "ref_landmarks": torch.from_numpy(normalised_points(ref_landmarks, source_size))}
