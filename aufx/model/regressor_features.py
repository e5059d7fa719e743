"""What the OpenFace-agreeing AU regressor reads of a face: its pose-normalised mesh and the HOG of its aligned crop.

OpenFace's static AU models read HOG of a similarity-aligned 112 px face together with its shape; the regressor
(aufx.model.regressor) does the same from MediaPipe's mesh. The aligned crop is cut once, when the face is analysed
(aufx/face/align.py), and kept on the analysis, so measuring never needs the image again.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from aufx.face.align import AlignConfig
from aufx.face.mesh import N_MESH
from aufx.face.topology import topology
from aufx.model.basis import mirror_map


@dataclass(frozen=True)
class FeatureConfig(AlignConfig):  # the aligned crop's geometry (aufx/face/align.py), then its HOG
    cell_px: int = 8             # HOG cell (OpenFace: 8 px cells on 112 px)
    orientations: int = 9


FEATURES = FeatureConfig()


def appearance(crop: np.ndarray, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """HOG of an aligned crop, (n_hog,) float32: unsigned gradient orientations in ``orientations`` bins per cell,
    2x2-cell blocks L2-Hys normalised (so the lighting level cancels), in skimage.feature.hog's layout and
    numbers. Vectorised here because skimage normalises the blocks in a Python loop (about 5 ms per face, the
    whole budget of an estimate); tests/test_estimator_openface.py checks that both agree."""
    img = crop.astype(np.float64)
    gy, gx = np.zeros_like(img), np.zeros_like(img)
    gy[1:-1] = img[2:] - img[:-2]
    gx[:, 1:-1] = img[:, 2:] - img[:, :-2]
    mag = np.hypot(gx, gy)  # not cv2.magnitude, whose last bits depend on where the arrays lie in memory
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
    """Each vertex's mirror partner (upper lip to upper lip on the closed neutral mouth: mirror_map)."""
    return mirror_map(topology().canonical)


def mirrored(canonical: np.ndarray, crop: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The same face seen in a mirror: canonical (478, 3) with x negated and left/right vertices swapped, and the
    aligned crop flipped (the crop's template is centred on the face's midline, so it stays aligned)."""
    flipped = canonical[_mirror()].copy()
    flipped[:, 0] *= -1
    return flipped, None if crop is None else np.ascontiguousarray(crop[:, ::-1])
