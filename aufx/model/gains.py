"""Per-AU render gains (aufx/assets/au_calibration.json): how far the warp engine moves and shades for one unit of
requested intensity, so that an outside reader (OpenFace 2.0) reads the request back. Fitted by eval/calibrate.py."""
from __future__ import annotations

import json
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator, Mapping

import numpy as np

from aufx.au import channel_au
from aufx.resources import ASSETS

CALIBRATION_FILE = ASSETS / "au_calibration.json"
_override: dict[str, dict[str, float]] = {}
_vectors: dict[tuple[tuple[str, ...], str], np.ndarray] = {}  # gain_vector's, for the gains in force


@lru_cache(maxsize=1)
def _file_gains() -> dict[str, dict[str, float]]:
    return json.loads(CALIBRATION_FILE.read_text())["gains"]


def render_gains() -> dict[str, dict[str, float]]:
    """AU code -> {"geometry": g, "appearance": a}, dimensionless multipliers of the requested change; AUs not
    listed have gain 1."""
    return {**_file_gains(), **_override}


@contextmanager
def gains_overridden(gains: Mapping[str, Mapping[str, float]]) -> Iterator[None]:
    """Render with other gains for some AUs (the calibration's trial renders); restored on exit."""
    saved = dict(_override)
    _override.update({k: dict(v) for k, v in gains.items()})
    _vectors.clear()
    try:
        yield
    finally:
        _override.clear()
        _override.update(saved)
        _vectors.clear()


def gain_vector(channels: tuple[str, ...], kind: str) -> np.ndarray:
    """(n_channels,) float64 gain of each basis channel for ``kind`` ("geometry", "appearance" or "removal");
    L12 and R12 share AU12's. "removal" scales the mesh motion that takes an AU away the photo shows; where an AU
    has none, it is its "geometry" gain. Built once per gains in force (every edit asks for three), read-only."""
    key = (channels, kind)
    vec = _vectors.get(key)  # one lookup: a calibration's override may clear the cache from another thread
    if vec is None:
        gains = render_gains()
        vec = np.array([_gain(gains.get(channel_au(ch).code, {}), kind) for ch in channels], dtype=np.float64)
        vec.flags.writeable = False
        _vectors[key] = vec
    return vec


def _gain(g: Mapping[str, float], kind: str) -> float:
    """One AU's gain of ``kind`` from its record ``g`` (a missing removal gain is the geometry gain)."""
    return g.get(kind, g.get("geometry", 1.0) if kind == "removal" else 1.0)
