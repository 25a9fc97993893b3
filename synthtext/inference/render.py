"""Rendering: the generator's animation -> frames. The motion field moves the photo's own pixels at any
resolution (``move_pixels``), with blinks and head motion (``synthtext.inference.life``) and the mouth's
inside drawn at the output's resolution (``synthtext.inference.mouth``); ``face_frames`` gives the
aligned face at any size and ``paste_back`` the photo with the face moving in it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch

from synthtext import EMOTIONS
from synthtext.data.features import to_uint8
from synthtext.data.frames import resize_frames
from synthtext.data.geometry import inner_lip_distance
from synthtext.data.template import eye_centres, template
from synthtext.evaluation.liveliness import mouth_measures
from synthtext.inference.expression import ExpressionRig
from synthtext.inference.infer import Animation, Face, animate
from synthtext.inference.life import HeadField, Lids
from synthtext.inference.mouth import paint_mouth
from synthtext.model import Generator


def crop_frames(animation: Animation, crop: np.ndarray) -> np.ndarray:
    """Frames [T, H, W, 3] uint8 at the size of ``crop`` (an aligned face, uint8 [H, W, 3]): the motion
    field moves the crop's own pixels; a pixel decoder's frames are resized."""
    if not animation.motion:
        return resize_frames(to_uint8(animation.parts["frames"]), crop.shape[0])
    side, size = animation.parts["flow"].shape[-1], crop.shape[0]
    k = side / size
    to_net = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5]])  # pixel centres kept aligned
    return move_pixels(animation, np.ascontiguousarray(crop), to_net)


def generate_frames(generator: Generator, audio: np.ndarray, sample_rate: int, crop: np.ndarray, emotion: str,
                    seed: int = 0, overlap: int | None = None, batch: int = 64, size: int | None = None,
                    landmarks: np.ndarray | None = None) -> np.ndarray:
    """Frames [T, size, size, 3] uint8 (default: the model's image size) for speech of any length:
    ``animate`` then ``crop_frames`` on the crop resized to ``size``. ``landmarks``: the crop's 68 points
    in its pixels (where the expression is drawn; default: the template's)."""
    size = size or generator.cfg.image_size
    animation = animate(generator, audio, sample_rate, crop, emotion, seed, overlap, batch, landmarks=landmarks)
    return crop_frames(animation, resize_frames(crop[None], size)[0])


def face_frames(animation: Animation, face: Face, size: int) -> np.ndarray:
    """The aligned face at ``size`` x ``size``, taken from the photo at that size (not an enlarged
    crop), moved by the animation. uint8 [T, size, size, 3]."""
    return crop_frames(animation, face.crop_at(size))


# ---------------------------------------------------------------- output frames


def feather_mask(size: int, feather: float = 0.1) -> np.ndarray:
    """1 inside the crop, falling smoothly to 0 over ``feather`` x size at its edges. float32 [S, S]."""
    margin = max(1, int(round(size * feather)))
    mask = np.zeros((size, size), np.float32)
    mask[margin:size - margin, margin:size - margin] = 1.0
    return cv2.GaussianBlur(mask, (0, 0), margin / 2)


def paste_back(frames: np.ndarray | Animation, face: Face, feather: float = 0.1) -> np.ndarray:
    """Generated faces placed back into the photo through the inverse alignment transform, with a
    feathered edge, at the photo's resolution (cut to even sides for H.264).

    For an ``Animation`` of the motion decoder the field moves the photo's own pixels at the photo's
    resolution, so the video is as sharp as the photo; only the synthesized part (mouth interior)
    comes from the network's resolution. Frames (uint8 crops) are warped back as images.
    """
    if isinstance(frames, Animation):
        if frames.motion:
            return _paste_motion(frames, face, feather)
        frames = to_uint8(frames.parts["frames"])
    height, width = (face.image.shape[0] // 2) * 2, (face.image.shape[1] // 2) * 2
    size = face.crop.shape[0]
    inverse = cv2.invertAffineTransform(face.matrix)
    mask = cv2.warpAffine(feather_mask(size, feather), inverse, (width, height), flags=cv2.INTER_LINEAR)[..., None]
    photo = face.image[:height, :width].astype(np.float32)
    out = np.empty((len(frames), height, width, 3), np.uint8)
    for index, frame in enumerate(resize_frames(frames, size)):
        warped = cv2.warpAffine(frame, inverse, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        out[index] = np.clip(photo * (1 - mask) + warped.astype(np.float32) * mask + 0.5, 0, 255).astype(np.uint8)
    return out


def _paste_motion(animation: Animation, face: Face, feather: float) -> np.ndarray:
    """The motion field taken into photo coordinates and applied to the photo itself."""
    height, width = (face.image.shape[0] // 2) * 2, (face.image.shape[1] // 2) * 2
    photo = np.ascontiguousarray(face.image[:height, :width])
    return move_pixels(animation, photo, face.matrix_at(animation.parts["flow"].shape[-1]), feather)


def shows_teeth(image: np.ndarray, points: np.ndarray, open_iod: float = 0.08, share: float = 0.1) -> bool:
    """Whether the photo's mouth (68 ``points`` in its pixels) is open at least ``open_iod`` eye distances
    and at least ``share`` of its inside is teeth (``liveliness.mouth_measures``: brighter than the face)."""
    gap = float(inner_lip_distance(points[None])[0])
    if gap < open_iod * float(np.linalg.norm(np.subtract(*eye_centres(points)))):
        return False
    return mouth_measures(image, points)["teeth"] >= share


def move_pixels(animation: Animation, image: np.ndarray, to_net: np.ndarray,
                feather: float | None = None) -> np.ndarray:
    """Frames [T, H, W, 3] uint8: ``image`` (uint8 [H, W, 3], any resolution) moved by the motion field,
    blended with the synthesized part; ``to_net`` maps image pixels to network pixels. With ``feather``
    only the part under the network's crop moves, fading into the still image at the crop's edges.

    Pixels are resampled with a Lanczos kernel: most of the face moves by fractions of a pixel, and a
    cubic kernel at half-pixel offsets loses about a third of the photo's fine detail (skin, hair, the
    eyes' edges), Lanczos much less (``benchmarks/bench_generate.py`` prints the sharpness)."""
    height, width = image.shape[:2]
    side = animation.parts["flow"].shape[-1]
    if feather is None:
        x0, y0, x1, y1 = 0, 0, width, height
    else:  # only the image's pixels under the crop can move: work in that box
        corners = cv2.transform(np.array([[[0, 0], [side, 0], [0, side], [side, side]]], np.float32),
                                cv2.invertAffineTransform(to_net))[0]
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 2, (width, height))
    box_w, box_h = int(x1 - x0), int(y1 - y0)
    shifted = to_net.copy()
    shifted[:, 2] += to_net[:, :2] @ np.array([x0, y0], np.float64)  # box pixel -> network pixel
    from_net = cv2.invertAffineTransform(shifted)
    # normalised displacement -> image pixels
    linear = (cv2.invertAffineTransform(to_net)[:, :2] * (side / 2)).astype(np.float32)
    grid_x, grid_y = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    edge = 1.0 if feather is None else \
        cv2.warpAffine(feather_mask(side, feather), from_net, (box_w, box_h), flags=cv2.INTER_LINEAR)[..., None]
    # the field and the mask travel together: one warp per frame for both
    field_mask = np.ascontiguousarray(torch.cat([animation.parts["flow"], animation.parts["mask"]], 1).float()
                                      .cpu().numpy().transpose(0, 2, 3, 1))
    synth = np.ascontiguousarray(((animation.parts["synth"].float().cpu().numpy() + 1) * 127.5).transpose(0, 2, 3, 1))
    out = np.repeat(image[None], len(animation), axis=0)
    region = image[y0:y1, x0:x1].astype(np.float32)
    life = animation.parts["life"].float().cpu().numpy() if "life" in animation.parts else None
    points = animation.points if animation.points is not None else template(side)
    eyes = cv2.transform(points[None].astype(np.float64), cv2.invertAffineTransform(to_net))[0]  # image pixels
    lids = Lids(image, eyes) if life is not None and life[:, 0].max() > 0 else None
    head = None
    if life is not None and np.abs(life[:, 1:]).max() > 0:
        # the head moves the face in the network's frame: box pixel -> network pixel, displaced there
        net_x = (to_net[0, 0] * grid_x + to_net[0, 1] * grid_y + to_net[0, 2]).astype(np.float32)
        net_y = (to_net[1, 0] * grid_x + to_net[1, 1] * grid_y + to_net[1, 2]).astype(np.float32)
        head = HeadField(net_x, net_y, points, side)
    # The mouth interior at this resolution (``synthtext.inference.mouth``), driven by the decoder's landmark moves.
    # An open mouth that shows no teeth is drawn over too: GRID lrwp9a's dark 20-px interior, stretched
    # as the mouth opened wider, was a blur (sharpness 1.8 of the face's, no teeth). Where the photo shows
    # its own teeth, its upper teeth are kept (moved by the field) and the cavity and lower teeth drawn
    # below them: Obama's smile, stretched open, filled the mouth with teeth (Lab L 74; real mouths <= 50).
    moves = animation.parts.get("points")
    moves = moves.float().cpu().numpy() * (side / 2) if moves is not None else None
    own_teeth = moves is not None and shows_teeth(image, eyes)
    to_image = cv2.invertAffineTransform(to_net)
    # The emotion's expression, drawn on the photo's own landmarks (``synthtext.inference.expression``).
    emotion = animation.parts.get("emotion")
    weights = emotion.float().cpu().numpy() if emotion is not None else None
    rig = None
    if weights is not None and np.abs(np.delete(weights, EMOTIONS.index("NEU"), 1)).max() > 0:
        rig = ExpressionRig(eyes - (x0, y0), (box_h, box_w), EMOTIONS)

    def mouth_points(t: int) -> np.ndarray:
        """The frame's 68 points in box pixels: the reference's moved by the decoder, then by the head."""
        moved = points + moves[t]
        if head is not None:
            dx, dy = HeadField(moved[:, 0], moved[:, 1], points, side).displacement(*life[t, 1:])
            moved = moved + np.stack([dx, dy], 1)
        moved = cv2.transform(moved[None], to_image)[0] - (x0, y0)
        return moved if rig is None else moved + rig.landmark_moves(weights[t])

    def fields(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The field and mask and the synthesized image over the box, and where the still face's pixels
        are (image pixels) for each of its pixels."""
        if head is None:
            return (cv2.warpAffine(field_mask[t], from_net, (box_w, box_h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE),
                    cv2.warpAffine(synth[t], from_net, (box_w, box_h), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REPLICATE), grid_x, grid_y)
        dx, dy = head.displacement(*life[t, 1:])
        # a pixel of the moved face shows what the still face shows where it came from (to first order)
        qx, qy = net_x - dx, net_y - dy
        still_x = from_net[0, 0] * qx + from_net[0, 1] * qy + from_net[0, 2] + x0
        still_y = from_net[1, 0] * qx + from_net[1, 1] * qy + from_net[1, 2] + y0
        return (cv2.remap(field_mask[t], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                cv2.remap(synth[t], qx, qy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE),
                still_x.astype(np.float32), still_y.astype(np.float32))

    def render(t: int) -> None:
        warped, filled, base_x, base_y = fields(t)
        map_x = base_x + linear[0, 0] * warped[..., 0] + linear[0, 1] * warped[..., 1]
        map_y = base_y + linear[1, 0] * warped[..., 0] + linear[1, 1] * warped[..., 1]
        if rig is not None:  # the expression under the speech's moves: box pixels there
            map_x, map_y = rig.pull(map_x - np.float32(x0), map_y - np.float32(y0), weights[t])
            map_x += np.float32(x0)
            map_y += np.float32(y0)
        face_px = cv2.remap(image, map_x, map_y, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
        face_px = face_px.astype(np.float32)
        if lids is not None:
            lids.draw(face_px, map_x, map_y, float(life[t, 0]))
        face_px -= filled  # mask * moved + (1 - mask) * synthesized, in place
        face_px *= warped[..., 2:3]
        face_px += filled
        if moves is not None:
            moved = mouth_points(t)
            paint_mouth(face_px, moved, float(inner_lip_distance(moved[None])[0]), own_teeth=own_teeth)
        if feather is not None:
            face_px -= region
            face_px *= edge
            face_px += region
        out[t, y0:y1, x0:x1] = np.clip(face_px + 0.5, 0, 255).astype(np.uint8)

    # Frames are independent and OpenCV and numpy release the GIL: one thread per core this process
    # computes with (torch's share: a server worker gets cores / workers).
    threads = min(torch.get_num_threads(), len(animation))
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(render, range(len(animation))))
    else:
        for t in range(len(animation)):
            render(t)
    return out
