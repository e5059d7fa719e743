"""The inside of the mouth where lips part.

A dark cavity with a tongue and two rows of teeth. The upper teeth are fixed to the skull (they stay where the
source mouth was), the lower teeth ride on the mandible (they follow the chin), so neither is ever stretched.
"""
from __future__ import annotations

import cv2
import numpy as np

from aufx.engines.deform import Deformation
from aufx.engines.interiors import InteriorConfig, face_axes, bbox, aperture_gap, median_colour, poly_mask
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology

# Tooth boundaries across the visible arch, as a fraction of its half-width (incisors, laterals, canines, premolars).
TOOTH_EDGES = np.array([0.0, 0.21, 0.38, 0.53, 0.66, 0.78, 0.9])


def _mouth_colours(face: FaceAnalysis, image: np.ndarray) -> tuple[np.ndarray, float]:
    """Lip colour (for the cavity and tongue) and skin brightness (for the teeth), sampled once per face."""
    if "mouth_colours" not in face.cache:
        topo = topology()
        box = np.array(face.box)
        crop = image[box[1]:box[3], box[0]:box[2]]
        pts = face.landmarks[:, :2] - box[:2]
        outer = pts[list(topo.groups["lips_outer_upper"]) + list(topo.groups["lips_outer_lower"])[-2:0:-1]]
        lips = (poly_mask(crop.shape[:2], outer) > 0.5) & ~(poly_mask(crop.shape[:2], pts[topo.loop("lips_inner")])
                                                              > 0.01)
        lip_rgb = median_colour(crop, lips, (150, 80, 80))
        skin = median_colour(crop, poly_mask(crop.shape[:2], pts[[50, 280, 4]]) > 0.5, (180, 140, 120))
        face.cache["mouth_colours"] = (lip_rgb, float(np.clip(skin.mean() / 170.0, 0.45, 1.1)))
    return face.cache["mouth_colours"]


def render_mouth(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, d: Deformation,
                 box: tuple[int, int, int, int], cfg: InteriorConfig) -> np.ndarray:
    topo = topology()
    rx0, ry0 = box[:2]
    off = np.array([rx0, ry0], float)
    src = face.landmarks[:, :2] - off
    tgt = d.target_landmarks - off
    right, down = face_axes(face)
    pairs = topo.pairs["lip"]
    src_gap, tgt_gap = max(aperture_gap(src, pairs, down), 0.0), aperture_gap(tgt, pairs, down)
    if tgt_gap <= src_gap + cfg.min_open_px:
        return roi
    poly = tgt[topo.loop("lips_inner")]
    x0, y0, x1, y1 = bbox(poly, 2, roi.shape[:2])
    if x1 <= x0 or y1 <= y0:
        return roi
    mask = poly_mask((y1 - y0, x1 - x0), poly - [x0, y0])
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
