"""Geometry of the face mesh, in one place: which triangles span an opening, signed areas, adjacency, fold repair.

The basis (aufx/model/basis.py), the deformation (aufx/model/deform.py) and the warp field (aufx/engines/field.py)
all work on the same 468-vertex triangulation; the rules that keep lips and lids apart and keep triangles from
turning over are written here once.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
import scipy.sparse as sp

from aufx.face.topology import N_LANDMARKS, topology

N_MESH = 468  # iris points (468-477) are not in the triangulation; eyeballs do not move with expressions

# Inside an opening the warp follows one side only: the lower lip (the jaw carries it) and the upper lids.
FOLLOWED_SIDE = {"lips_inner": "lower", "eye_R": "upper", "eye_L": "upper"}


@lru_cache(maxsize=1)
def opening_triangles() -> dict[str, np.ndarray]:
    """Aperture name -> (898,) bool over topology().triangles: the triangles that close that opening (all three
    corners on its contours, at least one on the upper side only and one on the lower side only)."""
    topo = topology()
    out = {}
    for name in topo.aperture_names:
        up, lo = set(topo.groups[f"{name}_upper"]), set(topo.groups[f"{name}_lower"])
        on = np.isin(topo.triangles, list(up | lo)).all(axis=1)
        upper_only = np.isin(topo.triangles, list(up - lo)).any(axis=1)
        lower_only = np.isin(topo.triangles, list(lo - up)).any(axis=1)
        out[name] = on & upper_only & lower_only
    return out


@lru_cache(maxsize=1)
def wall_triangles() -> np.ndarray:
    """(n, 3) int32 mesh triangles minus those spanning an eye or the mouth: motion must not leak across a lid or
    lip line, and a closed opening's slivers carry no orientation to keep."""
    spans = np.any(list(opening_triangles().values()), axis=0)
    return topology().triangles[~spans]


@lru_cache(maxsize=1)
def ignored_corners() -> np.ndarray:
    """(898, 3) bool over topology().triangles: the corners an opening's interior must not follow (the upper lip's,
    the lower lids'), so pixels inside an opening move with one side only."""
    topo = topology()
    ignore = np.zeros(topo.triangles.shape, bool)
    for name, spans in opening_triangles().items():
        up, lo = set(topo.groups[f"{name}_upper"]), set(topo.groups[f"{name}_lower"])
        other = (up - lo) if FOLLOWED_SIDE[name] == "lower" else (lo - up)
        ignore[spans] = np.isin(topo.triangles[spans], list(other))
    return ignore


