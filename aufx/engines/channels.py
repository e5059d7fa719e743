"""Per-pixel weights on colour images, as whole planes.

numpy broadcasts a (h, w) weight over (h, w, 3) colour with an inner loop three elements long: 3-10x slower than
the same products done plane by plane. Every layer of an edit (eyes, mouth, relief shading) blends colours by
per-pixel weights, and on a 512^2 face those broadcasts were a fifth of a slider move. The results are the same
floats as numpy's broadcasting (IEEE single-precision products, elementwise).
"""
from __future__ import annotations

import cv2
import numpy as np


def planes(weight: np.ndarray, n: int = 3) -> np.ndarray:
    """(h, w, n): ``weight`` (h, w) in each channel (what ``weight[..., None]`` broadcasts to)."""
    return cv2.merge([weight] * n)


def weighted(colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``colour`` (h, w, c) float32 (RGB, or premultiplied RGBA) times ``weight`` (h, w) float32 at each pixel:
    ``colour * weight[..., None]``."""
    w = planes(weight, colour.shape[2])
    if colour.dtype == w.dtype:
        return cv2.multiply(colour, w)
    return cv2.multiply(colour, w, dtype=cv2.CV_64F)  # float32 with float64: float64, as numpy promotes them


def painted(weight: np.ndarray, colour) -> np.ndarray:
    """(h, w, c): ``weight`` (h, w) float32 times one ``colour`` (c,) float32: ``weight[..., None] * colour``."""
    return cv2.merge([weight * c for c in colour])


def premultiplied(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(h, w, 4) premultiplied RGBA of ``rgb`` (h, w, 3) float32 with coverage ``alpha`` (h, w) float32."""
    return cv2.merge([c * alpha for c in cv2.split(rgb)] + [alpha])


def colour_and_alpha(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A (h, w, 4) layer as its colour (h, w, 3) and its alpha (h, w), each contiguous."""
    r, g, b, a = cv2.split(rgba)
    return cv2.merge([r, g, b]), a
