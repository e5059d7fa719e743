"""AU tracks: AU intensities over time, the common form of ARKit recordings, keyframe animations and OpenFace videos.

A track is a dense (frames x channels) array over :func:`aufx.au.channels` plus the time of each frame, so that
resampling and smoothing are array operations and the animator can take :class:`aufx.au.AUVector` per frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.interpolate import make_interp_spline

from aufx.au import AUVector, channels, resolve_key
from aufx.io.smoothing import OneEuroConfig, smooth_track

_RANGE_TOL = 1e-6  # float noise from interpolation; anything further outside [0, 1] is a bug upstream


def channel_index() -> dict[str, int]:
    """Column of each AUVector channel in a track's ``values``."""
    return {c: i for i, c in enumerate(channels())}


def vector_to_array(vector: AUVector) -> np.ndarray:
    return np.array([vector[c] for c in channels()], dtype=float)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class AUTrack:
    times: np.ndarray   # (T,) seconds, strictly increasing; keeps the source's time origin
    values: np.ndarray  # (T, len(channels())) normalised intensities in [0, 1], columns in channels() order
    fps: float | None = None  # frame rate when frames are evenly spaced (keyframes, resample); None: as recorded

    def __post_init__(self):
        times = np.asarray(self.times, dtype=float).reshape(-1)
        values = np.asarray(self.values, dtype=float)
        n_ch = len(channels())
        if values.ndim != 2 or values.shape != (len(times), n_ch):
            raise ValueError(f"AUTrack values must have shape ({len(times)}, {n_ch}) (frames x AU channels), "
                             f"got {values.shape}")
        if len(times) == 0:
            raise ValueError("an AUTrack needs at least one frame")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise ValueError("AUTrack times must be finite and strictly increasing")
        if not np.all(np.isfinite(values)) or values.min() < -_RANGE_TOL or values.max() > 1 + _RANGE_TOL:
            raise ValueError("AUTrack values must be normalised intensities in [0, 1]")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"AUTrack fps must be positive, got {self.fps}")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", np.clip(values, 0.0, 1.0))

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0])

    @classmethod
    def from_vectors(cls, vectors: Sequence[AUVector], fps: float, start: float = 0.0) -> "AUTrack":
        """One vector per frame at ``fps``, the first at ``start`` seconds."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        return cls(start + np.arange(len(vectors)) / fps, np.array([vector_to_array(v) for v in vectors]), fps)

    def vector(self, i: int) -> AUVector:
        return AUVector(dict(zip(channels(), self.values[i].tolist())))

    def vectors(self) -> list[AUVector]:
        return [self.vector(i) for i in range(len(self))]

    def column(self, key: str) -> np.ndarray:
        """Values of one key over time: ``"L12"`` one side, ``"AU12"`` the mean of both sides (OpenFace's view)."""
        idx = channel_index()
        return self.values[:, [idx[c] for c in resolve_key(key)]].mean(axis=1)

    def resample(self, fps: float) -> "AUTrack":
        """Frames at ``times[0] + k / fps`` up to the last time, linearly interpolated between source frames."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        n = int(np.floor(self.duration * fps + 1e-6)) + 1
        times = self.times[0] + np.arange(n) / fps
        if len(self) == 1:
            return AUTrack(times, self.values, fps)
        return AUTrack(times, make_interp_spline(self.times, self.values, k=1)(times), fps)

    def smoothed(self, config: OneEuroConfig = OneEuroConfig()) -> "AUTrack":
        """One-Euro filtered copy (aufx.io.smoothing): steady holds lose their jitter, fast onsets keep their speed."""
        return AUTrack(self.times, np.clip(smooth_track(self.values, self.times, config), 0.0, 1.0), self.fps)
