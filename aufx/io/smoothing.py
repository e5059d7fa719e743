"""Temporal smoothing of AU and landmark tracks with the One-Euro filter (Casiez, Roussel & Vogel, CHI 2012).

Why this filter: a fixed low-pass forces a choice between jitter (high cutoff) and lag (low cutoff). Tracked faces
need both ends: a still face should not shimmer, and a fast onset (a blink, a startle) should not arrive late or
flattened. The One-Euro filter is a first-order low-pass whose cutoff rises with the estimated speed of the signal,
so it smooths hard at rest and gets out of the way during fast motion. It is causal (usable live, frame by frame)
and works elementwise on any array shape: an (N,) AU vector or (478, 3) MediaPipe landmarks per frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    # Cutoff frequency at rest (Hz). Lower = less jitter on a still face, but more lag when motion starts.
    min_cutoff: float = 1.0
    # How fast the cutoff rises with speed, in 1 / (units of the signal per second). Scale it to the data:
    # about 1 for AU intensities (0..1), about 0.01-0.05 for landmarks in pixels. Raise it if fast moves lag.
    beta: float = 1.0
    # Cutoff of the speed estimate itself (Hz); the paper's default, rarely worth changing.
    d_cutoff: float = 1.0

    def __post_init__(self):
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError(f"One-Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, got {self}")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of an exponential low-pass with this cutoff at sampling interval dt."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Stateful filter: call it with each new sample and its time in seconds; returns the filtered sample."""

    def __init__(self, config: OneEuroConfig = OneEuroConfig()):
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget the past, e.g. when the tracked face is lost and found again."""
        self._t: float | None = None
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self._t is None:
            self._t, self._x, self._dx = float(t), x.copy(), np.zeros_like(x)
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"One-Euro filter got shape {x.shape} after {self._x.shape}; reset() between tracks")
        dt = float(t) - self._t
        if dt <= 0:
            raise ValueError(f"One-Euro filter needs increasing times; got {t} after {self._t}")
        cfg = self.config
        self._dx = self._dx + _alpha(cfg.d_cutoff, dt) * ((x - self._x) / dt - self._dx)
        cutoff = cfg.min_cutoff + cfg.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = float(t)
        return self._x.copy()


def smooth_track(values: np.ndarray, times: np.ndarray, config: OneEuroConfig = OneEuroConfig()) -> np.ndarray:
    """Filter a whole recorded track: ``values`` is (T, ...) with one sample per entry of ``times`` (seconds)."""
    values = np.asarray(values, dtype=float)
    times = np.asarray(times, dtype=float)
    if len(values) != len(times):
        raise ValueError(f"smooth_track: {len(values)} samples but {len(times)} times")
    filt = OneEuroFilter(config)
    return np.stack([filt(v, t) for v, t in zip(values, times)]) if len(values) else values.copy()
