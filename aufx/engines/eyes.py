"""The eyeball where lids open or close, and the upper lid where it closes.

The eyeball does not move with expressions, so inside the target lid opening the original pixels are shown in place
(the iris stays round); where the lids reveal what the photo never showed, sclera and iris are continued from their
own colours. A closing upper lid is the person's own lid skin: the visible band between the skin ring above the lid
and the lash line, stretched from that ring down to the new margin (along the lid, so nothing of the eyeball is
smeared into it), with the photo's grain, and a dark lash line sized by the IPD along the new margin.
"""
from __future__ import annotations

import cv2
import numpy as np

from aufx.model.deform import Deformation
from aufx.engines.interiors import InteriorConfig, bbox, face_axes, median_colour, poly_mask
from aufx.engines.photometry import grain, luminance, photometry
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology

# MediaPipe face-mesh annotations rightEyeUpper2 / leftEyeUpper2: the second skin ring above each upper lid margin
# (the first hugs the lashes on small faces), outer corner to inner corner like the margins in face_regions.json
LID_RING = {"eye_R": (113, 225, 224, 223, 222, 221, 189), "eye_L": (342, 445, 444, 443, 442, 441, 413)}


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
            roi = _closing_lid(roi, image, face, eye, src, tgt, box, cfg)
            continue
        m_src = poly_mask(shape, src[loop] - corner)
        if m_tgt.sum() > m_src.sum():  # an opening eye: the photo's rim pixels are lid and lashes, not eyeball
            m_src = cv2.erode(m_src, np.ones((3, 3), np.uint8))
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

        # Shadow of the upper lid and lashes along the new lid margin, where that margin is new: synthesized
        # eyeball, and the photo's eyeball under a lid that came down (a margin that stays has its shadow already)
        margin = list(topo.groups[f"{eye}_upper"])
        upper = np.round((tgt[margin] - corner) * 16).astype(np.int32)
        line = np.full(shape, 255, np.uint8)
        cv2.polylines(line, [upper], False, 0, 1, cv2.LINE_8, shift=4)
        dist = cv2.distanceTransform(line, cv2.DIST_L2, 3)
        reach = max(0.02 * face.pose.scale, 0.7)
        _, down = face_axes(face)
        moved = float(np.clip(np.mean((tgt[margin] - src[margin]) @ down) / (2 * reach), 0, 1))
        where = (1 - known) + known * moved
        content *= (1.0 - cfg.lid_shadow * where * np.exp(-dist / reach)[..., None])

        a = m_tgt[..., None]
        roi = roi.copy()
        patch = roi[y0:y1, x0:x1].astype(np.float32)
        roi[y0:y1, x0:x1] = np.clip(patch * (1 - a) + content * a + 0.5, 0, 255).astype(np.uint8)
        roi = _closing_lid(roi, image, face, eye, src, tgt, box, cfg)
    return roi


def _frame(corner0: np.ndarray, corner1: np.ndarray, down: np.ndarray):
    """Eye frame: origin at the outer corner, x along the eye (u = 0..1 corner to corner), y across it (down)."""
    ex = corner1 - corner0
    length = float(np.linalg.norm(ex)) + 1e-9
    ex = ex / length
    ey = np.array([-ex[1], ex[0]])
    return corner0, ex, (ey if ey @ down >= 0 else -ey), length


def _curve(points: np.ndarray, frame, u: np.ndarray) -> np.ndarray:
    """A contour as a function of u: its y in the frame at each u (held flat beyond its ends)."""
    o, ex, ey, length = frame
    pu, py = (points - o) @ ex / length, (points - o) @ ey
    order = np.argsort(pu)
    return np.interp(u, pu[order], py[order])


