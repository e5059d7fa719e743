"""Ridge regression with its penalty chosen by exact leave-one-out error: small, closed-form, numpy only.

Why not scikit-learn: one linear model per AU on at most a few thousand faces is a few lines of linear algebra, and
the project does not need another dependency for it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA_GRID = tuple(float(a) for a in np.logspace(-3, 3, 13))


@dataclass(frozen=True)
class RidgeFit:
    intercept: float
    coef: np.ndarray  # (n_features,)
    alpha: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + x @ self.coef


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero mean, unit spread per feature, so that the penalty treats features alike whatever their units or range
    (a raw AU the detector damps to a tenth of its range is not penalised ten times harder)."""
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return (x - mu) / sd, mu, sd


def _system(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Design matrix with an intercept column, and the normal matrix with the intercept left unpenalised."""
    a = np.hstack([np.ones((len(x), 1)), x])
    penalty = np.full(a.shape[1], alpha)
    penalty[0] = 0.0
    return a, a.T @ a + np.diag(penalty)


def loo_mse(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Leave-one-out mean squared error from a single fit: residual_i / (1 - leverage_i) (Allen's PRESS; exact for
    the standardised features, which are computed once on all rows)."""
    a, m = _system(_standardise(np.asarray(x, float))[0], alpha)
    hat = a @ np.linalg.solve(m, a.T)
    resid = y - hat @ y
    return float(np.mean((resid / np.maximum(1.0 - np.diag(hat), 1e-12)) ** 2))


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float | None = None,
              grid: tuple[float, ...] = ALPHA_GRID) -> RidgeFit:
    """Least squares with an L2 penalty on the standardised coefficients (never on the intercept); the result is
    in the features' own units.

    Without ``alpha`` the grid value with the lowest leave-one-out error is used; ties go to the larger penalty, so
    a target the features cannot explain gets the flattest model.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if alpha is None:
        scores = {a: loo_mse(x, y, a) for a in grid}
        best = min(scores.values())
        alpha = max(a for a, s in scores.items() if s <= best * (1 + 1e-6) + 1e-12)
    if not alpha > 0:
        raise ValueError(f"ridge alpha must be positive, got {alpha}")
    z, mu, sd = _standardise(x)
    a, m = _system(z, alpha)
    sol = np.linalg.solve(m, a.T @ y)
    coef = sol[1:] / sd
    return RidgeFit(float(sol[0] - mu @ coef), coef, float(alpha))


def pearson_r(a: np.ndarray, b: np.ndarray) -> float | None:
    """Correlation, or None where it is undefined (a constant series)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
