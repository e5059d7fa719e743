"""A calibration of the AU estimator to the user's own OpenFace, fitted on the user's own annotated faces.

The built-in estimator already reads AUs on OpenFace 2.x's static scale (aufx.model.estimate, fitted on the development
faces); a user's OpenFace version, settings or faces can still differ (see README "Known limits").
``python -m aufx.training.fit_estimator`` fits, per AU, a ridge-regularised linear map from
the raw estimates to the user's OpenFace annotations and stores it as readable JSON::

    value(AU) = clip(intercept + sum(coefficients[f] * feature f), 0, 1)

Features are the raw estimates of ``aufx.model.estimate.estimate_raw``, both sides of a bilateral AU averaged (OpenFace
measures both sides as one value). The file also keeps how well each AU did on held-out faces, so a reader can tell
which calibrated AUs to trust.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from aufx.au import AUVector, au_codes, channel_au
from aufx.model.basis import basis
from aufx.model.estimate import EstimatorConfig

FORMAT = "aufx-estimator-calibration"
VERSION = 1
FEATURE_PREFIX = "raw_"


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the field."""


@lru_cache(maxsize=1)
def _feature_columns() -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """Feature names and, for each, the basis channels it averages. Tied AUs (AU45 = AU43 geometrically: the same
    lid closure, one column in the estimator) would be identical features, so only the first of them is kept."""
    b = basis()
    by_au: dict[str, list[int]] = {}
    for i, ch in enumerate(b.channels):
        if ch not in b.ties:
            by_au.setdefault(channel_au(ch).code, []).append(i)
    names = tuple(FEATURE_PREFIX + code for code in by_au)
    return names, tuple(tuple(idx) for idx in by_au.values())


def feature_names() -> tuple[str, ...]:
    """The calibration's input features, one per AU (left and right channels averaged)."""
    return _feature_columns()[0]


def features(raw: np.ndarray) -> np.ndarray:
    """(n_channels,) raw per-channel estimates (``estimate_raw``) -> (n_features,) in ``feature_names()`` order."""
    return np.array([raw[list(idx)].mean() for idx in _feature_columns()[1]])


def own_feature(au: str) -> int:
    """Index of the feature that is the raw estimate of ``au`` itself (its tied partner for AU45)."""
    b = basis()
    ch = b.ties.get(_first_channel(au), _first_channel(au))
    return feature_names().index(FEATURE_PREFIX + channel_au(ch).code)


def _first_channel(au: str) -> str:
    return next(c for c in basis().channels if channel_au(c).code == au)


@dataclass(frozen=True)
class AUModel:
    intercept: float
    coefficients: dict[str, float]  # feature name -> weight; features not named weigh 0
    alpha: float                    # ridge penalty the model was fitted with
    n_train: int
    heldout: dict[str, Any] = field(default_factory=dict)  # n, pearson_r, mae, and the raw estimator's for comparison

    def predict(self, x: np.ndarray) -> float:
        """OpenFace-scale value (clipped to [0, 1]) from a (n_features,) vector in ``feature_names()`` order."""
        names = feature_names()
        value = self.intercept + sum(w * x[names.index(f)] for f, w in self.coefficients.items())
        return float(min(1.0, max(0.0, value)))


@dataclass(frozen=True)
class Calibration:
    models: dict[str, AUModel]  # AU code ("AU12") -> model
    info: dict[str, Any] = field(default_factory=dict)  # provenance: data, split, dates; not used for prediction
    source: str = "calibration"  # where it was loaded from, for messages

    @property
    def aus(self) -> tuple[str, ...]:
        return tuple(self.models)

    def predict(self, raw: np.ndarray) -> dict[str, float]:
        """Calibrated AUs (OpenFace scale, 0..1) from (n_channels,) raw per-channel estimates."""
        x = features(raw)
        return {au: m.predict(x) for au, m in self.models.items()}

    def vector(self, raw: np.ndarray) -> AUVector:
        """Every channel from (n_channels,) raw estimates: calibrated AUs on both sides (OpenFace has one value per
        AU), the rest as raw estimates clipped to 0..1."""
        values = dict(zip(basis().channels, np.clip(raw, 0.0, 1.0)))
        for au, value in self.predict(raw).items():
            values[au] = value  # an AU code sets both sides
        return AUVector(values)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": "value(AU) = clip(intercept + sum(coefficients[f] * f), 0, 1); features are the raw AU "
                     "estimates of aufx.model.estimate.estimate_raw with both sides averaged; raw_AU43 also stands for "
                     "AU45 (the same lid closure); alpha is the ridge penalty on standardised features",
            "features": list(feature_names()),
            "estimator_config": asdict(EstimatorConfig()),
            **self.info,
            "aus": {au: asdict(m) for au, m in self.models.items()},
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        """Read and check a calibration file: it must match this AUFX's features and estimator settings."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"calibration file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"{path}: not a readable JSON file ({exc})") from None
        return cls.from_json(data, str(path))

    @classmethod
    def from_json(cls, data: Any, source: str = "calibration") -> "Calibration":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"{source}: not an AUFX estimator calibration (no \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise CalibrationError(f"{source}: calibration format version {data.get('version')!r}; this AUFX reads "
                                   f"version {VERSION}")
        if data.get("features") != list(feature_names()) or data.get("estimator_config") != asdict(EstimatorConfig()):
            raise CalibrationError(f"{source}: fitted on raw estimates of another AUFX version (features or "
                                   "estimator settings differ); refit it with python -m aufx.training.fit_estimator")
        aus = data.get("aus")
        if not isinstance(aus, dict) or not aus:
            raise CalibrationError(f"{source}: no per-AU models under \"aus\"")
        models = {au: _model(m, f"{source}: {au}") for au, m in aus.items()}
        unknown = sorted(set(models) - set(au_codes()))
        if unknown:
            raise CalibrationError(f"{source}: unknown AU(s) {unknown}")
        info = {k: v for k, v in data.items() if k not in ("format", "version", "model", "features",
                                                            "estimator_config", "aus")}
        return cls(models, info, source)


def _model(m: Any, where: str) -> AUModel:
    try:
        model = AUModel(float(m["intercept"]), {str(k): float(v) for k, v in m["coefficients"].items()},
                        float(m["alpha"]), int(m["n_train"]), dict(m.get("heldout", {})))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CalibrationError(f"{where}: needs intercept, coefficients, alpha and n_train ({exc!r})") from None
    unknown = sorted(set(model.coefficients) - set(feature_names()))
    if unknown:
        raise CalibrationError(f"{where}: unknown feature(s) {unknown}")
    if not all(math.isfinite(v) for v in (model.intercept, *model.coefficients.values())):
        raise CalibrationError(f"{where}: intercept and coefficients must be finite numbers")
    return model
