"""Identities made from real photos, and frames rendered by warping them along their 68 landmarks."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from synthtext.corpus.motion import face_frame

WIDTH, HEIGHT = 480, 360


class PiecewiseAffine:
    """Triangulated piecewise-affine warp of an image from its rest landmarks to moved ones.

    The triangulation covers the landmarks plus a fixed ring of anchors around the face, so
    everything outside the ring stays put and the warp is continuous at its edge.
    """

    def __init__(self, rest: np.ndarray, image_shape: tuple[int, ...], margin: float = 0.7):
        _, _, iod = face_frame(rest)
        low, high = rest.min(0) - margin * iod, rest.max(0) + margin * iod
        low = np.maximum(low, 0)
        high = np.minimum(high, np.array(image_shape[1::-1]) - 1)
        xs, ys = np.linspace(low[0], high[0], 6), np.linspace(low[1], high[1], 6)
        ring = [(x, low[1]) for x in xs] + [(x, high[1]) for x in xs] + \
               [(low[0], y) for y in ys[1:-1]] + [(high[0], y) for y in ys[1:-1]]
        self.anchors = np.array(ring)
        self.rest = np.vstack([rest, self.anchors])
        self.triangles = Delaunay(self.rest).simplices
        self.box = (int(low[0]), int(low[1]), int(np.ceil(high[0])) + 1, int(np.ceil(high[1])) + 1)

    def __call__(self, image: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """The image with its face region warped so rest landmarks land on ``moved`` [68, 2]."""
        x0, y0, x1, y1 = self.box
        target = np.vstack([moved, self.anchors]) - (x0, y0)
        source = self.rest
        index = np.zeros((y1 - y0, x1 - x0), np.int32)
        inverse = np.zeros((len(self.triangles) + 1, 2, 3))
        inverse[0] = [[1, 0, x0], [0, 1, y0]]  # outside every triangle: identity
        for k, tri in enumerate(self.triangles, start=1):
            dst = target[tri].astype(np.float32)
            if abs(np.cross(dst[1] - dst[0], dst[2] - dst[0])) < 1e-6:
                continue  # a collapsed triangle (closed lips, shut eyelids) covers no pixels
            inverse[k] = cv2.getAffineTransform(dst, source[tri].astype(np.float32))
            cv2.fillConvexPoly(index, np.round(dst * 16).astype(np.int32), k, lineType=cv2.LINE_8, shift=4)
        ys, xs = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
        m = inverse[index]
        map_x = (m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]).astype(np.float32)
        map_y = (m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]).astype(np.float32)
        out = image.copy()
        out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out


def paint_mouth(image: np.ndarray, points: np.ndarray, opening_px: float) -> None:
    """Draw the mouth interior between the inner lips: dark cavity, upper and lower teeth."""
    inner = points[60:68]
    if opening_px < 1.0:
        return
    x0, y0 = np.floor(inner.min(0)).astype(int) - 2
    x1, y1 = np.ceil(inner.max(0)).astype(int) + 3
    x0, y0 = max(x0, 0), max(y0, 0)
    patch = image[y0:y1, x0:x1]
    if patch.size == 0:
        return
    local = (inner - (x0, y0)) * 16
    mask = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(local).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    fill = np.empty_like(patch)
    fill[:] = (70, 24, 28)
    # Teeth follow the inner lip lines, a little inside the corners.
    width = float(np.linalg.norm(points[64] - points[60]))
    tooth = min(0.5 * opening_px, 0.16 * width)
    centre = inner.mean(0)
    upper = points[[60, 61, 62, 63, 64]] - (x0, y0)
    upper = centre - (x0, y0) + (upper - centre + (x0, y0)) * (0.86, 1.0)
    teeth = np.vstack([upper + (0, -2), upper[::-1] + (0, tooth)])
    cv2.fillPoly(fill, [np.round(teeth * 16).astype(np.int32)], (228, 224, 212), cv2.LINE_AA, shift=4)
    if opening_px > 0.25 * width:
        lower = points[[60, 67, 66, 65, 64]] - (x0, y0)
        lower = centre - (x0, y0) + (lower - centre + (x0, y0)) * (0.8, 1.0)
        bottom = np.vstack([lower + (0, 2), lower[::-1] + (0, -0.5 * tooth)])
        cv2.fillPoly(fill, [np.round(bottom * 16).astype(np.int32)], (205, 200, 188), cv2.LINE_AA, shift=4)
    alpha = cv2.GaussianBlur(mask, (3, 3), 0)[..., None].astype(np.float32) / 255
    patch[:] = (patch * (1 - alpha) + fill * alpha).astype(np.uint8)


@dataclass
class Identity:
    """One speaker: an image, its rest landmarks (mouth closed), and where it sits in the frame."""

    name: str
    image: np.ndarray  # RGB uint8
    landmarks: np.ndarray  # [68, 2] rest pose in image pixels
    framing: np.ndarray  # 2x3 affine: identity image -> 480x360 frame
    params: dict


def close_mouth(points: np.ndarray) -> np.ndarray:
    """Rest landmarks: inner lips meet halfway, so the photo's own teeth are covered at rest."""
    rest = points.copy()
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        middle = (points[upper] + points[lower]) / 2
        rest[upper] = middle
        rest[lower] = middle
    return rest


