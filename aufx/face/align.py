"""The face cut out upright: a grey crop aligned on the landmarks that expressions barely move.

OpenFace reads appearance (HOG) from a similarity-aligned 112 px face; the AU regressor (aufx/model/regressor.py)
does the same. The crop is cut once, when the face is analysed, and kept on the analysis, so measuring never needs
the image again.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from aufx.face.topology import topology

if TYPE_CHECKING:  # aufx.face.analysis cuts the crop with this module
    from aufx.face.analysis import FaceAnalysis

CROP_KEY = "aligned_grey"  # where the aligned crop lives in FaceAnalysis.cache


@dataclass(frozen=True)
class AlignConfig:
    """Where the face lands in the crop; the regressor's FeatureConfig extends it, so a fitted model names it."""

    crop_px: int = 112           # side of the aligned grey crop, as OpenFace's
    half_extent: float = 1.15    # half the crop's side in canonical units (IPD): brows to chin, cheek to cheek
    centre_y: float = -0.04      # canonical y the crop is centred on


ALIGNED = AlignConfig()


@lru_cache(maxsize=4)
def _template(cfg: AlignConfig) -> tuple[np.ndarray, np.ndarray]:
    """Anchor landmark indices and where they land in the aligned crop, (n, 2) px."""
    topo = topology()
    idx = np.asarray(topo.groups["pose_anchors"])
    xy = topo.canonical[idx, :2] - np.array([0.0, cfg.centre_y])
    return idx, xy * (cfg.crop_px / (2 * cfg.half_extent)) + cfg.crop_px / 2


def aligned_grey(rgb: np.ndarray, landmarks: np.ndarray, cfg: AlignConfig = ALIGNED) -> np.ndarray:
    """(crop_px, crop_px) uint8: the face in an (H, W, 3) image with landmarks (478, 2+) px, rotated, scaled and
    centred by a 2D similarity fitted on the landmarks that expressions barely move."""
    idx, dst = _template(cfg)
    tf = SimilarityTransform.from_estimate(landmarks[idx, :2], dst)
    crop = cv2.warpAffine(np.ascontiguousarray(rgb[..., :3]), tf.params[:2], (cfg.crop_px, cfg.crop_px),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)


def attach_appearance(face: FaceAnalysis, rgb: np.ndarray) -> FaceAnalysis:
    """Cut the aligned crop of ``face`` from its (H, W, 3) image and keep it on the analysis (one 112 px warp)."""
    face.cache[CROP_KEY] = aligned_grey(rgb, face.landmarks)
    return face


def has_appearance(face: FaceAnalysis) -> bool:
    """Whether the analysis carries its aligned crop (a tracked video frame does not)."""
    return CROP_KEY in face.cache
