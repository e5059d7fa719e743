"""What the OpenFace-agreeing AU regressor reads of a face: its pose-normalised mesh and the HOG of its aligned crop.

OpenFace's static AU models read HOG of a similarity-aligned 112 px face together with its shape; the regressor
(aufx.model.regressor) does the same from MediaPipe's mesh. The aligned crop is cut once, when the face is analysed
(``attach_appearance``), and kept on the analysis, so measuring never needs the image again.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from aufx.model.basis import N_MESH, basis, mirror_map
from aufx.face.topology import topology

if TYPE_CHECKING:  # aufx.face.analysis cuts the crop with this module
    from aufx.face.analysis import FaceAnalysis

CROP_KEY = "aligned_grey"  # where the aligned crop lives in FaceAnalysis.cache


@dataclass(frozen=True)
class FeatureConfig:
    crop_px: int = 112           # side of the aligned grey crop, as OpenFace's
    half_extent: float = 1.15    # half the crop's side in canonical units (IPD): brows to chin, cheek to cheek
    centre_y: float = -0.04      # canonical y the crop is centred on
    cell_px: int = 8             # HOG cell (OpenFace: 8 px cells on 112 px)
    orientations: int = 9


FEATURES = FeatureConfig()


@lru_cache(maxsize=4)
def _template(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Anchor landmark indices and where they land in the aligned crop, (n, 2) px."""
    topo = topology()
    idx = np.asarray(topo.groups["pose_anchors"])
    xy = topo.canonical[idx, :2] - np.array([0.0, cfg.centre_y])
    return idx, xy * (cfg.crop_px / (2 * cfg.half_extent)) + cfg.crop_px / 2


def aligned_grey(rgb: np.ndarray, landmarks: np.ndarray, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """(crop_px, crop_px) uint8: the face in an (H, W, 3) image, rotated, scaled and centred by a 2D similarity
    fitted on the landmarks that expressions barely move."""
    idx, dst = _template(cfg)
    tf = SimilarityTransform.from_estimate(landmarks[idx, :2], dst)
    crop = cv2.warpAffine(np.ascontiguousarray(rgb[..., :3]), tf.params[:2], (cfg.crop_px, cfg.crop_px),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)


def attach_appearance(face: FaceAnalysis, rgb: np.ndarray) -> FaceAnalysis:
    """Cut the aligned crop of ``face`` from its image and keep it on the analysis (cheap: one 112 px warp)."""
    face.cache[CROP_KEY] = aligned_grey(rgb, face.landmarks)
    return face


def appearance(crop: np.ndarray, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """HOG of an aligned crop, (n_hog,) float32: unsigned gradient orientations in ``orientations`` bins per cell,
    2x2-cell blocks L2-Hys normalised (so the lighting level cancels), in skimage.feature.hog's layout and
    numbers. Vectorised here because skimage normalises the blocks in a Python loop (about 5 ms per face, the
    whole budget of an estimate); tests/test_estimator_openface.py checks that both agree."""
    img = crop.astype(np.float64)
    gy, gx = np.zeros_like(img), np.zeros_like(img)
    gy[1:-1] = img[2:] - img[:-2]
    gx[:, 1:-1] = img[:, 2:] - img[:, :-2]
    mag = cv2.magnitude(gx, gy)
    n, c = cfg.orientations, cfg.cell_px
    ori = np.minimum((np.rad2deg(np.arctan2(gy, gx)) % 180.0) // (180.0 / n), n - 1).astype(np.intp)
    cells = crop.shape[0] // c
    index = (_cell_index(crop.shape[0], c) * n + ori).ravel()
    hist = np.bincount(index, mag.ravel(), (cells * cells + 1) * n)[: cells * cells * n].reshape(cells, cells, n)
    hist /= c * c
    blocks = np.stack([np.stack([hist[:-1, :-1], hist[:-1, 1:]], 2), np.stack([hist[1:, :-1], hist[1:, 1:]], 2)], 2)
    norm = blocks / np.sqrt((blocks ** 2).sum((2, 3, 4), keepdims=True) + 1e-10)
    norm = np.minimum(norm, 0.2)
    norm /= np.sqrt((norm ** 2).sum((2, 3, 4), keepdims=True) + 1e-10)
    return norm.astype(np.float32).ravel()


@lru_cache(maxsize=4)
def _cell_index(side: int, cell: int) -> np.ndarray:
    """(side, side): each pixel's cell number, row-major; pixels past the last whole cell go to a spare bin."""
    cells = side // cell
    rows, cols = np.indices((side, side)) // cell
    return np.where((rows < cells) & (cols < cells), rows * cells + cols, cells * cells).astype(np.intp)


def shape(canonical: np.ndarray) -> np.ndarray:
    """The pose-normalised mesh (FaceAnalysis.canonical, (478, 3)) minus the neutral face, (N_MESH * 3,) float32."""
    return (canonical[:N_MESH] - topology().canonical[:N_MESH]).astype(np.float32).ravel()


@lru_cache(maxsize=1)
def _mirror() -> np.ndarray:
    """Each vertex's mirror partner, matched on the neutral face with the lips parted and the jaw dropped: on the
    closed mouth the inner lip lines coincide and a nearest-neighbour match swaps upper and lower lip."""
    b = basis()
    opened = topology().canonical + b.fields[b.index("AU25")] + b.fields[b.index("AU26")]
    return mirror_map(opened)


def mirrored(canonical: np.ndarray, crop: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The same face seen in a mirror: canonical (478, 3) with x negated and left/right vertices swapped, and the
    aligned crop flipped (the crop's template is centred on the face's midline, so it stays aligned)."""
    flipped = canonical[_mirror()].copy()
    flipped[:, 0] *= -1
    return flipped, None if crop is None else np.ascontiguousarray(crop[:, ::-1])


def has_appearance(face: FaceAnalysis) -> bool:
    return CROP_KEY in face.cache
