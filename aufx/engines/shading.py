"""Appearance of AUs as shading: creases, bulges and chin stippling drawn in the face's own skin tone.

Multiplicative shading keeps the hue and texture of the skin underneath; strokes are placed on the *target*
landmarks so wrinkles sit where the deformed face has them. Strength follows the requested increase of each AU.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import yaml

from aufx.au import catalogue
from aufx.engines.basis import basis, mirror_map
from aufx.engines.deform import Deformation
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import ASSETS, topology


@dataclass(frozen=True)
class ShadingConfig:
    enabled: bool = True
    strength: float = 1.0  # global multiplier on every stroke's depth


@dataclass(frozen=True)
class Stroke:
    kind: str
    width: float
    depth: float
    anchors: tuple[tuple[tuple[int, float], ...], ...]  # per point: ((landmark, weight), ...)


@dataclass(frozen=True)
class Stipple:
    at: tuple[tuple[int, float], ...]
    radius: float
    depth: float
    grain: float


def _anchor(a) -> tuple[tuple[int, float], ...]:
    return ((int(a), 1.0),) if isinstance(a, int) else tuple((int(k), float(v)) for k, v in a.items())


def _mirror(anchors, m):
    return tuple(tuple((int(m[i]), w) for i, w in pt) for pt in anchors)


@lru_cache(maxsize=1)
def appearance() -> dict[str, tuple[list[Stroke], Stipple | None]]:
    """Channel -> (strokes, stipple); bilateral AUs mirrored, AU45 shares AU43's look."""
    spec = yaml.safe_load((ASSETS / "au_appearance.yaml").read_text())
    m = mirror_map(topology().canonical)
    out = {}
    for au in catalogue():
        s = spec.get(au.code) or spec.get({"AU45": "AU43"}.get(au.code, ""))
        if not s:
            continue
        strokes = [Stroke(st["kind"], st["width"], st["depth"], tuple(_anchor(p) for p in st["points"]))
                   for st in s.get("strokes", [])]
        stip = s.get("stipple")
        stipple = Stipple(_anchor(stip["at"]), stip["radius"], stip["depth"], stip["grain"]) if stip else None
        if au.bilateral:
            l, r = au.channels()
            out[r] = (strokes, stipple)
            out[l] = ([Stroke(st.kind, st.width, st.depth, _mirror(st.anchors, m)) for st in strokes],
                      Stipple(_mirror((stipple.at,), m)[0], stipple.radius, stipple.depth, stipple.grain)
                      if stipple else None)
        else:
            out[au.code] = (strokes, stipple)
    return out


def _place(anchor, pts: np.ndarray) -> np.ndarray:
    return sum(w * pts[i] for i, w in anchor)


@lru_cache(maxsize=4)
def _grain(size: int) -> np.ndarray:
    """Fixed-seed skin grain: the same edit always renders the same pixels."""
    return np.random.default_rng(1234).standard_normal((size, size)).astype(np.float32)


def render_shading(roi: np.ndarray, face: FaceAnalysis, d: Deformation, box: tuple[int, int, int, int],
                   cfg: ShadingConfig) -> np.ndarray:
    if not cfg.enabled:
        return roi
    b = basis()
    amounts = {ch: float(d.appearance[b.index(ch)]) for ch in b.channels}
    for ch, other in b.ties.items():
        amounts[other] = max(amounts[other], amounts[ch])
        amounts[ch] = 0.0
    looks = appearance()
    active = [(ch, a) for ch, a in amounts.items() if a > 1e-3 and ch in looks]
    if not active:
        return roi
    ipd = face.pose.scale
    pts = d.target_landmarks - np.array(box[:2], float)
    h, w = roi.shape[:2]
    dark = np.zeros((h, w), np.float32)
    lit = np.zeros((h, w), np.float32)
    up = -face.pose.rotation[:2, 1] / np.linalg.norm(face.pose.rotation[:2, 1])
    for ch, amount in active:
        strokes, stipple = looks[ch]
        for st in strokes:
            poly = np.array([_place(a, pts) for a in st.anchors])
            width = max(1.5, st.width * ipd)  # thinner than that reads as a drawn line, not a fold
            k = amount * st.depth * cfg.strength
            if st.kind == "crease":
                _line(dark, poly, width, k)
                _line(lit, poly + up * width * 1.2, width, 0.35 * k)
            else:
                _line(lit, poly, width, k)
                _line(dark, poly - up * width * 0.9, width * 0.8, 0.5 * k)
        if stipple is not None:
            c = _place(stipple.at, pts)
            rad = stipple.radius * ipd
            x0, y0 = np.maximum(np.floor(c - 3 * rad).astype(int), 0)
            x1, y1 = np.minimum(np.ceil(c + 3 * rad).astype(int), [w, h])
            if x1 > x0 and y1 > y0:
                gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
                fall = np.exp(-((gx - c[0]) ** 2 + (gy - c[1]) ** 2) / (2 * rad ** 2))
                g = cv2.GaussianBlur(_grain(max(h, w))[y0:y1, x0:x1], (0, 0), max(0.6, stipple.grain * ipd))
                g /= g.std() + 1e-6
                k = stipple.depth * amount * cfg.strength
                dark[y0:y1, x0:x1] += np.clip(g, 0, None) * fall * k * 0.5
                lit[y0:y1, x0:x1] += np.clip(-g, 0, None) * fall * k * 0.3
    face_mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(face_mask, [np.round(pts[list(topology().groups["face_oval"])]).astype(np.int32)], 1)
    gain = (1.0 - np.clip(dark, 0, 0.7) + np.clip(lit, 0, 0.4) * 0.6) * face_mask + (1 - face_mask)
    return np.clip(roi.astype(np.float32) * gain[..., None] + 0.5, 0, 255).astype(np.uint8)


def _line(canvas: np.ndarray, poly: np.ndarray, width: float, strength: float) -> None:
    """Add a soft line: a thin stroke blurred to the stroke width (drawn and blurred in its own small box)."""
    sigma = width / 2.0
    pad = int(np.ceil(3 * sigma)) + 2
    h, w = canvas.shape
    x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + pad, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    layer = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.polylines(layer, [np.round((poly - [x0, y0]) * 16).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA, shift=4)
    layer = cv2.GaussianBlur(layer, (0, 0), sigma)
    peak = layer.max()
    if peak > 0:
        canvas[y0:y1, x0:x1] += layer * (strength / peak)

