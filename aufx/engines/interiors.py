"""What a warp cannot invent: the inside of the mouth where lips part, and the eyeball where lids open.

Mouth: a dark cavity with a tongue and two rows of teeth. The upper teeth are fixed to the skull (they stay where
the source mouth was), the lower teeth ride on the mandible (they follow the chin), so neither is ever stretched.
Eyes: the eyeball does not move with expressions, so inside the target lid opening the original pixels are shown
in place (the iris stays round); where the lids reveal what the photo never showed, sclera and iris are continued
from their own colours.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aufx.engines.deform import Deformation
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology

# Tooth boundaries across the visible arch, as a fraction of its half-width (incisors, laterals, canines, premolars).
TOOTH_EDGES = np.array([0.0, 0.21, 0.38, 0.53, 0.66, 0.78, 0.9])


@dataclass(frozen=True)
class InteriorConfig:
    min_open_px: float = 0.75  # below this extra lip gap no cavity is drawn
    teeth_rgb: tuple[int, int, int] = (236, 228, 212)
    upper_incisal_ipd: float = 0.035  # upper incisal edge below the resting lip line (IPD units)
    teeth_height_ipd: float = 0.2
    lid_shadow: float = 0.35


def _poly_mask(shape: tuple[int, int], poly: np.ndarray) -> np.ndarray:
    """Anti-aliased polygon coverage in [0, 1]."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255.0