def make_identity(name: str, photo: np.ndarray, points: np.ndarray, rng: np.random.Generator,
                  variation: float = 1.0) -> Identity:
    """A distinct speaker from a photo: face geometry, skin tone, hair/background colour, framing.

    ``variation`` 0 keeps the photo as it is (apart from closing the mouth at rest).
    """
    if rng.random() < 0.5 * variation:
        photo = np.ascontiguousarray(photo[:, ::-1])
        from synthtext.template import MIRROR

        points = points[MIRROR] * (-1, 1) + (photo.shape[1] - 1, 0)
    rest = close_mouth(points)
    centre, axes, iod = face_frame(rest)
    local = (rest - centre) @ axes.T / iod  # face frame, IOD units
    params = {
        "face_width": float(1 + variation * rng.uniform(-0.08, 0.08)),
        "jaw_length": float(1 + variation * rng.uniform(-0.06, 0.06)),
        "eye_spacing": float(variation * rng.uniform(-0.03, 0.03)),
        "nose_length": float(variation * rng.uniform(-0.05, 0.05)),
        "mouth_width": float(1 + variation * rng.uniform(-0.06, 0.06)),
        "brow_height": float(variation * rng.uniform(-0.03, 0.03)),
        "skin_lab": [float(v) for v in variation * rng.uniform([-14, -5, -8], [10, 6, 10])],
        "hue_shift": float(variation * rng.uniform(-40, 40)),
        "iod_px": float(rng.uniform(44, 56)),
    }
    shaped = local.copy()
    shaped[0:17, 0] *= params["face_width"]
    shaped[3:14, 1] = 1.0 + (shaped[3:14, 1] - 1.0) * params["jaw_length"]
    shaped[36:42, 0] -= params["eye_spacing"]
    shaped[42:48, 0] += params["eye_spacing"]
    shaped[31:36, 1] += params["nose_length"]
    mouth_centre = shaped[48:68, 0].mean()
    shaped[48:68, 0] = mouth_centre + (shaped[48:68, 0] - mouth_centre) * params["mouth_width"]
    shaped[17:27, 1] -= params["brow_height"]
    moved = centre + iod * shaped @ axes
    image = PiecewiseAffine(rest, photo.shape)(photo, moved)
    image = _recolour(image, moved, params)
    # Framing: scale to the chosen IOD, eyes upright, face a little off-centre.
    _, axes2, iod2 = face_frame(moved)
    scale = params["iod_px"] / iod2
    angle = np.degrees(np.arctan2(axes2[0, 1], axes2[0, 0]))
    eye_mid = (moved[36:42].mean(0) + moved[42:48].mean(0)) / 2
    framing = cv2.getRotationMatrix2D(tuple(map(float, eye_mid)), angle, scale)
    framing[:, 2] += (WIDTH / 2 + rng.uniform(-20, 20) - eye_mid[0], HEIGHT * 0.4 + rng.uniform(-12, 12) - eye_mid[1])
    return Identity(name=name, image=image, landmarks=moved, framing=framing, params=params)


def _recolour(image: np.ndarray, points: np.ndarray, params: dict) -> np.ndarray:
    """Skin tone inside the face outline, hue rotation (hair, clothes, background) outside it."""
    hull = cv2.convexHull(np.round(np.vstack([points[0:17], points[26:16:-1] - (0, 8)])).astype(np.int32))
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    soft = cv2.GaussianBlur(mask, (0, 0), 6).astype(np.float32)[..., None] / 255
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab += np.array(params["skin_lab"], np.float32)
    skin = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB).astype(np.float32)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(round(params["hue_shift"] / 2))) % 180
    rest = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    return np.clip(skin * soft + rest * (1 - soft), 0, 255).astype(np.uint8)


def pose_matrix(identity: Identity, pose: np.ndarray) -> np.ndarray:
    """Identity image -> frame transform with the head pose (roll degrees, dx, dy, scale) applied."""
    eye_mid = (identity.landmarks[36:42].mean(0) + identity.landmarks[42:48].mean(0)) / 2
    centre = identity.framing[:, :2] @ eye_mid + identity.framing[:, 2]
    head = cv2.getRotationMatrix2D(tuple(map(float, centre)), float(pose[0]), float(pose[3]))
    head[:, 2] += pose[1:3]
    return head[:, :2] @ identity.framing + np.hstack([np.zeros((2, 2)), head[:, 2:]])


def render_frame(identity: Identity, warp: PiecewiseAffine, moved: np.ndarray, opening_px: float,
                 pose: np.ndarray, background: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One 480x360 RGB frame and its 68 landmarks in frame pixels."""
    face = warp(identity.image, moved)
    paint_mouth(face, moved, opening_px)
    matrix = pose_matrix(identity, pose)
    frame = cv2.warpAffine(face, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    return frame, moved @ matrix[:, :2].T + matrix[:, 2]
