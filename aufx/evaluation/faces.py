"""Face boxes: dlib's HOG frontal detector, and the box arithmetic every metric shares.

A box is ``(x0, y0, x1, y1)`` in pixels, end-exclusive. Callers that already know the face (the app has MediaPipe
landmarks) pass their own box or mask; the detector is the fallback for folders of images.
"""
from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]
NEAR_MARGIN = 0.5  # a face searched "near" a box is looked for in that box grown by half its size on each side


class Detector:
    def __init__(self):
        import dlib

        self._detect = dlib.get_frontal_face_detector()

    def __call__(self, image_rgb: np.ndarray, upsample: int = 0, near: Box | None = None) -> Box | None:
        """The most confident frontal face, or None. With ``near`` (the face the caller means, in a photo of
        several): the detection overlapping that box most, searched only around it (several times faster)."""
        shape, ox, oy = image_rgb.shape, 0, 0
        if near is not None:
            ox, oy, x1, y1 = grow(near, NEAR_MARGIN, shape)
            image_rgb = image_rgb[oy:y1, ox:x1]
        rects, scores, _ = self._detect.run(np.ascontiguousarray(image_rgb), upsample, 0.0)
        boxes = [clip((r.left() + ox, r.top() + oy, r.right() + 1 + ox, r.bottom() + 1 + oy), shape) for r in rects]
        if not boxes:
            return None
        if near is None:
            return boxes[int(np.argmax(scores))]
        shared = [overlap(b, near) for b in boxes]
        return boxes[int(np.argmax(shared))] if max(shared) > 0 else None


def load_detector() -> Detector:
    return Detector()


def clip(box: Box, shape: tuple[int, ...]) -> Box:
    h, w = shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def overlap(a: Box, b: Box) -> int:
    """Intersection area in pixels."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def bounding_box(mask_: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask_)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def grow(box: Box, margin: float, shape: tuple[int, ...]) -> Box:
    """Enlarge by ``margin`` of the width/height on each side, clipped to the image."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return clip((x0 - dx, y0 - dy, x1 + dx, y1 + dy), shape)


def mask(box: Box, shape: tuple[int, ...]) -> np.ndarray:
    m = np.zeros(shape[:2], bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def square_crop(image: np.ndarray, box: Box, size: int) -> np.ndarray:
    """A square crop centred on the box (side = its longer edge), edge-replicated where it leaves the image."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    sx, sy = cx - side // 2, cy - side // 2
    h, w = image.shape[:2]
    pad = max(0, -sx, -sy, sx + side - w, sy + side - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = image[sy + pad:sy + pad + side, sx + pad:sx + pad + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
