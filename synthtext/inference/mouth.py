"""The inside of an open mouth, drawn at the frame's own resolution: a dark red cavity, the tongue, the
upper teeth under the upper lip and the lower teeth over the lower lip when the mouth opens wide.

One renderer for both ends: the sample corpus draws it in every frame (``corpus.puppet``), and
inference draws it over the generated face at the output's resolution (``render.move_pixels``), where
the network's own mouth image is only 64 px. It is driven by the inner-lip points alone, so the upper
teeth move with the upper lip (and the head), the lower teeth with the lower lip and the jaw, and
nothing flickers that the lips don't. The teeth take the light of the face around the mouth.
"""

from __future__ import annotations

import cv2
import numpy as np

CAVITY = np.array([74, 24, 30], np.float32)  # RGB at the back of the mouth (real mouths: Lab L ~40, a ~+17)
TONGUE = np.array([168, 78, 84], np.float32)
TEETH = np.array([232, 219, 194], np.float32)  # in a face of typical brightness (``light`` 1)
TYPICAL_SKIN = 150.0  # median grey of a well-lit face around the mouth
TYPICAL_COLOUR = np.array([180, 135, 120], np.float32)  # its colour, lips included, in white light


def _poly(canvas: np.ndarray, points: np.ndarray, value) -> None:
    cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], value, cv2.LINE_AA, shift=4)


