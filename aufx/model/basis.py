"""The AU deformation basis: one 3D displacement field over the 478-point mesh per AU channel.

Built from aufx/assets/au_handles.yaml (readable handle motions) by harmonic interpolation on the canonical mesh: inside
an AU's free region each vertex moves as the average of its neighbours, so motion spreads smoothly from the handles
and dies out at the region's rim. The mesh graph has no edges across the lip line or the lid margins (wall
triangles), so the two sides of an aperture move independently.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import yaml
from scipy.sparse.csgraph import dijkstra
from scipy.sparse.linalg import spsolve
from scipy.spatial import cKDTree

from aufx.au import catalogue, channels
from aufx.face import mesh
from aufx.face.mesh import N_MESH
from aufx.face.topology import N_LANDMARKS, Topology, topology
from aufx.resources import ASSETS


@dataclass(frozen=True)
class Basis:
    """The AU model as geometry: edits add these fields, the estimator fits them to a measured face."""

    channels: tuple[str, ...]  # "AU12", "L01", "R01", ... (bilateral AUs have one channel per side)
    fields: np.ndarray  # (n_channels, 478, 3) float64 canonical displacement (IPD units) at intensity 1.0
    closing: dict[str, str]  # channel -> aperture it closes ("eye_R"), for the lid-closure rule
    ties: dict[str, str]  # channel -> channel with the same geometry (blink AU45 = eyes-closed AU43)
    evidence: dict[str, np.ndarray]  # channel -> the vertices the estimator may read it from (default: all)
    apart: np.ndarray  # (n_channels, 478, 3) motion added only as far as the lips are apart (deform scales it)

    def index(self, channel: str) -> int:
        """Row of ``channel`` in ``fields`` and in every (n_channels,) vector."""
        return self.channels.index(channel)

    def displacement(self, delta: np.ndarray) -> np.ndarray:
        """Canonical displacement (478, 3) IPD units for a per-channel intensity change (n_channels,); the fields
        add linearly."""
        return np.tensordot(delta, self.fields, axes=1)


def mirror_map(canon: np.ndarray) -> np.ndarray:
    """(478,) index of each vertex's mirror image across the midline of ``canon`` (478, 3): left-side AU fields are
    the right side's, mirrored. A closed mouth's (or eye's) upper and lower contours coincide, so before matching
    nearest neighbours each upper contour is nudged up and each lower one down: the upper lip's mirror is the
    upper lip (a plain match swapped them, and every left-side field moved the lower lip where it should move the
    upper one)."""
    groups = topology().groups
    pts = canon[:N_MESH].copy()
    for name in ("lips_inner", "lips_outer", "eye_R", "eye_L"):
        up, lo = set(groups[f"{name}_upper"]), set(groups[f"{name}_lower"])
        pts[sorted(up - lo), 1] -= 0.01  # IPD: more than the canonical face's own left-right asymmetry
        pts[sorted(lo - up), 1] += 0.01
    flipped = pts.copy()
    flipped[:, 0] *= -1
    _, idx = cKDTree(pts).query(flipped)
    return np.concatenate([idx, groups["iris_mirror"]])


AXES = {"x": 0, "y": 1, "z": 2}  # a handle's "axes": the distance to its centre is measured along these only


def _resolve(ref, topo: Topology) -> list[int]:
    if isinstance(ref, int):
        return [ref]
    return list(topo.groups[ref])


def _centre(at, canon: np.ndarray) -> np.ndarray:
    if isinstance(at, int):
        return canon[at]
    weights = {int(k): float(v) for k, v in at.items()}
    return sum(w * canon[i] for i, w in weights.items()) / sum(weights.values())


def _graph(topo: Topology) -> sp.csr_matrix:
    """(468, 468) mesh edges weighted by their canonical length (IPD units): how far a handle's motion may spread."""
    e = mesh.edges()
    w = np.linalg.norm(topo.canonical[e[:, 0]] - topo.canonical[e[:, 1]], axis=1)
    g = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(N_MESH, N_MESH))
    return (g + g.T).tocsr()


def _harmonic(values: dict[int, np.ndarray], free: np.ndarray) -> np.ndarray:
    """(478, 3): Laplace's equation solved on the ``free`` vertices ((468,) bool) with the constrained ``values``
    (vertex -> (3,) canonical motion) as boundary; uniform weights, so motion spreads evenly from the handles."""
    out = np.zeros((N_LANDMARKS, 3))
    for i, v in values.items():
        out[i] = v
    free = np.flatnonzero(free)
    if free.size == 0:
        return out
    adj = mesh.adjacency()[0][:N_MESH, :N_MESH]
    lap = sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj
    known = np.setdiff1d(np.arange(N_MESH), free)
    lff = lap[free][:, free].tocsc()
    rhs = -lap[free][:, known] @ out[known]
    out[free] = np.column_stack([spsolve(lff, rhs[:, k]) for k in range(3)])
    return out