def signed_areas(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(n_tris,) twice the signed area of each triangle in the x-y plane of ``points`` (n, 2 or 3), in the points'
    units squared; the sign is the orientation, so a sign change is a fold."""
    x, y = points[:, 0], points[:, 1]
    a, b, c = tris.T
    ax, ay = x.take(a), y.take(a)  # one coordinate at a time: 3x faster than gathering (n, 2) rows
    return (x.take(b) - ax) * (y.take(c) - ay) - (y.take(b) - ay) * (x.take(c) - ax)


UPPER_FACE_BELOW_NOSE_TIP = 0.1  # (IPD) triangles centred this far above the nose tip are the upper face
# The fold bound of a single AU at a research intensity (0.6): at most MAX_FOLDS slivers, none in the upper face;
# AUs that pull the lip corners may leave more on a closed mouth (the repair keeps the corner's lead motion).
FOLD_CHECK_LEVEL = 0.6
MAX_FOLDS = 3
CORNER_AUS = ("AU12", "AU14", "AU15", "AU20")


def folded_triangles(rest: np.ndarray, moved: np.ndarray) -> tuple[int, int]:
    """(triangles turned over, of which in the upper face) from ``rest`` to ``moved`` canonical points (478, 3),
    over the wall triangles: the measure of test_no_folded_triangles and of the calibration's fold bound. Slivers
    on a closed mouth can be forgiven; a fold around the eyes or brows tears what a viewer looks at first."""
    tris = wall_triangles()
    a0 = signed_areas(rest, tris)
    flipped = (np.sign(signed_areas(moved, tris)) != np.sign(a0)) & (np.abs(a0) > 1e-6)
    upper = rest[tris[flipped]].mean(axis=1)[:, 1] < rest[1, 1] - UPPER_FACE_BELOW_NOSE_TIP
    return int(flipped.sum()), int(upper.sum())


@lru_cache(maxsize=1)
def edges() -> np.ndarray:
    """(n_edges, 2) int32 unique mesh edges (i < j) of the wall triangles: no edge crosses a lip or lid line."""
    tris = wall_triangles()
    e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


@lru_cache(maxsize=1)
def adjacency() -> tuple[sp.csr_matrix, np.ndarray]:
    """(478, 478) symmetric 0/1 float64 adjacency over the wall edges, and (478,) degrees (at least 1, so the
    irises, which have no edges, divide safely)."""
    e = edges()
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(N_LANDMARKS, N_LANDMARKS))
    adj = ((adj + adj.T) > 0).astype(np.float64).tocsr()
    return adj, np.maximum(np.asarray(adj.sum(axis=1)).ravel(), 1.0)


def smoothed(motion: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """``motion`` (478, k) with the rows ``verts`` moved half-way to their neighbours' mean (in place, returned)."""
    adj, deg = adjacency()
    motion[verts] = 0.5 * motion[verts] + 0.5 * (adj @ motion)[verts] / deg[verts, None]
    return motion


def lagging_corners(corners: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Of each folded triangle (corners (n, 3)), the two corners that move least: the leading one (a pulled lip
    corner) keeps its motion and the others are carried along."""
    others = np.array([[1, 2], [0, 2], [0, 1]])
    lead = np.argmax(np.linalg.norm(motion[corners], axis=2), axis=1)
    return np.unique(corners[np.arange(len(corners))[:, None], others[lead]])


def unfold(rest: np.ndarray, motion: np.ndarray, movable: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
           reach: float = 1.0, min_area: float = 1e-6, max_iter: int = 30, patience: int | None = None) -> np.ndarray:
    """``motion`` (478, k) smoothed where ``rest + reach * motion`` would turn a wall triangle over; a fold tears
    the image. ``rest`` (478, 2 or 3) gives the orientations (triangles thinner than ``min_area`` have none).

    Each round smooths the vertices ``movable(folded corners (n, 3), motion)`` picks; it stops when nothing is
    folded, after ``max_iter`` rounds, or after ``patience`` rounds without fewer folds (slivers that will not open
    without losing the motion). Returns a new array.
    """
    tris = wall_triangles()
    a0 = signed_areas(rest, tris)
    valid = np.abs(a0) > min_area
    motion = motion.copy()
    best, stalled = np.inf, 0
    for _ in range(max_iter):
        bad = np.flatnonzero(valid & (np.sign(signed_areas(rest + reach * motion, tris)) != np.sign(a0)))
        stalled = 0 if bad.size < best else stalled + 1
        best = min(best, bad.size)
        if bad.size == 0 or (patience is not None and stalled >= patience):
            break
        smoothed(motion, movable(tris[bad], motion))
    return motion


def hold_orientation(rest: np.ndarray, motion: np.ndarray, *, min_share: float = 0.05, min_area: float = 1e-6,
                     rounds: int = 20, patience: int = 3) -> np.ndarray:
    """``motion`` (478, k >= 2) changed so that no wall triangle of ``rest + motion`` is turned over or squeezed
    below ``min_share`` of its area in ``rest`` (478, 2 or 3): the folds smoothing leaves (unfold gives up on them)
    become skin compressed to a thin band, as a lid retracting under its crease or a cheek bunching beside a pulled
    lip corner does, instead of a tear. Each round projects every such triangle's area onto the bound (position-based
    constraints: the corners move along the area's gradient in the x-y plane, the one moving most keeps its motion,
    as in lagging_corners), the corrections of a vertex shared by several triangles averaged; it stops when none is
    left, after ``rounds``, or after ``patience`` rounds that do not win back a tenth of the missing area (slivers
    pinned between a lip corner's lead motion and its neighbours). Returns a new array."""
    tris = wall_triangles()
    a0 = signed_areas(rest, tris)
    valid = np.abs(a0) > min_area
    sign, floor = np.sign(a0), min_share * np.abs(a0)
    motion = motion.copy()
    best, stalled = np.inf, 0
    for _ in range(rounds):
        pts = rest[:, :2] + motion[:, :2]
        short = floor - sign * signed_areas(pts, tris)  # > 0: the area is below its bound
        bad = np.flatnonzero(valid & (short > 0))
        if bad.size == 0:
            break
        left = float(short[bad].sum())  # the area still missing: progress even while the count stays
        stalled = 0 if left < 0.9 * best else stalled + 1
        best = min(best, left)
        if stalled >= patience:
            break
        t = tris[bad]
        p = pts[t]  # (n, 3, 2)
        nxt, after = p[:, [1, 2, 0]], p[:, [2, 0, 1]]
        # gradient of twice the signed area with respect to each corner, oriented so that it grows the area
        grad = np.stack([nxt[..., 1] - after[..., 1], after[..., 0] - nxt[..., 0]], axis=2) * sign[bad, None, None]
        m = motion[t, :2]
        w = np.ones(t.shape)
        w[np.arange(len(t)), np.argmax((m * m).sum(axis=2), axis=1)] = 0.0
        norm = (w * (grad * grad).sum(axis=2)).sum(axis=1)
        ok = norm > 1e-12
        step = np.where(ok, short[bad] / np.where(ok, norm, 1.0), 0.0)
        fix = (w * step[:, None])[..., None] * grad  # (n, 3, 2)
        idx, n = t.ravel(), len(motion)
        count = np.maximum(np.bincount(idx, w.ravel(), n), 1.0)
        motion[:, 0] += np.bincount(idx, fix[..., 0].ravel(), n) / count
        motion[:, 1] += np.bincount(idx, fix[..., 1].ravel(), n) / count
    return motion


def lips_closing(before: np.ndarray, after: np.ndarray, down: np.ndarray) -> tuple[float, float]:
    """How far the lips close from ``before`` to ``after`` (landmarks (>= 468, 2), px, ``down`` (2,) the face's
    down in the image): (share 0..1 of the inner-lip gap that closes, mean gap of ``before`` in px); (0, 0) for a
    closed mouth. The warp field squeezes the mouth's interior and the mouth layer seals the seam by the same share."""
    pairs = topology().pairs["lip"]
    gap0 = np.clip((before[pairs[:, 1]] - before[pairs[:, 0]]) @ down, 0, None)
    if gap0.sum() < 1e-6:
        return 0.0, 0.0
    gap1 = np.clip((after[pairs[:, 1]] - after[pairs[:, 0]]) @ down, 0, None)
    return float(np.clip(1.0 - gap1.sum() / gap0.sum(), 0.0, 1.0)), float(gap0.mean())
