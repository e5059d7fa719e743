"""Frame one identity's stimuli: align the face to the standard template, mask it, fill the background.

The transform comes from the head pose measured on the source photo, not from each edited output, so every stimulus
of an identity is framed identically and only the expression differs between them; across identities the eye
midpoint, the eye line and the interpupillary distance land on the same pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology
from aufx.study.stimulus_config import StimulusConfig, Template

IRIS_CENTRES = (468, 473)  # MediaPipe iris centres, subject's right then left


@dataclass(frozen=True, eq=False)
class Framing:
    matrix: np.ndarray  # (2, 3) source pixels -> template pixels
    size: int  # template side in pixels
    crop: bool  # True: output the template square; False: the photo's own frame
    alpha: np.ndarray | None  # float32 mask in the output frame (1 = face), None for no mask
    background: tuple[int, int, int] | None  # None keeps the photo's pixels

    def render(self, image: np.ndarray) -> np.ndarray:
        """The stimulus made from one edited full-resolution image."""
        if self.crop:
            image = self._aligned(image)
        if self.alpha is None:
            return image
        fill = np.empty_like(image)
        fill[:] = self.background
        return cv2.blendLinear(image, fill, self.alpha, 1.0 - self.alpha)

    def _aligned(self, image: np.ndarray) -> np.ndarray:
        matrix = self.matrix
        scale = float(np.hypot(*matrix[0, :2]))
        if scale < 1.0:  # shrink with area averaging first: an affine warp alone would alias a large photo
            h, w = image.shape[:2]
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
            # resize maps pixel centres x -> (x + 0.5) * f - 0.5; compose its inverse into the transform
            fx, fy = nw / w, nh / h
            inv = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
            matrix = matrix @ inv
        border = (cv2.BORDER_REPLICATE, ()) if self.background is None else (cv2.BORDER_CONSTANT, self.background)
        return cv2.warpAffine(image, matrix, (self.size, self.size), flags=cv2.INTER_CUBIC,
                              borderMode=border[0], borderValue=border[1])


def frame_face(face: FaceAnalysis, config: StimulusConfig) -> Framing:
    """The similarity transform that puts this face's eyes where the template wants them, from its head pose.

    Scale uses the pose's 3D interpupillary distance, so a turned head is not enlarged to make its foreshortened
    eyes look as far apart as a frontal one's; the rotation removes the in-plane roll.
    """
    t = config.template
    pose = face.pose
    eyes_mid = topology().canonical[list(IRIS_CENTRES)].mean(0)
    centre = pose.to_image(eyes_mid[None])[0, :2]
    axis = pose.rotation[:2, 0]  # the canonical left-right axis in the photo
    roll = float(np.arctan2(axis[1], axis[0]))
    s = t.ipd * config.size / pose.scale
    rot = s * np.array([[np.cos(roll), np.sin(roll)], [-np.sin(roll), np.cos(roll)]])
    shift = np.array([t.eye_x, t.eye_y]) * config.size - rot @ centre
    matrix = np.hstack([rot, shift[:, None]])
    alpha = None
    if config.mask == "oval":
        alpha = oval(config.size, t)
        if config.crop == "none":  # the template's oval carried back into the photo's frame
            h, w = face.image_size
            alpha = cv2.warpAffine(alpha, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderValue=0.0)
    return Framing(matrix, config.size, config.crop == "standard", alpha, config.background_rgb())


@lru_cache(maxsize=4)
def oval(size: int, template: Template) -> np.ndarray:
    """The template's face oval as a (size, size) float32 alpha: 1 inside, a smooth ramp across the edge."""
    (cx, cy), (rx, ry) = template.oval_center, template.oval_radii
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)  # 1 on the ellipse
    a = np.clip((1.0 - r) * min(rx, ry) / template.feather + 0.5, 0.0, 1.0)
    alpha = (a * a * (3.0 - 2.0 * a)).astype(np.float32)  # smoothstep: no visible kink where the ramp ends
    alpha.flags.writeable = False
    return alpha