def _bbox(poly: np.ndarray, pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    x0, y0 = np.floor(poly.min(0)).astype(int) - pad
    x1, y1 = np.ceil(poly.max(0)).astype(int) + pad
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def _axes(face: FaceAnalysis) -> tuple[np.ndarray, np.ndarray]:
    r = face.pose.rotation[:2]
    right = r[:, 0] / np.linalg.norm(r[:, 0])
    down = r[:, 1] / np.linalg.norm(r[:, 1])
    return right, down


def _gap(pts: np.ndarray, pairs: np.ndarray, down: np.ndarray) -> float:
    return float(np.max((pts[pairs[:, 1]] - pts[pairs[:, 0]]) @ down))


def _median_colour(image: np.ndarray, mask: np.ndarray, default) -> np.ndarray:
    sel = image[mask]
    return np.median(sel, axis=0).astype(np.float32) if len(sel) >= 4 else np.asarray(default, np.float32)


def _mouth_colours(face: FaceAnalysis, image: np.ndarray) -> tuple[np.ndarray, float]:
    """Lip colour (for the cavity and tongue) and skin brightness (for the teeth), sampled once per face."""
    if "mouth_colours" not in face.cache:
        topo = topology()
        box = np.array(face.box)
        crop = image[box[1]:box[3], box[0]:box[2]]
        pts = face.landmarks[:, :2] - box[:2]
        outer = pts[list(topo.groups["lips_outer_upper"]) + list(topo.groups["lips_outer_lower"])[-2:0:-1]]
        lips = (_poly_mask(crop.shape[:2], outer) > 0.5) & ~(_poly_mask(crop.shape[:2], pts[topo.loop("lips_inner")])
                                                              > 0.01)
        lip_rgb = _median_colour(crop, lips, (150, 80, 80))
        skin = _median_colour(crop, _poly_mask(crop.shape[:2], pts[[50, 280, 4]]) > 0.5, (180, 140, 120))
        face.cache["mouth_colours"] = (lip_rgb, float(np.clip(skin.mean() / 170.0, 0.45, 1.1)))
    return face.cache["mouth_colours"]


def render_mouth(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, d: Deformation,
                 box: tuple[int, int, int, int], cfg: InteriorConfig) -> np.ndarray:
    topo = topology()
    rx0, ry0 = box[:2]
    off = np.array([rx0, ry0], float)
    src = face.landmarks[:, :2] - off
    tgt = d.target_landmarks - off
    right, down = _axes(face)
    pairs = topo.pairs["lip"]
    src_gap, tgt_gap = max(_gap(src, pairs, down), 0.0), _gap(tgt, pairs, down)
    if tgt_gap <= src_gap + cfg.min_open_px:
        return roi
    poly = tgt[topo.loop("lips_inner")]
    x0, y0, x1, y1 = _bbox(poly, 2, roi.shape[:2])
    if x1 <= x0 or y1 <= y0:
        return roi
    mask = _poly_mask((y1 - y0, x1 - x0), poly - [x0, y0])
    ipd = face.pose.scale

    # Face-frame coordinates of each pixel, in IPD units, relative to the resting mouth centre (skull-fixed).
    centre = (src[13] + src[14]) / 2
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    rel = np.stack([gx - centre[0], gy - centre[1]], -1)
    u = (rel @ right) / ipd
    v = (rel @ down) / ipd
    half = max(0.5 * float(np.linalg.norm(src[308] - src[78])) / ipd * 0.92, 0.05)
    un = np.clip(np.abs(u) / half, 0, 1.5)
    jaw = float(d.displacement_px[152] @ down) / ipd  # mandible travel

    lip_rgb, light = _mouth_colours(face, image)
    cavity = lip_rgb * 0.18 * (0.55 + 0.45 * np.clip(un, 0, 1))[..., None]
    out = np.broadcast_to(cavity, (*u.shape, 3)).copy()
    tongue_top = 0.07 + jaw * 0.75 + 0.12 * un ** 2
    tongue = np.clip((v - tongue_top) / 0.04, 0, 1)[..., None]
    out = out * (1 - tongue) + (lip_rgb * 0.62 * light)[None, None] * tongue

    teeth = np.asarray(cfg.teeth_rgb, np.float32) * light * 0.92
    edge_dist = np.min(np.abs(un[..., None] - TOOTH_EDGES[None, None]), axis=-1)
    gaps = 1.0 - 0.45 * np.exp(-(edge_dist / 0.02) ** 2)
    arch = (1.0 - 0.5 * np.clip(un, 0, 1) ** 2) * np.where(un > 0.78, 0.65, 1.0)
    shade = (gaps * arch)[..., None]
    lower_edge = -0.01 + 0.8 * jaw + 0.035 * un ** 2  # lower incisors rise above the lower lip as the jaw drops
    lower = ((v > lower_edge) & (v < lower_edge + cfg.teeth_height_ipd) & (un < 0.9))[..., None]
    out = np.where(lower, teeth * shade * 0.85, out)  # lower row sits deeper, in more shadow
    upper_edge = cfg.upper_incisal_ipd - 0.05 * un ** 2
    upper = ((v < upper_edge) & (v > upper_edge - cfg.teeth_height_ipd) & (un < 0.9))[..., None]
    near_edge = np.clip((upper_edge - v) / 0.02, 0.75, 1.0)[..., None]  # translucent incisal edge
    out = np.where(upper, teeth * shade * near_edge, out)

    # Lips cast a soft shadow into the mouth.
    inside = (mask > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3) / ipd
    out *= (1.0 - 0.45 * np.exp(-dist / 0.03))[..., None]

    alpha = mask * float(np.clip((tgt_gap - src_gap) / max(tgt_gap, 1e-6) * 1.5, 0, 1))
    patch = roi[y0:y1, x0:x1].astype(np.float32)
    roi = roi.copy()
    roi[y0:y1, x0:x1] = np.clip(patch * (1 - alpha[..., None]) + out * alpha[..., None] + 0.5, 0, 255).astype(np.uint8)
    return roi


def render_eyes(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, d: Deformation,
                box: tuple[int, int, int, int], cfg: InteriorConfig) -> np.ndarray:
    topo = topology()
    off = np.array(box[:2], float)
    src = face.landmarks[:, :2] - off
    tgt = d.target_landmarks - off
    for eye, iris in (("eye_R", 468), ("eye_L", 473)):
        loop = topo.loop(eye)
        if np.abs(tgt[loop] - src[loop]).max() < 0.05:
            continue
        x0, y0, x1, y1 = _bbox(np.vstack([src[loop], tgt[loop]]), 3, roi.shape[:2])
        if x1 <= x0 or y1 <= y0:
            continue
        shape = (y1 - y0, x1 - x0)
        corner = np.array([x0, y0], float)
        m_tgt = _poly_mask(shape, tgt[loop] - corner)
        if m_tgt.max() == 0:
            continue
        m_src = cv2.erode(_poly_mask(shape, src[loop] - corner), np.ones((3, 3), np.uint8))
        static = image[box[1] + y0:box[1] + y1, box[0] + x0:box[0] + x1].astype(np.float32)

        # Continue sclera and iris into what the source lids hid: colours from the visible parts.
        c = src[iris] - corner
        r = float(np.mean(np.linalg.norm(src[iris + 1:iris + 5] - src[iris], axis=1)))
        gx, gy = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]))
        rr = np.hypot(gx - c[0], gy - c[1])
        seen = m_src > 0.9
        iris_rgb = _median_colour(static, seen & (rr < 0.8 * r), (90, 70, 55))
        sclera_sel = static[seen & (rr > 1.15 * r)]
        if len(sclera_sel) >= 4:
            bright = sclera_sel[sclera_sel.sum(1) >= np.median(sclera_sel.sum(1))]
            sclera_rgb = np.median(bright, axis=0)
        else:
            sclera_rgb = np.array([215, 205, 200], np.float32)
        disk = np.clip(r + 0.5 - rr, 0, 1)[..., None]
        limbus = np.clip(1 - np.abs(rr - r) / max(0.18 * r, 0.6), 0, 1)[..., None] * 0.35
        pupil = np.clip(0.42 * r + 0.5 - rr, 0, 1)[..., None]
        synth = sclera_rgb * (1 - disk) + iris_rgb * disk
        synth = synth * (1 - limbus) * (1 - 0.8 * pupil)
        known = m_src[..., None]
        content = static * known + synth * (1 - known)

        # Shadow of the upper lid and lashes along the new lid margin.
        upper = np.round((tgt[list(topo.groups[f"{eye}_upper"])] - corner) * 16).astype(np.int32)
        line = np.full(shape, 255, np.uint8)
        cv2.polylines(line, [upper], False, 0, 1, cv2.LINE_8, shift=4)
        dist = cv2.distanceTransform(line, cv2.DIST_L2, 3)
        content *= (1.0 - cfg.lid_shadow * np.exp(-dist / max(0.02 * face.pose.scale, 0.7)))[..., None]

        a = m_tgt[..., None]
        roi = roi.copy()
        patch = roi[y0:y1, x0:x1].astype(np.float32)
        roi[y0:y1, x0:x1] = np.clip(patch * (1 - a) + content * a + 0.5, 0, 255).astype(np.uint8)
    return roi
