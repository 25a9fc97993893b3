"""The canonical 68-point face template that every aligned crop is mapped onto.

The shape is the mirror-symmetrised mean (after similarity Procrustes) of dlib 68-point fits on a
dozen real frontal faces, in units of the inter-ocular distance (IOD) with the midpoint between the
eye centres at the origin, x to the subject's left-in-image, y down. It was measured once and is
kept here as numbers so alignment does not depend on any image at run time.
"""

from __future__ import annotations

import numpy as np

TEMPLATE_IOD = np.array([
    (-1.1072, +0.0540), (-1.0860, +0.3525), (-1.0477, +0.6404), (-1.0085, +0.9335),
    (-0.9229, +1.2119), (-0.7659, +1.4530), (-0.5497, +1.6516), (-0.2950, +1.8055),
    (+0.0000, +1.8497), (+0.2950, +1.8055), (+0.5497, +1.6516), (+0.7659, +1.4530),
    (+0.9229, +1.2119), (+1.0085, +0.9335), (+1.0477, +0.6404), (+1.0860, +0.3525),
    (+1.1072, +0.0540), (-0.9081, -0.2100), (-0.7697, -0.3436), (-0.5770, -0.3867),
    (-0.3720, -0.3624), (-0.1775, -0.2932), (+0.1775, -0.2932), (+0.3720, -0.3624),
    (+0.5770, -0.3867), (+0.7697, -0.3436), (+0.9081, -0.2100), (+0.0000, -0.0600),
    (+0.0000, +0.1262), (+0.0000, +0.3122), (+0.0000, +0.5068), (-0.2174, +0.6797),
    (-0.1107, +0.7115), (+0.0000, +0.7380), (+0.1107, +0.7115), (+0.2174, +0.6797),
    (-0.6957, +0.0025), (-0.5739, -0.0727), (-0.4243, -0.0728), (-0.2936, +0.0211),
    (-0.4321, +0.0588), (-0.5804, +0.0630), (+0.2936, +0.0211), (+0.4243, -0.0728),
    (+0.5739, -0.0727), (+0.6957, +0.0025), (+0.5804, +0.0630), (+0.4321, +0.0588),
    (-0.4215, +1.1020), (-0.2648, +1.0187), (-0.1110, +0.9689), (+0.0000, +0.9995),
    (+0.1110, +0.9689), (+0.2648, +1.0187), (+0.4215, +1.1020), (+0.2728, +1.2443),
    (+0.1204, +1.3084), (+0.0000, +1.3230), (-0.1204, +1.3084), (-0.2728, +1.2443),
    (-0.3477, +1.1071), (-0.1131, +1.0848), (+0.0000, +1.0949), (+0.1131, +1.0848),
    (+0.3477, +1.1071), (+0.1123, +1.1428), (+0.0000, +1.1565), (-0.1123, +1.1428),
], dtype=np.float64)

# Where the template sits in an S x S crop: eye line at EYE_Y * S, eye centres EYE_DISTANCE * S apart.
# With these the brows are at ~0.27 S and the chin at ~0.90 S: the whole face and jaw fit in the crop.
EYE_Y = 0.38
EYE_DISTANCE = 0.28

# Points used to estimate the similarity transform: the eyes (36-47) and the nose bridge (27-30)
# move little with speech or expression, unlike the mouth, jaw and brows; leaving out the nose
# tip and wings keeps the eye centres within ~1 px of the template on real faces.
RIGID_POINTS = np.r_[27:31, 36:48]

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)

# iBUG-68 index of each point's mirror image (left <-> right).
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + list(range(35, 30, -1))
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + list(range(54, 47, -1)) + list(range(59, 54, -1)) + list(range(64, 59, -1)) + list(range(67, 64, -1))
)


def template(size: int) -> np.ndarray:
    """The 68 template points [68, 2] (x, y) in pixel coordinates of a ``size`` x ``size`` crop."""
    return TEMPLATE_IOD * (EYE_DISTANCE * size) + np.array([0.5 * size, EYE_Y * size])


def eye_centres(points: np.ndarray) -> np.ndarray:
    """Left and right eye centres [..., 2, 2] of landmark arrays [..., 68, 2]."""
    return np.stack([points[..., LEFT_EYE, :].mean(-2), points[..., RIGHT_EYE, :].mean(-2)], axis=-2)