def _field(spec: dict, topo: Topology, graph: sp.csr_matrix) -> np.ndarray:
    canon = topo.canonical
    values: dict[int, np.ndarray] = {}
    if "close" in spec:
        pairs = topo.pairs[spec["close"]["aperture"]]
        share = float(spec["close"]["upper_share"])
        for up, lo in pairs:
            gap = canon[lo] - canon[up]
            values[int(up)] = share * gap
            values[int(lo)] = -(1.0 - share) * gap
    for h in spec.get("handles", []):
        centre = _centre(h["at"], canon)
        cand = np.arange(N_MESH)
        if "only" in h:
            cand = np.array(sorted({i for ref in h["only"] for i in _resolve(ref, topo)}))
        axes = [AXES[a] for a in h.get("axes", "xyz")]
        d = np.linalg.norm(canon[cand][:, axes] - centre[axes], axis=1)
        r = float(h["radius"])
        core = float(h.get("core", 0.0)) if h.get("taper", True) else r
        move = np.asarray(h["move"], dtype=np.float64)
        for i, di in zip(cand, d):
            if di < r:
                w = 1.0 if di <= core else (1.0 - ((di - core) / (r - core)) ** 2) ** 2  # full in core, 0 at rim
                values[int(i)] = values.get(int(i), 0.0) + w * move
    for ref in spec.get("fixed", []):
        for i in _resolve(ref, topo):
            values.setdefault(i, np.zeros(3))
    src = [i for i, v in values.items() if np.any(v != 0)]
    geo = dijkstra(graph, indices=src, min_only=True) if src else np.full(N_MESH, np.inf)
    free = geo < float(spec["free"])
    free[list(values)] = False
    lead = spec["handles"][0]["at"] if spec.get("handles") else None
    return _without_folds(_harmonic(values, free), topo, lead if isinstance(lead, int) else None)


def _without_folds(field: np.ndarray, topo: Topology, lead: int | None, reach: float = 1.3) -> np.ndarray:
    """(478, 3) ``field`` smoothed where it would turn a mesh triangle over, up to ``reach`` x full intensity.

    Hand-placed handles can pull a lip edge past the skin next to it; a field that folds tears the image. Every
    corner of a folded triangle is smoothed except the AU's lead landmark (its first handle's centre, else the
    field's strongest vertex), which keeps the AU's reach: skin a handle drags along past its neighbours (the
    cheek below the nasolabial line under a lip-corner pull, which moved more than the corner) gives way instead.
    """
    keep = int(np.argmax(np.linalg.norm(field[:N_MESH], axis=1))) if lead is None else lead
    return mesh.unfold(topo.canonical, field, lambda corners, _: np.setdiff1d(np.unique(corners), [keep]),
                       reach=reach, min_area=1e-9, max_iter=300)


@lru_cache(maxsize=1)
def basis() -> Basis:
    """The basis built from aufx/assets/au_handles.yaml, once per process."""
    topo = topology()
    spec = yaml.safe_load((ASSETS / "au_handles.yaml").read_text())
    graph = _graph(topo)
    mirror = mirror_map(topo.canonical)
    fields, apart, closing, ties, evidence = {}, {}, {}, {}, {}
    for au in catalogue():
        s = spec[au.code]
        f = _field(s, topo, graph)
        a = _field(s["apart"], topo, graph) if "apart" in s else np.zeros_like(f)
        n = au.code[2:]
        if au.bilateral:
            if s.get("side") != "R":
                raise ValueError(f"au_handles.yaml: bilateral {au.code} must be written for side R")
            flip = np.array([-1.0, 1.0, 1.0])
            fields[f"R{n}"], fields[f"L{n}"] = f, f[mirror] * flip
            apart[f"R{n}"], apart[f"L{n}"] = a, a[mirror] * flip
            if "close" in s:
                closing[f"R{n}"] = "eye_R"
                closing[f"L{n}"] = "eye_L"
        else:
            fields[au.code], apart[au.code] = f, a
        if "evidence" in s:
            idx = np.array(sorted({i for ref in s["evidence"] for i in _resolve(ref, topo)}))
            for ch in au.channels():
                evidence[ch] = idx
        if "same_as" in s:
            for ch, other in zip(au.channels(), spec_channels(s["same_as"])):
                ties[ch] = other
    chs = channels()
    return Basis(chs, np.stack([fields[c] for c in chs]), closing, ties, evidence, np.stack([apart[c] for c in chs]))


def spec_channels(code: str) -> tuple[str, ...]:
    """The basis channels of an AU code ("AU43" -> ("L43", "R43")), for ``same_as`` in au_handles.yaml."""
    from aufx.au import get_au

    return get_au(code).channels()
