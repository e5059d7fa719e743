"""Face region handling: a square crop around the face mask for the model, and the blend back into the image.

The blend weight is the caller's mask times a ramp that rises from the mask's edge inwards, so it is exactly zero
wherever the mask is zero: those pixels are copied from the input bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """A square in image pixels; it may extend past the image border (edge pixels fill the outside)."""

    x0: int
    y0: int
    side: int

    def clipped(self, height: int, width: int) -> tuple[slice, slice, slice, slice]:
        """(image rows, image cols, box rows, box cols) of the part of the box inside the image."""
        ix0, iy0 = max(self.x0, 0), max(self.y0, 0)
        ix1, iy1 = min(self.x0 + self.side, width), min(self.y0 + self.side, height)
        return (slice(iy0, iy1), slice(ix0, ix1),
                slice(iy0 - self.y0, iy1 - self.y0), slice(ix0 - self.x0, ix1 - self.x0))


def face_box(mask: np.ndarray, margin: float) -> CropBox | None:
    """Square around the mask's support plus ``margin`` (fraction of its side), kept inside the image when it fits."""
    ys, xs = np.nonzero(mask > 0)
    if ys.size == 0:
        return None
    h, w = mask.shape
    x_lo, x_hi, y_lo, y_hi = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = math.ceil(max(x_hi - x_lo, y_hi - y_lo) * (1 + 2 * margin))
    x0 = round((x_lo + x_hi - side) / 2)
    y0 = round((y_lo + y_hi - side) / 2)
    if side <= w:
        x0 = min(max(x0, 0), w - side)
    if side <= h:
        y0 = min(max(y0, 0), h - side)
    return CropBox(int(x0), int(y0), int(side))


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def extract(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """The box's pixels resized to size x size; parts outside the image repeat the edge pixels."""
    h, w = image.shape[:2]
    rows, cols, brows, bcols = box.clipped(h, w)
    pad = ((brows.start, box.side - brows.stop), (bcols.start, box.side - bcols.stop), (0, 0))
    return _resize(np.pad(image[rows, cols], pad, mode="edge"), size)


def to_crop(points: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Image pixel coordinates -> crop pixel coordinates."""
    return (np.asarray(points, dtype=np.float64)[:, :2] - (box.x0, box.y0)) * (size / box.side)


def blend_weights(mask: np.ndarray, box: CropBox, feather: float) -> np.ndarray:
    """Per-pixel weight of the generated face inside the box's image part: mask x inward ramp; 0 where mask is 0."""
    rows, cols, _, _ = box.clipped(*mask.shape)
    sub = np.clip(mask[rows, cols].astype(np.float32), 0.0, 1.0)
    inside = np.pad((sub > 0).astype(np.uint8), 1, constant_values=1)  # the image border is not a mask edge
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)[1:-1, 1:-1]
    ramp = np.clip(dist / max(1.0, feather * box.side), 0.0, 1.0)
    return sub * ramp


def paste(image: np.ndarray, generated: np.ndarray, box: CropBox, weights: np.ndarray) -> np.ndarray:
    """Blend ``generated`` (float RGB in [0, 1], crop-sized) into a copy of ``image`` with ``weights``."""
    h, w = image.shape[:2]
    rows, cols, brows, bcols = box.clipped(h, w)
    back = np.clip(_resize(generated.astype(np.float32), box.side), 0.0, 1.0)[brows, bcols] * 255.0
    src = image[rows, cols]
    wt = weights[..., None]
    mixed = np.rint(src * (1.0 - wt) + back * wt).clip(0, 255).astype(np.uint8)
    out = image.copy()
    out[rows, cols] = np.where(wt > 0, mixed, src)
    return out
