"""The photo's own folds eased where the edit takes away the AU that makes them.

Relief shading (shading.py) draws the folds an edit adds. A photo that already shows an expression carries that
expression's folds: a smiling face its nasolabial folds, its lifted cheeks and crow's feet. When the edit takes the
smile away, the warp pulls the cheek back down over the fold and squeezes the photo's soft fold into a hard dark
line. So before the warp, the photo is eased around the strokes of every AU the edit decreases (au_appearance.yaml,
placed on the photo's own landmarks): its shading at the scale of folds (luma blurred finer than a fold, against
luma blurred wider than one) is divided out in proportion to how much of the AU is taken away. The fold and its
bulge flatten toward the skin around them; eyes, brows, lips and whatever is not skin stay. Skin texture stays too:
shading finer than ``texture_ipd`` (freckles, pores) is eased only on a crease's core, where the stroke lies, so a
smile taken away leaves a cheek with its freckles, not an airbrushed one.

Per face (cached): the photo's shading at the scale of folds, and each channel's eased band (strokes x skin x not a
feature) the first time an edit eases it; per edit, only the strongest ease per pixel times that shading.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from aufx.model.basis import basis
from aufx.model.deform import Deformation
from aufx.engines.interiors import bbox, not_features
from aufx.engines.photometry import PhotometryConfig, luminance, photometry, skin_brightness, unclipped_channel
from aufx.engines.shading import appearance, draw_tapered, stroke_polyline
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology


@dataclass(frozen=True)
class RelaxConfig:
    """How far the photo's own folds ease when their AU is taken away."""

    enabled: bool = True
    full_at: float = 0.5  # a decrease of this much (normalised AU units) eases a fold as far as it goes...
    max_ease: float = 0.9  # ...which is this share of its shading (the folds a face keeps at rest stay, faintly)
    reach: float = 2.0  # the eased band: the stroke blurred by this x its width (sigma), so the bulge beside it too
    detail_ipd: float = 0.012  # shading finer than this (sigma, IPD) is kept everywhere...
    texture_ipd: float = 0.03  # ...finer than this (freckles, pores) is eased only on a crease's core (the stroke
    # blurred by its own width), the sharp line of the fold; coarser shading is eased across the whole band
    context_ipd: float = 0.2  # the skin a fold eases toward is the luma blurred by this (IPD): wider than the photo's
    # own folds, which are wider than the strokes that draw new ones
    keep_out_ipd: float = 0.03  # eye openings, brows and lips grown by this (IPD) are never eased
    texture_full: float = 0.015  # skin this smooth (Photometry.texture) eases fully; rougher skin in proportion:
    # much of an aged face's shading at the scale of folds is wrinkles it keeps at rest (Grace Hopper: 0.032)
    close_ipd: float = 0.05  # holes in the skin map up to this radius (IPD; the photo's folds, freckles) are skin
    taper: float = 0.5  # the band fades in over this share of a stroke's length, as the relief does
    min_band: float = 0.01  # a band ends where it falls below this
    work_ipd: float = 120.0  # larger faces are eased on a grid k x coarser (k whole, IPD / k <= this): folds are
    # smooth at that scale, and a 1000-px face in a 10900^2 photo needs no full-resolution float maps


@dataclass
class _Bands:
    """One face's eased bands on a grid ``k`` image px per cell whose cell (0, 0) starts at ``origin`` (x, y image
    px): the log of the photo's shading over the grid, (2, gh, gw) float32: between the texture and context scales
    (eased on the band), and between the detail and texture scales (on the core); the skin there (gh, gw) float32,
    eyes, brows and lips left out; and per channel its creases' strokes (grid-cell polylines (k, 2) with their
    widths in image px). A channel's band is built the first time an edit eases it (``channel``): most edits ease
    none or a few of them, and a new photo (every Live frame) paid for all of them."""

    origin: tuple[int, int]
    k: int
    log_shade: np.ndarray
    skin: np.ndarray
    strokes: dict[str, list[tuple[np.ndarray, float]]]
    built: dict = field(default_factory=dict)

    def channel(self, ch: str, cfg: RelaxConfig) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """Where ``ch``'s band is (x0, y0, x1, y1 grid cells) and there the band and the creases' core, each (2, bh,
        bw) float32 0..1; None where it has no strokes on the grid or no band on skin."""
        if ch not in self.built:
            self.built[ch] = _channel_band(self.strokes.get(ch, []), self.skin, self.k, cfg)
        return self.built[ch]


