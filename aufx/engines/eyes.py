"""The eyeball where lids open or close.

The eyeball does not move with expressions, so inside the target lid opening the original pixels are shown in place
(the iris stays round); where the lids reveal what the photo never showed, sclera and iris are continued from their
own colours.
"""
from __future__ import annotations

import cv2
import numpy as np

from aufx.engines.deform import Deformation
from aufx.engines.interiors import InteriorConfig, bbox, median_colour, poly_mask
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology


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
        x0, y0, x1, y1 = bbox(np.vstack([src[loop], tgt[loop]]), 3, roi.shape[:2])
        if x1 <= x0 or y1 <= y0:
            continue
        shape = (y1 - y0, x1 - x0)
        corner = np.array([x0, y0], float)
        m_tgt = poly_mask(shape, tgt[loop] - corner)
        if m_tgt.max() == 0:
            continue
        m_src = cv2.erode(poly_mask(shape, src[loop] - corner), np.ones((3, 3), np.uint8))
        static = image[box[1] + y0:box[1] + y1, box[0] + x0:box[0] + x1].astype(np.float32)

        # Continue sclera and iris into what the source lids hid: colours from the visible parts.
        c = src[iris] - corner
        r = float(np.mean(np.linalg.norm(src[iris + 1:iris + 5] - src[iris], axis=1)))
        gx, gy = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]))
        rr = np.hypot(gx - c[0], gy - c[1])
        seen = m_src > 0.9
        iris_rgb = median_colour(static, seen & (rr < 0.8 * r), (90, 70, 55))
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
