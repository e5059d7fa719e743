"""A linear regressor from a face's mesh and appearance to what OpenFace 2.x (static models) reads, AUxx_r / 5.

Fitted by training/fit_openface_estimator.py on OpenFace's readings of real faces and of warp edits; the weights ship
as aufx/assets/au_estimator.safetensors with its fit report beside it. Two models: ``full`` (mesh + HOG of the aligned
crop, what OpenFace itself reads) and ``shape`` (mesh only), for analyses made without their image.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from aufx.model.regressor_features import FEATURES, FeatureConfig, appearance, mirrored, shape
from aufx.face.align import CROP_KEY, has_appearance
from aufx.face.analysis import FaceAnalysis
from aufx.face.mesh import N_MESH
from aufx.face.topology import ASSETS
from aufx.io.openface import OPENFACE_AUS

AU_NAMES = OPENFACE_AUS  # output order: the 17 AUs OpenFace reads
WEIGHTS = ASSETS / "au_estimator.safetensors"
FORMAT = "aufx-openface-regressor"


class RegressorError(ValueError):
    """A weights file that does not fit this AUFX (other features, other AUs); the message says which."""


@dataclass(frozen=True, eq=False)  # holds arrays
class LinearModel:
    weight: np.ndarray  # (n_features, 17) on raw features (standardisation folded in)
    bias: np.ndarray    # (17,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(n_features,) or (n, n_features) -> OpenFace-scale AUs (17,) or (n, 17), unclipped."""
        return x @ self.weight + self.bias


@dataclass(frozen=True, eq=False)
class Regressor:
    full: LinearModel    # mesh + appearance
    shape: LinearModel   # mesh only
    features: FeatureConfig

    def predict(self, face: FaceAnalysis) -> np.ndarray:
        """(17,) unclipped OpenFace-scale AUs of a face (``AU_NAMES`` order), the mean of its reading and its mirror
        image's (OpenFace reads one value per AU; averaging the two views cancels a side-biased weight: +0.01 r in
        cross-validation); the mesh-only model where the analysis holds no aligned crop
        (aufx.face.align.attach_appearance)."""
        if has_appearance(face):
            return self.full(full_features(face, self.features)).mean(0)
        return self.shape(np.stack([shape(face.canonical), shape(mirrored(face.canonical)[0])])).mean(0)


def full_features(face: FaceAnalysis, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """(2, n_mesh * 3 + n_hog) float32: the mesh, then the HOG of the aligned crop, for the face and its mirror
    image (cached on the analysis)."""
    key = ("regressor_features", cfg)
    if key not in face.cache:
        crop = face.cache[CROP_KEY]
        views = [(face.canonical, crop), mirrored(face.canonical, crop)]
        face.cache[key] = np.stack([np.concatenate([shape(c), appearance(g, cfg)]) for c, g in views])
    return face.cache[key]


def save_regressor(path: Path, full: LinearModel, shape_model: LinearModel, cfg: FeatureConfig) -> Path:
    """Both models' (n_features, 17) weights and (17,) biases as safetensors, with the feature settings that
    produced their inputs (a loaded regressor computes the same features)."""
    meta = {"format": FORMAT, "aus": json.dumps(list(AU_NAMES)), "features": json.dumps(asdict(cfg))}
    tensors = {"full.weight": full.weight, "full.bias": full.bias, "shape.weight": shape_model.weight,
               "shape.bias": shape_model.bias}
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(path), metadata=meta)
    return path


@lru_cache(maxsize=2)
def load_regressor(path: Path = WEIGHTS) -> Regressor:
    """The regressor saved by ``save_regressor`` (safetensors: no pickle), cached per path."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT or json.loads(meta.get("aus", "[]")) != list(AU_NAMES):
        raise RegressorError(f"{path}: not an AUFX OpenFace regressor for AUs {', '.join(AU_NAMES)}; refit it with "
                             "python -m training.fit_openface_estimator fit")
    cfg = FeatureConfig(**json.loads(meta["features"]))
    t = load_file(str(path))
    n_full = N_MESH * 3 + len(appearance(np.zeros((cfg.crop_px, cfg.crop_px), np.uint8), cfg))
    if t["full.weight"].shape != (n_full, len(AU_NAMES)):
        raise RegressorError(f"{path}: full model has {t['full.weight'].shape[0]} inputs, these features give "
                             f"{n_full}; refit it")
    return Regressor(LinearModel(t["full.weight"], t["full.bias"]), LinearModel(t["shape.weight"], t["shape.bias"]),
                     cfg)



def agreement(pred: np.ndarray, truth: np.ndarray, clip: bool = True) -> dict:
    """Pearson r and mean |error| of (n, 17) readings against OpenFace/5 (``truth``), pooled over the AUs and per
    AU; ``pred`` is clipped to [0, 1] first (as the sliders show it) unless ``clip`` is False."""
    if len(pred) == 0:
        return {"n": 0, "r": None, "mae": None, "per_au": {}}
    p = np.clip(pred, 0.0, 1.0) if clip else np.asarray(pred, float)
    per = {a: {"r": _r(p[:, j], truth[:, j]), "mae": round(float(np.abs(p[:, j] - truth[:, j]).mean()), 4)}
           for j, a in enumerate(AU_NAMES)}
    return {"n": int(len(p)), "r": _r(p.ravel(), truth.ravel()), "mae": round(float(np.abs(p - truth).mean()), 4),
            "per_au": per}


def _r(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r rounded, or None where it is undefined (a constant series)."""
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 4)