def relax_folds(image: np.ndarray, face: FaceAnalysis, d: Deformation, region: tuple[int, int, int, int],
                cfg: RelaxConfig = RelaxConfig(), photo: PhotometryConfig = PhotometryConfig()
                ) -> tuple[np.ndarray, tuple[int, int]]:
    """What the warp samples inside ``region`` (x0, y0, x1, y1 image px) of ``image`` (H, W, 3) uint8, with the folds
    of every AU ``d`` decreases eased, and where it lies: (``image`` itself, (0, 0)) when nothing is eased, else
    (a copy of the region only, eased, (x0, y0)): a photo of 10900^2 px is not copied whole."""
    if not cfg.enabled:
        return image, (0, 0)
    b = basis()
    pm = photometry(image, face, photo)
    full = cfg.max_ease * min(1.0, cfg.texture_full / max(pm.texture, 1e-6))
    ease = {ch: full * min(1.0, -float(d.delta[b.index(ch)]) / cfg.full_at) for ch in b.channels
            if d.delta[b.index(ch)] < -1e-3}
    if not ease:
        return image, (0, 0)
    bands = _bands(image, face, cfg, photo)
    active = [(e, band) for e, band in ((ease[ch], bands.channel(ch, cfg)) for ch in ease) if band is not None]
    if not active:
        return image, (0, 0)
    x0, y0 = min(bx[0] for _, (bx, _) in active), min(bx[1] for _, (bx, _) in active)
    x1, y1 = max(bx[2] for _, (bx, _) in active), max(bx[3] for _, (bx, _) in active)
    most = np.zeros((2, y1 - y0, x1 - x0), np.float32)  # where bands of several AUs overlap, the strongest ease
    for e, ((bx0, by0, bx1, by1), band) in active:
        sub = most[:, by0 - y0:by1 - y0, bx0 - x0:bx1 - x0]
        np.maximum(sub, band * np.float32(e), out=sub)
    log_gain = -(most * bands.log_shade[:, y0:y1, x0:x1]).sum(axis=0)
    k = bands.k
    if k > 1:  # cell centres sit at image px k * (cell + 0.5) - 0.5, as cv2.resize by a whole factor has them
        log_gain = cv2.resize(log_gain, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR)
    rx0, ry0, rx1, ry1 = region
    out = image[ry0:ry1, rx0:rx1].copy()
    # the eased box, in image px, cut to the region
    ox, oy = bands.origin[0] + k * x0, bands.origin[1] + k * y0
    cx0, cy0 = max(ox, rx0), max(oy, ry0)
    cx1, cy1 = min(ox + log_gain.shape[1], rx1, image.shape[1]), min(oy + log_gain.shape[0], ry1, image.shape[0])
    if cx1 <= cx0 or cy1 <= cy0:
        return out, (rx0, ry0)
    dg = np.exp(log_gain[cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox])
    dg -= 1.0
    dg2 = dg * dg
    gain = np.empty_like(dg)
    src = image[cy0:cy1, cx0:cx1]
    # on overexposed skin, channels the photo clipped are eased from the skin's true colour
    bright = skin_brightness(src, pm.skin_rgb, photo.clip_level) if pm.overexposed else None
    # shading on skin is redder: gain ** tint per channel, to second order (as the relief's); one channel at a time
    # into preallocated planes, so a photo of 10900^2 px holds no (h, w, 3) float copies
    for c, t in enumerate(pm.tint.astype(np.float32)):
        np.multiply(dg, t, out=gain)
        gain += 0.5 * t * (t - 1.0) * dg2
        gain += 1.0
        gain *= src[..., c] if bright is None else unclipped_channel(src, c, pm.skin_rgb, bright, photo.clip_level)
        gain += 0.5
        out[cy0 - ry0:cy1 - ry0, cx0 - rx0:cx1 - rx0, c] = np.clip(gain, 0, 255, out=gain)
    return out, (rx0, ry0)


def _bands(image: np.ndarray, face: FaceAnalysis, cfg: RelaxConfig, photo: PhotometryConfig) -> _Bands:
    key = ("relax_bands", cfg, photo)
    if key not in face.cache:
        face.cache[key] = _build_bands(image, face, cfg, photo)
    return face.cache[key]


