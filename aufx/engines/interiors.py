"""What a warp cannot invent: shared config and helpers of the mouth (mouth.py) and eye (eyes.py) interiors."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aufx.face.analysis import FaceAnalysis


@dataclass(frozen=True)
class InteriorConfig:
    min_open_px: float = 0.75  # below this extra lip gap no cavity is drawn
    teeth_rgb: tuple[int, int, int] = (236, 228, 212)
    upper_incisal_ipd: float = 0.035  # upper incisal edge below the resting lip line (IPD units)
    teeth_height_ipd: float = 0.2
    lid_shadow: float = 0.35


def poly_mask(shape: tuple[int, int], poly: np.ndarray) -> np.ndarray:
    """Anti-aliased polygon coverage in [0, 1]."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255.0


def bbox(poly: np.ndarray, pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    x0, y0 = np.floor(poly.min(0)).astype(int) - pad
    x1, y1 = np.ceil(poly.max(0)).astype(int) + pad
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def face_axes(face: FaceAnalysis) -> tuple[np.ndarray, np.ndarray]:
    r = face.pose.rotation[:2]
    right = r[:, 0] / np.linalg.norm(r[:, 0])
    down = r[:, 1] / np.linalg.norm(r[:, 1])
    return right, down


def aperture_gap(pts: np.ndarray, pairs: np.ndarray, down: np.ndarray) -> float:
    return float(np.max((pts[pairs[:, 1]] - pts[pairs[:, 0]]) @ down))


def median_colour(image: np.ndarray, mask: np.ndarray, default) -> np.ndarray:
    sel = image[mask]
    return np.median(sel, axis=0).astype(np.float32) if len(sel) >= 4 else np.asarray(default, np.float32)
