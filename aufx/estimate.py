"""AU estimation from the face mesh, on the editor's own scale.

The observed face, brought into the canonical frame by the head pose, is explained as neutral face + basis @ AUs
(bounded, ridge-regularised least squares). Because the editor moves landmarks along the same basis, editing AU12 to
0.8 and measuring again reads 0.8 (up to re-detection noise). Person-specific shape that resembles an AU (naturally
high brows, a downturned mouth) reads as that AU, as with any landmark-based estimator; a calibration fitted on the
user's own OpenFace-annotated data (training.fit_estimator) maps raw values to OpenFace's scale.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import lsq_linear

from aufx.au import AUVector
from aufx.engines.basis import N_MESH, basis
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology

if TYPE_CHECKING:  # aufx.calibration builds on this module
    from aufx.calibration import Calibration


@dataclass(frozen=True)
class EstimatorConfig:
    ridge: float = 0.02  # keeps near-parallel fields (AU26/AU27, AU23/AU24) from trading off wildly
    lower: float = -0.6  # raw values may go below 0: a face can be "less than neutral" (corners turned down)
    upper: float = 1.6
    contour_weight: float = 0.1  # the face contour is the noisiest part of MediaPipe's mesh, and the most personal
    change_ridge: float = 0.002  # a difference of two meshes of one person needs little regularisation
    aperture_weight: float = 4.0  # lip and lid margins: whether they meet is the least person-specific evidence


@lru_cache(maxsize=8)
def _system(cfg: EstimatorConfig, use_evidence: bool = True):
    """Columns: one per independent channel; tied channels (AU45 = AU43 geometrically) share a column."""
    b = basis()
    ties = b.ties
    cols = [c for c in b.channels if c not in ties]
    topo = topology()
    w = np.ones(N_MESH)
    w[list(topo.groups["face_oval"])] = cfg.contour_weight
    for name in ("lips_inner", "eye_R", "eye_L"):
        w[topo.loop(name)] = cfg.aperture_weight
    sw = np.repeat(np.sqrt(w), 3)
    a = np.stack([_column(b, c, use_evidence) for c in cols], axis=1) * sw[:, None]
    r = np.sqrt(cfg.ridge) * np.eye(len(cols))
    return cols, np.vstack([a, r]), sw


@lru_cache(maxsize=8)
def _pinv(cfg: EstimatorConfig, use_evidence: bool) -> np.ndarray:
    return np.linalg.pinv(_system(cfg, use_evidence)[1])


def _column(b, channel: str, use_evidence: bool) -> np.ndarray:
    field = b.fields[b.index(channel), :N_MESH].copy()
    if use_evidence and channel in b.evidence:
        keep = np.zeros(N_MESH, bool)
        keep[b.evidence[channel]] = True
        field[~keep] = 0.0
    return field.ravel()


def _solve(shape_change: np.ndarray, cfg: EstimatorConfig, use_evidence: bool, bounds: tuple[float, float]):
    cols, a, sw = _system(cfg, use_evidence)
    rhs = np.concatenate([shape_change[:N_MESH].ravel() * sw, np.zeros(len(cols))])
    sol = _pinv(cfg, use_evidence) @ rhs  # the unbounded solution; most faces stay inside the bounds
    if sol.min() < bounds[0] or sol.max() > bounds[1]:
        sol = lsq_linear(a, rhs, bounds=bounds, method="bvls").x
    b = basis()
    by_col = dict(zip(cols, sol))
    return np.array([by_col[b.ties.get(c, c)] for c in b.channels])


def estimate_raw(face: FaceAnalysis, cfg: EstimatorConfig = EstimatorConfig()) -> np.ndarray:
    """Unclipped AU values per basis channel (cached on the analysis)."""
    key = ("raw_aus", cfg)
    if key not in face.cache:
        face.cache[key] = _solve(face.canonical - topology().canonical, cfg, True, (cfg.lower, cfg.upper))
    return face.cache[key]


def estimate_after(before: FaceAnalysis, after: FaceAnalysis, cfg: EstimatorConfig = EstimatorConfig()) -> AUVector:
    """AUs of an edited face, measured as the input's AUs plus the change between the two re-detected meshes.

    The person's own shape cancels in the difference, so the whole mesh (chin included) can serve as evidence and
    AUs that look alike on the lips alone (lips part / jaw drop / mouth stretch) separate.
    """
    change = _solve(after.canonical - before.canonical, replace(cfg, ridge=cfg.change_ridge), False, (-2.0, 2.0))
    return AUVector.clipped(dict(zip(basis().channels, estimate_raw(before, cfg) + change)))


def estimate_aus(face: FaceAnalysis, cfg: EstimatorConfig = EstimatorConfig()) -> AUVector:
    """Measured AUs, clipped to the [0, 1] scale the sliders show."""
    raw = estimate_raw(face, cfg)
    return AUVector.clipped(dict(zip(basis().channels, raw)))


def estimate_calibrated(face: FaceAnalysis, calibration: Calibration) -> AUVector:
    """Measured AUs on OpenFace's scale through a calibration fitted on the user's data (aufx.calibration);
    AUs the calibration has no model for keep their raw estimate."""
    return calibration.vector(estimate_raw(face))


def channel_vector(vec: AUVector) -> np.ndarray:
    """An AUVector as an array in basis channel order."""
    return np.array([vec[c] for c in basis().channels])