def _build_bands(image: np.ndarray, face: FaceAnalysis, cfg: RelaxConfig, photo: PhotometryConfig) -> _Bands:
    """The work grid over every channel's strokes (lid closure aside: the lids are the eyes' business), the photo's
    shading and skin on it, and each channel's strokes in grid cells; the bands themselves come per channel."""
    k = max(1, int(np.ceil(face.pose.scale / cfg.work_ipd)))
    ipd = face.pose.scale / k
    b = basis()
    lids = set(b.ties) | set(b.ties.values())
    # the photo's creases, not the broad shadows of the face's form beside them (the context blur covers those)
    looks = {ch: creases for ch, (strokes, _) in appearance().items() if ch not in lids
             and (creases := [st for st in strokes if not st.form])}
    polys = {ch: [(stroke_polyline(st.anchors, face.landmarks[:, :2]), st.width * face.pose.scale) for st in strokes]
             for ch, strokes in looks.items()}  # image px
    allpts = np.vstack([p for items in polys.values() for p, _ in items])
    pad = k * int(np.ceil(3 * max(cfg.reach * max(w for items in polys.values() for _, w in items) / k,
                                  cfg.context_ipd * ipd)) + 2)
    h, w = image.shape[:2]
    x0, y0 = max(int(allpts[:, 0].min()) - pad, 0), max(int(allpts[:, 1].min()) - pad, 0)
    x1, y1 = min(int(allpts[:, 0].max()) + pad + 1, w), min(int(allpts[:, 1].max()) + pad + 1, h)
    x1, y1 = x0 + (x1 - x0) // k * k, y0 + (y1 - y0) // k * k  # whole cells
    box = (x0, y0, x1, y1)
    size = ((x1 - x0) // k, (y1 - y0) // k)
    crop = image[y0:y1, x0:x1]
    y = luminance(cv2.resize(crop, size, interpolation=cv2.INTER_AREA) if k > 1 else crop) + 1.0
    # skin, with the photo's folds and freckles in it (the skin map leaves out their darkest pixels): closed
    close = 2 * max(1, int(round(cfg.close_ipd * ipd))) + 1
    skin = photometry(image, face, photo).skin_at(*box)
    skin = cv2.morphologyEx(cv2.resize(skin, size, interpolation=cv2.INTER_AREA) if k > 1 else skin,
                            cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close, close)))
    skin *= not_features(face, box, k, cfg.keep_out_ipd)
    fine = cv2.GaussianBlur(y, (0, 0), max(cfg.detail_ipd * ipd, 0.5))
    texture = cv2.GaussianBlur(y, (0, 0), max(cfg.texture_ipd * ipd, 0.5))
    wide = cv2.GaussianBlur(y, (0, 0), cfg.context_ipd * ipd)
    strokes = {ch: [((poly - (x0, y0) + 0.5) / k - 0.5, wd) for poly, wd in items] for ch, items in polys.items()}
    return _Bands((x0, y0), k, np.stack([np.log(texture / wide), np.log(fine / texture)]), skin, strokes)


def _channel_band(strokes: list[tuple[np.ndarray, float]], skin: np.ndarray, k: int,
                  cfg: RelaxConfig) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """One channel's band and creases' core on the work grid (see _Bands.channel) from its ``strokes`` (grid-cell
    polylines, widths in image px) and the ``skin`` (gh, gw) there. Each stroke is drawn and blurred in its own box,
    as wide as its blur reaches (OpenCV's float kernels end at 4 sigma), and the band is kept over the union of the
    strokes' boxes: boxes over the whole face made this the slowest step of a new photo."""
    placed = []
    for cells, wd in strokes:
        box = bbox(cells, int(np.ceil(4 * max(cfg.reach * wd / k, 1.0))) + 5, skin.shape)
        if box[2] > box[0] and box[3] > box[1]:
            placed.append((cells, wd, box))
    if not placed:
        return None
    ux0, uy0 = min(st[2][0] for st in placed), min(st[2][1] for st in placed)
    ux1, uy1 = max(st[2][2] for st in placed), max(st[2][3] for st in placed)
    band = np.zeros((2, uy1 - uy0, ux1 - ux0), np.float32)  # the band, the creases' core
    for cells, wd, (bx0, by0, bx1, by1) in placed:
        line = np.zeros((by1 - by0, bx1 - bx0), np.float32)
        cells = cells - (bx0, by0)
        if len(cells) == 1:
            c = np.round(cells[0]).astype(int)
            cv2.circle(line, (int(c[0]), int(c[1])), 1, 1.0, -1)
        else:
            draw_tapered(line, cells, cfg.taper)
        for i, sigma in enumerate((cfg.reach * wd / k, wd / k)):
            layer = cv2.GaussianBlur(line, (0, 0), max(sigma, 1.0))
            peak = float(layer.max())
            if peak > 0:
                dst = band[i, by0 - uy0:by1 - uy0, bx0 - ux0:bx1 - ux0]
                np.maximum(dst, layer / peak, out=dst)
    band *= skin[uy0:uy1, ux0:ux1]
    ys, xs = np.nonzero(band[0] > cfg.min_band)
    if not len(xs):
        return None
    sub = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return ((sub[0] + ux0, sub[1] + uy0, sub[2] + ux0, sub[3] + uy0),
            np.ascontiguousarray(band[:, sub[1]:sub[3], sub[0]:sub[2]]))
