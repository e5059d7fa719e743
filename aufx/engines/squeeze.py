"""Skin the warp squeezes hard folds under: no staircase, a shadow.

Where an edit takes a brow far down onto its lid (a preset that takes away a photo's raised brows and adds AU04:
of_sample6's "anger" squeezes the skin between brow and lid into a few pixels, up to 6 photo pixels into one), the
warp samples the squeezed band only every few photo pixels: the brow's lower edge comes out as a staircase over a
thin line of lit brow-bone skin, a hard cut. Real skin there folds under the brow, into its shadow. Where the
backward maps compress the photo by more than ``from_squeeze`` along their most compressed direction (the largest
singular value of their Jacobian, read every ``step_ipd``), the band is resampled from the photo's skin blurred as
much as the squeeze averages (an output pixel that covers q photo pixels shows their mean, as a mip-map does) and,
along bands at least ``min_fold_ipd`` long, darkened as a fold's valley is, the more the further it is squeezed
(``depth`` at ``full_squeeze``), softly and in the skin's tint, with the photo's grain at its own level (it lies on
the photo's pixels, not on the skin). Eyes and lips, whose lines the interior layers draw, are left to them. Most
edits squeeze no skin that far and pay one strided Jacobian.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aufx.model.deform import Deformation
from aufx.engines.channels import planes
from aufx.engines.field import map_scales
from aufx.engines.interiors import normalized_blur
from aufx.engines.photometry import Photometry, grain, tinted
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology


@dataclass(frozen=True)
class SqueezeConfig:
    """Where squeezed skin folds under, and how dark the fold is."""

    enabled: bool = True
    from_squeeze: float = 2.5  # photo pixels per output pixel (most compressed direction) below which skin is warped
    # as it is (a smile bunches the cheek beside its corners up to 2-2.8x)...
    full_squeeze: float = 5.0  # ...and from which on it is a full fold (a brow taken down onto its lid: up to 6x)
    soft_from: float = 1.5  # the resampling from the blurred photo fades in from this squeeze to from_squeeze
    depth: float = 0.35  # the share of the light a full fold takes away...
    min_fold_ipd: float = 0.2  # ...along a squeezed band at least this long (IPD): a short one, beside a lip corner
    # pulled down, shaded as a fold was a dark dash
    fold_blur_ipd: float = 0.02  # the fold's shadow is at least this soft (sigma, IPD): a fold is wider than the
    # band the warp squeezes it into
    blur_per_squeeze: float = 0.3  # the squeezed band is resampled from the photo blurred by this x its squeeze
    # (sigma, px: a box of q pixels has a standard deviation of 0.29 q)
    step_ipd: float = 0.02  # the squeeze is read every this much (IPD): finer than the thinnest fold
    keep_out_ipd: float = 0.03  # lips grown by this are left to their layer...
    eye_keep_out_ipd: float = 0.07  # ...and eyes grown by this, with the lower lid below them: a lid that closes
    # squeezes the skin under the lower lid into the field's fold, and the lid layers draw that skin


def fold_squeezed(roi: np.ndarray, source: tuple[np.ndarray, tuple[int, int]], maps: tuple[np.ndarray, np.ndarray],
                  face: FaceAnalysis, d: Deformation, box: tuple[int, int, int, int], pm: Photometry,
                  cfg: SqueezeConfig = SqueezeConfig()) -> np.ndarray:
    """``roi`` (h, w, 3) uint8, the warped face region at ``box`` (x0, y0, x1, y1 image px), with the skin the warp
    squeezes hard resampled softly and shaded as a fold; ``source`` is what the warp sampled ((H', W', 3) uint8)
    and the image pixel of its first pixel, ``maps`` (each (h, w) float32) the backward maps into it; ``pm`` the
    photo's Photometry."""
    if not cfg.enabled:
        return roi
    h, w = roi.shape[:2]
    step = max(1, int(round(cfg.step_ipd * face.pose.scale)))
    _, squeeze = map_scales(maps[0], maps[1], step)
    if float(squeeze.max()) < cfg.from_squeeze:
        return roi
    part = _around(squeeze >= cfg.from_squeeze, step, (h, w), pm)
    size = (-(-w // step) * step, -(-h // step) * step)  # the strided grid brought back to pixels
    full = cv2.resize(squeeze, size, interpolation=cv2.INTER_LINEAR)
    q = full[part[1]:part[3], part[0]:part[2]] * _skin_only(part, face, d, box, cfg)  # on skin only
    if float(q.max()) < cfg.from_squeeze:
        return roi  # only the eyes and lips are squeezed (lids and lips that close): their layers draw them
    x0, y0, x1, y1 = part = _around(q >= cfg.from_squeeze, 1, q.shape, pm, part[:2])
    q = full[y0:y1, x0:x1] * _skin_only(part, face, d, box, cfg)
    mx, my = maps[0][y0:y1, x0:x1], maps[1][y0:y1, x0:x1]

    # what an output pixel covering q photo pixels shows: their mean, the photo blurred by blur_per_squeeze x q;
    # resampled from two blurred copies (at the fold's threshold and at the most squeezed pixel) and the sharp warp,
    # piecewise linearly in q from where steps begin to show (soft_from), as a mip-map is
    patch = roi[y0:y1, x0:x1].astype(np.float32)
    below, lo = patch, cfg.soft_from
    share = np.zeros(q.shape, np.float32)  # how much of the photo's grain the averaging took away
    for level in sorted({cfg.from_squeeze, float(q.max())}):  # a telescoping sum: each layer takes over from the last
        sigma = cfg.blur_per_squeeze * level
        layer = _blurred(source, face, mx, my, sigma, cfg.keep_out_ipd)
        t = np.clip((q - lo) / (level - lo), 0.0, 1.0)
        patch = patch + (layer - below) * t[..., None]
        share = np.maximum(share, t * (1.0 - 1.0 / max(1.0, 2.0 * np.sqrt(np.pi) * sigma)))
        below, lo = layer, level
    fold = np.clip((q - cfg.from_squeeze) / (cfg.full_squeeze - cfg.from_squeeze), 0.0, 1.0)
    fold = fold * fold * (3.0 - 2.0 * fold) * _long(q >= cfg.from_squeeze, cfg.min_fold_ipd * face.pose.scale)
    # the fold's shadow, as soft as the photo
    gain = 1.0 - cfg.depth * cv2.GaussianBlur(fold, (0, 0), max(pm.blur_px, cfg.fold_blur_ipd * face.pose.scale, 0.5))
    # the photo's grain lies on its pixels, not on the skin: what the blur and the shadow took of it comes back
    kept = (1.0 - share) * gain
    bh, bw = share.shape
    lost = pm.noise * np.sqrt(np.clip(1.0 - kept * kept, 0.0, 1.0)) * grain(max(bh, bw), 23)[:bh, :bw]
    out = roi.copy()
    out[y0:y1, x0:x1] = np.clip(patch * tinted(gain, pm.tint) + planes(lost) + 0.5, 0, 255).astype(np.uint8)
    return out


def _long(squeezed: np.ndarray, length: float) -> np.ndarray:
    """(h, w) float32: 1 on the pieces of ``squeezed`` (h, w) bool that run at least ``length`` px, 0 elsewhere: skin
    folds along a band."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(squeezed.astype(np.uint8), connectivity=8)
    runs = np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= length
    runs[0] = False  # the background
    return runs[labels].astype(np.float32)


def _blurred(source: tuple[np.ndarray, tuple[int, int]], face: FaceAnalysis, mx: np.ndarray, my: np.ndarray,
             sigma: float, reach: float) -> np.ndarray:
    """(h, w, 3) float32: the ``source`` image (its pixels, the image pixel of the first) blurred by ``sigma`` px
    where the maps ``mx``, ``my`` (h, w) read it, sampled there (bilinear: the blur leaves nothing finer). Only its
    skin is averaged, the photo's lips and eyes grown by ``reach`` (IPD) left out: a lip corner pulled down squeezes
    the photo's own dark commissure in with the skin beside it, and their mean was a grey dash."""
    image, (ox, oy) = source
    sx0, sy0 = (max(0, int(np.floor(m.min() - 3 * sigma)) - 1) for m in (mx, my))
    sx1 = min(image.shape[1], int(np.ceil(mx.max() + 3 * sigma)) + 2)
    sy1 = min(image.shape[0], int(np.ceil(my.max() + 3 * sigma)) + 2)
    features = _grown(face.landmarks[:, :2], (ox + sx0, oy + sy0), (sy1 - sy0, sx1 - sx0), face.pose.scale,
                      ((("lips_outer", "eye_R", "eye_L"), reach),))
    skin = 1.0 - features.astype(np.float32)
    soft = normalized_blur(image[sy0:sy1, sx0:sx1].astype(np.float32), skin, sigma)
    return cv2.remap(soft, mx - np.float32(sx0), my - np.float32(sy0), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _around(where: np.ndarray, step: int, shape: tuple[int, int], pm: Photometry,
            at: tuple[int, int] = (0, 0)) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) px of the roi: the box of the ``where`` (strided by ``step``, first cell at ``at``) cells,
    grown by room for the photo's blur, within ``shape`` (h, w) (offset by ``at``)."""
    ys, xs = np.nonzero(where)
    pad = 2 * step + int(np.ceil(3 * max(pm.blur_px, 1.0)))
    x0, y0 = max(0, int(xs.min()) * step - pad), max(0, int(ys.min()) * step - pad)
    x1, y1 = min(shape[1], (int(xs.max()) + 1) * step + pad), min(shape[0], (int(ys.max()) + 1) * step + pad)
    return at[0] + x0, at[1] + y0, at[0] + x1, at[1] + y1


def _skin_only(part: tuple[int, int, int, int], face: FaceAnalysis, d: Deformation, box: tuple[int, int, int, int],
               cfg: SqueezeConfig) -> np.ndarray:
    """(y1 - y0, x1 - x0) float32 over ``part`` (x0, y0, x1, y1 px of the roi at ``box``): 0 on the target's lips
    and eyes grown by ``keep_out_ipd`` and ``eye_keep_out_ipd`` (their layers draw them: closing lips and lids
    squeeze what lies between them by design), 1 elsewhere, soft edged."""
    out = _grown(d.target_landmarks, (box[0] + part[0], box[1] + part[1]), (part[3] - part[1], part[2] - part[0]),
                 face.pose.scale, ((("lips_outer",), cfg.keep_out_ipd), (("eye_R", "eye_L"), cfg.eye_keep_out_ipd)))
    return 1.0 - cv2.GaussianBlur(out.astype(np.float32), (0, 0), 1.0)


def _grown(landmarks: np.ndarray, origin: tuple[float, float], shape: tuple[int, int], ipd: float,
           groups: tuple[tuple[tuple[str, ...], float], ...]) -> np.ndarray:
    """(h, w) uint8 over ``shape`` (h, w) whose first pixel is image px ``origin`` (x, y): 1 on each group's
    loops of ``landmarks`` (478, 2) px (names of topology loops) grown by its reach (IPD, ``ipd`` px), 0 elsewhere."""
    topo = topology()
    out = np.zeros(shape, np.uint8)
    for names, reach in groups:
        mask = np.zeros(shape, np.uint8)
        for name in names:
            pts = np.round((landmarks[topo.loop(name)] - np.asarray(origin, float)) * 16).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1, cv2.LINE_AA, shift=4)
        k = 2 * max(1, int(round(reach * ipd))) + 1
        out |= cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return out
