"""Face alignment for training crops: a similarity transform that puts the eyes on a fixed template.

The template is derived from the canonical face and the diffusion engine's crop margin, so a frontal training crop
frames the face as the engine's inference crop does (face-oval box plus ``crop_margin`` on each side). Rotation comes
from the eye line (in-plane roll is removed); scale from the head pose's pixels-per-IPD, which, unlike the distance
between the eyes in the photo, does not shrink when the head turns.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from aufx.diffusion.config import DiffusionConfig
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology

EYE_CORNERS = ((33, 133), (263, 362))  # MediaPipe: subject's right eye, left eye (outer, inner corner)


@dataclass(frozen=True)
class Template:
    eye_mid: tuple[float, float]  # eye midpoint in the crop, as fractions of its side
    side_ipd: float  # crop side in interpupillary distances


@lru_cache(maxsize=4)
def template(margin: float = DiffusionConfig.crop_margin) -> Template:
    """Crop = face-oval box of the canonical face grown by ``margin`` per side (as region.face_box does)."""
    canon = topology().canonical[:, :2]
    oval = canon[list(topology().groups["face_oval"])]
    lo, hi = oval.min(0), oval.max(0)
    side = float((hi - lo).max() * (1 + 2 * margin))
    eye_mid = canon[[i for pair in EYE_CORNERS for i in pair]].mean(0)
    frac = (eye_mid - (lo + hi) / 2) / side + 0.5
    return Template((float(frac[0]), float(frac[1])), side)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the eye openings (corner midpoints): stable under gaze, unlike the irises."""
    right, left = (landmarks[list(pair), :2].mean(0) for pair in EYE_CORNERS)
    return right, left


def alignment_matrix(face: FaceAnalysis, size: int, tpl: Template | None = None) -> np.ndarray:
    """2x3 affine matrix (image pixels -> crop pixels): rotation, uniform scale, translation."""
    tpl = tpl or template()
    right, left = eye_centres(face.landmarks)
    mid = (right + left) / 2
    dx, dy = left - right  # the subject's left eye is on the image's right
    roll = np.arctan2(dy, dx)
    scale = size / (tpl.side_ipd * face.pose.scale)
    c, s = np.cos(-roll) * scale, np.sin(-roll) * scale
    rot = np.array([[c, -s], [s, c]])
    target = np.array(tpl.eye_mid) * size
    return np.hstack([rot, (target - rot @ mid)[:, None]])


def align_face(rgb: np.ndarray, face: FaceAnalysis, size: int) -> np.ndarray:
    """The aligned (size, size, 3) crop; shrinking by more than 2x first area-resamples the image (no aliasing)."""
    m = alignment_matrix(face, size)
    scale = float(np.hypot(*m[:, 0]))
    if scale < 0.5:
        f = min(1.0, 2 * scale)
        small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * f)), max(1, round(rgb.shape[0] * f))),
                           interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / rgb.shape[1], small.shape[0] / rgb.shape[0]
        m = m @ np.diag([1 / fx, 1 / fy, 1.0])
        rgb = small
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