def _skin_light(image: np.ndarray, points: np.ndarray) -> float:
    """The face's brightness next to the mouth against ``TYPICAL_SKIN``: the skin in a margin of half the
    mouth's height around the outer lips, the lips left out (measured on the lips, GRID lrwp9a's teeth came
    out darker than her face's median, so no frame read as showing teeth)."""
    outer = points[48:60].astype(np.float64)
    pad = 0.5 * float(np.ptp(outer[:, 1])) + 2
    x0, y0 = np.maximum(np.floor(outer.min(0) - pad).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(outer.max(0) + pad).astype(int), (image.shape[1], image.shape[0]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 1.0
    lips = np.zeros((y1 - y0, x1 - x0), np.uint8)
    _poly(lips, outer - (x0, y0), 255)
    skin = image[y0:y1, x0:x1][lips == 0].astype(np.float32)
    return float(np.clip(np.median(skin.mean(-1)) / TYPICAL_SKIN, 0.55, 1.25)) if len(skin) >= 8 else 1.0


def paint_mouth(image: np.ndarray, points: np.ndarray, opening_px: float, light: float | None = None,
                own_teeth: bool = False) -> None:
    """Draw the mouth interior between the inner lips (points 60-67 of ``points``, pixel coordinates of
    ``image``, uint8 or float32 RGB, changed in place). ``opening_px``: the inner-lip gap at the middle;
    below a pixel nothing is drawn. ``light``: the teeth's brightness (default: the face around the mouth).
    ``own_teeth``: the image's upper teeth are the photo's own (moved with its upper lip): they are kept,
    and the lower teeth take their colour; only the cavity, the tongue and the lower teeth are drawn."""
    if opening_px < 1.0:
        return
    inner = points[60:68].astype(np.float64)
    x0, y0 = np.floor(inner.min(0)).astype(int) - 3
    x1, y1 = np.ceil(inner.max(0)).astype(int) + 4
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
    patch = image[y0:y1, x0:x1]
    if patch.shape[0] < 2 or patch.shape[1] < 2:
        return
    local = inner - (x0, y0)
    mask = np.zeros(patch.shape[:2], np.uint8)
    _poly(mask, local, 255)
    around = patch[mask == 0].astype(np.float32)
    if light is None:
        light = _skin_light(image, points)
    # the light's colour: the lips and skin around the mouth against a typical face's, half of it (half of
    # what differs is the person's skin, not the light). GRID's yellow light made neutral teeth look grey.
    tint = np.ones(3, np.float32)
    if len(around) >= 8:
        colour = np.median(around, axis=0) + 1.0
        tint = np.sqrt((colour / colour.mean()) / (TYPICAL_COLOUR / TYPICAL_COLOUR.mean())).clip(0.7, 1.3)
    left, right = local[0], local[4]
    across = right - left
    width = float(np.linalg.norm(across))
    if width < 2:
        return
    axis = across / width
    down = np.array([-axis[1], axis[0]])
    ys, xs = np.mgrid[0:patch.shape[0], 0:patch.shape[1]].astype(np.float32)
    u = ((xs - left[0]) * axis[0] + (ys - left[1]) * axis[1]) / width * 2 - 1  # -1 .. 1 corner to corner
    top = np.interp(u, [-1, -0.5, 0, 0.5, 1], [local[0] @ down, local[1] @ down, local[2] @ down, local[3] @ down,
                                                local[4] @ down])
    v = xs * down[0] + ys * down[1] - top  # depth below the upper lip, px
    # the cavity: darkest at the corners and the back, a little lighter just inside the lips
    shade = np.clip(1 - 0.6 * u ** 2, 0.35, 1)[..., None]
    fill = CAVITY * shade * (0.8 + 0.2 * np.clip(1 - v / max(opening_px, 1), 0, 1))[..., None]
    # the tongue: low in the mouth, seen once it is open a little
    if opening_px > 0.12 * width:
        centre = local[6] - 0.12 * opening_px * down
        tongue = np.zeros(patch.shape[:2], np.float32)
        cv2.ellipse(tongue, (int(round(centre[0] * 16)), int(round(centre[1] * 16))),
                    (int(round(0.32 * width * 16)), int(round(0.38 * opening_px * 16))),
                    float(np.degrees(np.arctan2(axis[1], axis[0]))), 180, 360, 1.0, -1, cv2.LINE_AA, shift=4)
        tongue *= np.clip(1 - 0.7 * u ** 2, 0, 1)
        fill = fill * (1 - tongue[..., None]) + (TONGUE * 0.75 * shade) * tongue[..., None]
    # the upper teeth: from under the upper lip down, across the middle of the mouth, shadowed by the lip
    tooth = min(0.5 * opening_px, 0.17 * width)
    teeth = (np.abs(u) < 0.68) & (v > -2) & (v < tooth * (1 - 0.45 * u ** 2))
    incisor = 0.3  # tooth width as a share of the half mouth: faint gaps between teeth, one at the middle
    gaps = np.abs(((u / incisor) + 0.5) % 1 - 0.5) * incisor * width / 2 < 0.35
    tone = TEETH * light * np.clip(1 - 0.5 * np.abs(u), 0.55, 1)[..., None]
    tone = tone * np.clip(0.72 + 0.28 * np.clip(v / max(0.35 * tooth, 1), 0, 1), 0, 1)[..., None]
    tone = np.where(gaps[..., None], tone * 0.86, tone)
    fill = np.where(teeth[..., None], tone, fill)
    lower_tone = TEETH * light
    keep = np.zeros(patch.shape[:2], bool)
    if own_teeth:
        # the photo's teeth, where they are: the brighter half of what sits in the upper teeth's place
        theirs = patch[teeth & (mask > 0)].astype(np.float32)
        if len(theirs) >= 4:
            keep = teeth
            luma = theirs.mean(-1)
            lower_tone = np.median(theirs[luma >= np.median(luma)], axis=0) / np.asarray(tint)
    # the lower teeth, when the mouth is wide open: their tips above the lower lip, in its shadow
    if opening_px > 0.3 * width:
        bottom = np.interp(u, [-1, -0.5, 0, 0.5, 1], [local[0] @ down, local[7] @ down, local[6] @ down,
                                                       local[5] @ down, local[4] @ down]) - top
        lower = (np.abs(u) < 0.5) & (v > bottom - 0.25 * tooth) & (v < bottom + 2)
        fill = np.where(lower[..., None], lower_tone * 0.85 * np.clip(1 - 0.5 * np.abs(u), 0.5, 1)[..., None],
                        fill)
    fill = fill * tint
    alpha = mask.astype(np.float32)[..., None] / 255 * (1 - keep[..., None])
    patch[:] = (patch * (1 - alpha) + np.clip(fill, 0, 255) * alpha).astype(patch.dtype)
