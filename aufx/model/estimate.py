"""AU estimation on OpenFace's scale: what OpenFace 2.x (static models) would read, AUxx_r / 5.

The 17 AUs OpenFace reads come from a linear regressor fitted to OpenFace's readings of real faces and warp edits
(aufx.model.regressor: the pose-normalised mesh plus HOG of the aligned face, as OpenFace reads). The 4 AUs OpenFace
does not read (AU16, AU24, AU27, AU43) and the left/right split of bilateral AUs come from the mesh estimator: the
observed face in the canonical frame explained as neutral face + basis @ AUs (bounded, ridge-regularised least
squares) on the editor's own basis. A calibration fitted on the user's own OpenFace-annotated data
(aufx.training.fit_estimator) can map the result further, to the user's own OpenFace.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import lsq_linear

from aufx.au import AUVector, get_au
from aufx.model.regressor import AU_NAMES, load_regressor
from aufx.model.basis import basis
from aufx.face.mesh import N_MESH
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import ASSETS, topology

if TYPE_CHECKING:  # aufx.model.calibration builds on this module
    from aufx.model.calibration import Calibration


SOURCE = "AUFX estimator"  # how every number this module measures is labelled (vs "OpenFace 2.x static")


@dataclass(frozen=True)
class EstimatorConfig:
    ridge: float = 0.02  # keeps near-parallel fields (AU26/AU27, AU23/AU24) from trading off wildly
    lower: float = -0.6  # raw values may go below 0: a face can be "less than neutral" (corners turned down)
    upper: float = 1.6
    contour_weight: float = 0.1  # the face contour is the noisiest part of MediaPipe's mesh, and the most personal
    change_ridge: float = 0.002  # a difference of two meshes of one person needs little regularisation
    aperture_weight: float = 4.0  # lip and lid margins: whether they meet is the least person-specific evidence
    regressor: str = "au_estimator.safetensors"  # under aufx/assets/: the OpenFace-agreeing regressor's weights


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
def _factors(cfg: EstimatorConfig, use_evidence: bool) -> tuple[np.ndarray, np.ndarray]:
    """Q, R of the system (reduced QR): |a x - rhs| = |R x - Q^T rhs| + const, so the bounded solve runs on the
    small square R instead of the whole mesh."""
    return np.linalg.qr(_system(cfg, use_evidence)[1])


def _column(b, channel: str, use_evidence: bool) -> np.ndarray:
    field = b.fields[b.index(channel), :N_MESH].copy()
    if use_evidence and channel in b.evidence:
        keep = np.zeros(N_MESH, bool)
        keep[b.evidence[channel]] = True
        field[~keep] = 0.0
    return field.ravel()


def _solve(shape_change: np.ndarray, cfg: EstimatorConfig, use_evidence: bool, bounds: tuple[float, float]):
    cols, _, sw = _system(cfg, use_evidence)
    q, r = _factors(cfg, use_evidence)
    qtb = q[:-len(cols)].T @ (shape_change[:N_MESH].ravel() * sw)  # the ridge rows of rhs are zero
    sol = solve_triangular(r, qtb)  # the unbounded solution; most faces stay inside the bounds
    if sol.min() < bounds[0] or sol.max() > bounds[1]:
        sol = lsq_linear(r, qtb, bounds=bounds, method="bvls").x
    b = basis()
    by_col = dict(zip(cols, sol))
    return np.array([by_col[b.ties.get(c, c)] for c in b.channels])


def mesh_raw(face: FaceAnalysis, cfg: EstimatorConfig = EstimatorConfig()) -> np.ndarray:
    """(n_channels,) unclipped mesh-estimator values in basis channel order, on the editor's own scale (cached on
    the analysis)."""
    key = ("mesh_aus", cfg)
    if key not in face.cache:
        face.cache[key] = _solve(face.canonical - topology().canonical, cfg, True, (cfg.lower, cfg.upper))
    return face.cache[key]


def openface_like(face: FaceAnalysis, cfg: EstimatorConfig = EstimatorConfig()) -> np.ndarray:
    """(17,) unclipped regressor reading of the OpenFace AUs (``aufx.model.regressor.AU_NAMES`` order)."""
    key = ("openface_like", cfg)
    if key not in face.cache:
        face.cache[key] = load_regressor(ASSETS / cfg.regressor).predict(face)
    return face.cache[key]


def _merge(mesh: np.ndarray, reading: np.ndarray) -> np.ndarray:
    """Per basis channel: the regressor's reading for OpenFace's AUs, each side moved by the mesh's own left/right
    split (OpenFace reads one value per AU), limited so that both sides stay on the 0..1 scale and the AU's value
    is the reading; the mesh values for the AUs OpenFace does not read."""
    b = basis()
    out = mesh.copy()
    for value, au in zip(reading, AU_NAMES):
        idx = [b.index(c) for c in get_au(au).channels()]
        shown = min(1.0, max(0.0, value))
        room = min(shown, 1.0 - shown)
        out[idx] = value + np.clip(mesh[idx] - mesh[idx].mean(), -room, room)
    return out


def estimate_raw(face: FaceAnalysis, cfg: EstimatorConfig = EstimatorConfig()) -> np.ndarray:
    """(n_channels,) unclipped AU values in basis channel order on OpenFace's scale (cached on the analysis);
    deform's edit is target - this."""
    key = ("raw_aus", cfg)
    if key not in face.cache:
        face.cache[key] = _merge(mesh_raw(face, cfg), openface_like(face, cfg))
    return face.cache[key]


def estimate_after(before: FaceAnalysis, after: FaceAnalysis, cfg: EstimatorConfig = EstimatorConfig()) -> AUVector:
    """AUs of an edited face. OpenFace's AUs: the regressor on the output face itself (for a linear regressor,
    input reading + change of reading is the same number; measured on warp edits read by OpenFace, see
    aufx/assets/au_estimator.md). The other AUs: the input's mesh estimate plus the change between the two re-detected
    meshes, where the person's own shape cancels, so the whole mesh (chin included) serves as evidence and AUs
    that look alike on the lips alone (lips part / jaw drop / mouth stretch) separate.
    """
    change = _solve(after.canonical - before.canonical, replace(cfg, ridge=cfg.change_ridge), False, (-2.0, 2.0))
    merged = _merge(mesh_raw(before, cfg) + change, openface_like(after, cfg))
    return AUVector.clipped(dict(zip(basis().channels, merged)))


def estimate_aus(face: FaceAnalysis, cfg: EstimatorConfig = EstimatorConfig()) -> AUVector:
    """Measured AUs, clipped to the [0, 1] scale the sliders show (cached on the analysis: every edit reports
    them)."""
    key = ("aus", cfg)
    if key not in face.cache:
        face.cache[key] = AUVector.clipped(dict(zip(basis().channels, estimate_raw(face, cfg))))
    return face.cache[key]


def estimate_calibrated(face: FaceAnalysis, calibration: Calibration) -> AUVector:
    """Measured AUs on OpenFace's scale through a calibration fitted on the user's data (aufx.model.calibration);
    AUs the calibration has no model for keep their raw estimate."""
    return calibration.vector(estimate_raw(face))


def channel_vector(vec: AUVector) -> np.ndarray:
    """An AUVector as a (n_channels,) array in basis channel order."""
    return np.array([vec[c] for c in basis().channels])