def _closing_lid(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, eye: str, src: np.ndarray,
                 tgt: np.ndarray, box: tuple[int, int, int, int], cfg: InteriorConfig) -> np.ndarray:
    """Repaint the upper lid between its skin ring and the lowered margin with the person's own lid skin, and
    draw the lash line along the new margin. ``src``/``tgt`` are landmarks in ROI pixels."""
    topo = topology()
    margin = np.array(topo.groups[f"{eye}_upper"])
    ring = np.array(LID_RING[eye])
    _, down = face_axes(face)
    if float(np.mean((tgt[margin[1:-1]] - src[margin[1:-1]]) @ down)) < 0.5:
        return roi  # the lid does not come down: the warp has it
    pm = photometry(image, face)
    ipd = face.pose.scale
    x0, y0, x1, y1 = bbox(np.vstack([tgt[margin], tgt[ring]]), 3, roi.shape[:2])
    if x1 <= x0 or y1 <= y0:
        return roi
    ft = _frame(tgt[margin[0]], tgt[margin[-1]], down)
    fs = _frame(src[margin[0]], src[margin[-1]], down)
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    rel = np.stack([gx - ft[0][0], gy - ft[0][1]], axis=-1)
    u = rel @ ft[1] / ft[3]
    y = rel @ ft[2]
    uc = np.clip(u, 0.0, 1.0)
    # the ring reaches past the eye corners: the lid region runs out to its ends, above the corners' line
    top, bottom = _curve(tgt[ring], ft, u), _curve(tgt[margin], ft, u)
    v = np.clip((y - top) / np.maximum(bottom - top, 1e-3), 0.0, 1.0)

    # the source band: from the ring down to just above the photo's own lashes, same u
    s_top, s_bottom = _curve(src[ring], fs, u), _curve(src[margin], fs, u)
    gap = np.minimum(cfg.lid_lash_gap_ipd * ipd, 0.5 * np.maximum(s_bottom - s_top, 0.0))
    skip = 0.1 * np.maximum(s_bottom - gap - s_top, 0.0)  # below the ring's crease shadow (and any frame edge)
    s_y = s_top + skip + v * (s_bottom - gap - s_top - skip)
    sx = fs[0][0] + u * fs[3] * fs[1][0] + s_y * fs[2][0] + box[0]
    sy = fs[0][1] + u * fs[3] * fs[1][1] + s_y * fs[2][1] + box[1]
    skin = cv2.remap(image, sx.astype(np.float32), sy.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    # stretching smooths the grain: add back what it lost, at the photo's own level
    stretch = (bottom - top) / np.maximum(s_bottom - gap - s_top, 0.5)
    lost = pm.noise * np.sqrt(np.clip(1.0 - 1.0 / np.maximum(stretch, 1.0) ** 2, 0.0, 1.0))
    skin += (lost * grain(max(roi.shape[:2]), 11)[y0:y1, x0:x1])[..., None]
    skin *= (1.0 - 0.12 * v * v)[..., None]  # the lid turns under towards its margin

    ring_u = (tgt[ring] - ft[0]) @ ft[1] / ft[3]
    ends = np.clip((u - ring_u.min()) / 0.1, 0, 1) * np.clip((ring_u.max() - u) / 0.1, 0, 1)
    # a shut eye (the lower margin within a pixel of the upper) keeps no sliver of eyeball: the lid covers it
    lower = _curve(tgt[np.array(topo.groups[f"{eye}_lower"])], ft, u)
    floor = np.where(lower - bottom < 1.0, np.maximum(bottom, lower) + 1.2, bottom)
    a = np.clip((y - top) / 1.5 + 0.5, 0, 1) * np.clip((floor - y) / 0.7 + 0.5, 0, 1) * ends
    inside = (u > 0) & (u < 1)
    # a shut lid comes forward out of the socket's shadow: lift it part way towards the brow-bone skin above it
    above = _samples(image, src[ring] + box[:2] - down * 0.05 * ipd)
    lid = a > 0.5
    if lid.any() and len(above):
        lid_luma = float(np.median(luminance(np.clip(skin[lid], 0, 255)[None].astype(np.uint8))))
        bone_luma = float(np.median(luminance(above[None])))
        skin *= float(np.clip((bone_luma / max(lid_luma, 1.0)) ** 0.3, 1.0, 1.12))
    patch = roi[y0:y1, x0:x1].astype(np.float32)
    patch = patch * (1 - a[..., None]) + skin * a[..., None]

    # the lash line: dark, thickest over the middle and outer lid, hanging just below the margin
    lash_px = max(cfg.lash_width_ipd * ipd, 1.0)
    sigma = float(np.hypot(0.5 * lash_px, pm.blur_px))
    along = np.sin(np.pi * uc) ** 0.35 * (1.0 - 0.25 * uc) * inside
    la = cfg.lash_strength * along * np.exp(-0.5 * ((y - bottom - 0.25 * lash_px) / sigma) ** 2)
    patch = patch * (1 - la[..., None]) + _lash_colour(image, src[margin] + box[:2]) * la[..., None]
    out = roi.copy()
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    return out


def _samples(image: np.ndarray, poly: np.ndarray, rows: int = 1) -> np.ndarray:
    """(n, 3) pixels along a polyline (image coordinates), and ``rows - 1`` rows above it."""
    pts = np.concatenate([np.linspace(a, b, 6, endpoint=False) for a, b in zip(poly[:-1], poly[1:])])
    xy = np.round(pts).astype(int)
    h, w = image.shape[:2]
    xy = xy[(xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= rows - 1) & (xy[:, 1] < h)]
    return np.concatenate([image[xy[:, 1] - k, xy[:, 0]] for k in range(rows)]).reshape(-1, 3)


def _lash_colour(image: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """The person's own lash colour: the darkest pixels along the photo's upper lid margin."""
    rgb = _samples(image, margin, rows=2).astype(np.float32)
    if len(rgb) < 4:
        return np.array([40, 30, 28], np.float32)
    lum = luminance(rgb[None].astype(np.uint8))[0]
    return np.median(rgb[lum <= np.percentile(lum, 15)], axis=0)
