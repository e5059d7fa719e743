"""The mesh the whole engine works on: canonical neutral face, triangles, named landmark groups.

All of it is data under aufx/assets/ (see tools/build_face_assets.py for where it comes from); this module only loads it
and derives the few things every consumer needs (aperture polygons, triangles without the aperture-spanning ones).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from aufx.resources import ASSETS

N_LANDMARKS = 478


@dataclass(frozen=True)
class Topology:
    """The mesh every module indexes: the only place landmark indices live besides aufx/assets/face_regions.json."""

    canonical: np.ndarray  # (478, 3) neutral face, IPD units, x right, y down, z away from camera
    triangles: np.ndarray  # (898, 3) over the 468 mesh vertices, apertures closed
    groups: dict[str, tuple[int, ...]]  # named landmark groups (face_regions.json, plus "lips_upper"/"lips_lower")
    pairs: dict[str, np.ndarray]  # "lip" / "eye_R" / "eye_L" -> (k, 2) upper/lower index pairs

    def loop(self, name: str) -> np.ndarray:
        """(k,) landmark indices of a closed aperture polygon ("lips_inner", "eye_R", ...): upper contour
        corner->corner, then lower contour back (no repeated corners)."""
        up, lo = self.groups[f"{name}_upper"], self.groups[f"{name}_lower"]
        return np.array(list(up) + list(lo[-2:0:-1]))

    @property
    def aperture_names(self) -> tuple[str, ...]:
        """The openings whose two sides move apart: the mouth and the eyes."""
        return ("lips_inner", "eye_R", "eye_L")



def _lip_regions(canon: np.ndarray, groups: dict) -> dict[str, tuple[int, ...]]:
    """Every mesh vertex of the upper and of the lower lip (the rings between the outer and inner contours too)."""
    from matplotlib.path import Path as Polygon

    outer = list(groups["lips_outer_upper"]) + list(groups["lips_outer_lower"])[-2:0:-1]
    inside = Polygon(canon[outer, :2]).contains_points(canon[:468, :2], radius=1e-6)
    inner_up = canon[list(groups["lips_inner_upper"]), :2]
    line_y = np.interp(canon[:468, 0], inner_up[:, 0], inner_up[:, 1])
    idx = set(np.flatnonzero(inside).tolist()) | set(outer) | set(groups["lips_inner_upper"]) | set(
        groups["lips_inner_lower"])
    upper = sorted(i for i in idx if canon[i, 1] <= line_y[i] + 1e-9 and i not in groups["lips_inner_lower"])
    lower = sorted(i for i in idx if i not in upper or i in groups["lips_inner_lower"])
    corners = {groups["lips_outer_upper"][0], groups["lips_outer_upper"][-1], groups["lips_inner_upper"][0],
               groups["lips_inner_upper"][-1]}
    return {"lips_upper": tuple(sorted(set(upper) | corners)), "lips_lower": tuple(sorted(set(lower) | corners))}


@lru_cache(maxsize=1)
def topology() -> Topology:
    """The mesh, loaded once from aufx/assets/ (canonical_face.json, face_topology.json, face_regions.json)."""
    canon = np.asarray(json.loads((ASSETS / "canonical_face.json").read_text())["vertices"], dtype=np.float64)
    tris = np.asarray(json.loads((ASSETS / "face_topology.json").read_text())["triangles"], dtype=np.int32)
    raw = json.loads((ASSETS / "face_regions.json").read_text())
    groups = {k: tuple(v) for k, v in raw.items() if k != "description" and not k.endswith("_pairs")}
    groups.update(_lip_regions(canon, groups))
    pairs = {k[:-6]: np.asarray(v, dtype=np.int32) for k, v in raw.items() if k.endswith("_pairs")}
    return Topology(canon, tris, groups, pairs)
