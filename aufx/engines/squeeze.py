"""Skin the warp squeezes hard folds under: no staircase, a shadow.

Where an edit takes a brow far down onto its lid (a preset that takes away a photo's raised brows and adds AU04:
of_sample6's "anger" squeezes the skin between brow and lid into a few pixels, up to 6 photo pixels into one), the
warp samples the squeezed band only every few photo pixels: the brow's lower edge comes out as a staircase over a
thin line of lit brow-bone skin, a hard cut. Real skin there folds under the brow, into its shadow. Where the
backward maps compress the photo by more than ``from_squeeze`` along their most compressed direction (the largest
singular value of their Jacobian, read every ``step_ipd``), the band is resampled from the photo blurred as much as
the squeeze averages (an output pixel that covers q photo pixels shows their mean, as a mip-map does) and darkened
as a fold's valley is, the more the further it is squeezed (``depth`` at ``full_squeeze``), as soft as the photo and
in its skin's tint, with the photo's grain at its own level (it lies on the photo's pixels, not on the skin). Eyes
and lips, whose lines the interior layers draw, are left to them. Most edits squeeze no skin that far and pay one
strided Jacobian.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aufx.model.deform import Deformation
from aufx.engines.channels import planes
from aufx.engines.photometry import Photometry, grain, tinted
from aufx.engines.texture import map_scales
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
    depth: float = 0.35  # the share of the light a full fold takes away
    blur_per_squeeze: float = 0.3  # the squeezed band is resampled from the photo blurred by this x its squeeze
    # (sigma, px: a box of q pixels has a standard deviation of 0.29 q)
    step_ipd: float = 0.02  # the squeeze is read every this much (IPD): finer than the thinnest fold
    keep_out_ipd: float = 0.03  # lips grown by this are left to their layer...
    eye_keep_out_ipd: float = 0.07  # ...and eyes grown by this, with the lower lid below them: a lid that closes
    # squeezes the skin under the lower lid into the field's fold, and the lid layers draw that skin


def fold_squeezed(roi: np.ndarray, source: np.ndarray, maps: tuple[np.ndarray, np.ndarray], face: FaceAnalysis,
                  d: Deformation, box: tuple[int, int, int, int], pm: Photometry,
                  cfg: SqueezeConfig = SqueezeConfig()) -> np.ndarray:
    """``roi`` (h, w, 3) uint8, the warped face region at ``box`` (x0, y0, x1, y1 image px), with the skin the warp
    squeezes hard resampled softly and shaded as a fold; ``source`` (H', W', 3) uint8 is what the warp sampled and
    ``maps`` (each (h, w) float32) the backward maps into it; ``pm`` the photo's Photometry."""
    if not cfg.enabled:
        return roi
    h, w = roi.shape[:2]
    step = max(1, int(round(cfg.step_ipd * face.pose.scale)))
    _, squeeze = map_scales(maps[0], maps[1], step)
    if float(squeeze.max()) < cfg.from_squeeze:
        return roi
    ys, xs = np.nonzero(squeeze >= cfg.from_squeeze)
    pad = 2 * step + int(np.ceil(3 * max(pm.blur_px, 1.0)))
    x0, y0 = max(0, int(xs.min()) * step - pad), max(0, int(ys.min()) * step - pad)
    x1, y1 = min(w, (int(xs.max()) + 1) * step + pad), min(h, (int(ys.max()) + 1) * step + pad)
    size = (-(-w // step) * step, -(-h // step) * step)  # the strided grid brought back to pixels
    q = cv2.resize(squeeze, size, interpolation=cv2.INTER_LINEAR)[y0:y1, x0:x1]
    keep = _skin_only((x0, y0, x1, y1), face, d, box, cfg)
    mx, my = maps[0][y0:y1, x0:x1], maps[1][y0:y1, x0:x1]

    # what an output pixel covering q photo pixels shows: their mean (the photo blurred by the squeeze), faded in
    # from where the squeeze starts to show as steps
    sigma = cfg.blur_per_squeeze * float(q.max())
    sx0, sy0 = (max(0, int(np.floor(m.min() - 3 * sigma)) - 1) for m in (mx, my))
    sx1 = min(source.shape[1], int(np.ceil(mx.max() + 3 * sigma)) + 2)
    sy1 = min(source.shape[0], int(np.ceil(my.max() + 3 * sigma)) + 2)
    soft = cv2.GaussianBlur(source[sy0:sy1, sx0:sx1], (0, 0), sigma)
    soft = cv2.remap(soft, mx - np.float32(sx0), my - np.float32(sy0), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    share = np.clip((q - cfg.soft_from) / (cfg.from_squeeze - cfg.soft_from), 0.0, 1.0) * keep
    fold = np.clip((q - cfg.from_squeeze) / (cfg.full_squeeze - cfg.from_squeeze), 0.0, 1.0)
    fold = fold * fold * (3.0 - 2.0 * fold) * keep  # smoothstep: no edge where the fold begins
    patch = roi[y0:y1, x0:x1].astype(np.float32)
    patch += (soft - patch) * share[..., None]
    # the fold's shadow, as soft as the photo
    gain = 1.0 - cfg.depth * cv2.GaussianBlur(fold, (0, 0), max(pm.blur_px, 0.5))
    # the photo's grain lies on its pixels, not on the skin: what the blur and the shadow took of it comes back
    kept = (1.0 - share + share * min(1.0, 1.0 / (2.0 * np.sqrt(np.pi) * sigma))) * gain
    bh, bw = share.shape
    lost = pm.noise * np.sqrt(np.clip(1.0 - kept * kept, 0.0, 1.0)) * grain(max(bh, bw), 23)[:bh, :bw]
    out = roi.copy()
    out[y0:y1, x0:x1] = np.clip(patch * tinted(gain, pm.tint) + planes(lost) + 0.5, 0, 255).astype(np.uint8)
    return out


def _skin_only(part: tuple[int, int, int, int], face: FaceAnalysis, d: Deformation, box: tuple[int, int, int, int],
               cfg: SqueezeConfig) -> np.ndarray:
    """(y1 - y0, x1 - x0) float32 over ``part`` (x0, y0, x1, y1 px of the roi at ``box``): 0 on the target's lips
    and eyes grown by ``keep_out_ipd`` and ``eye_keep_out_ipd`` (their layers draw them: closing lips and lids
    squeeze what lies between them by design), 1 elsewhere, soft edged."""
    topo = topology()
    shape = (part[3] - part[1], part[2] - part[0])
    origin = np.array([box[0] + part[0], box[1] + part[1]], float)
    out = np.zeros(shape, np.uint8)
    for names, reach in ((("lips_outer",), cfg.keep_out_ipd), (("eye_R", "eye_L"), cfg.eye_keep_out_ipd)):
        mask = np.zeros(shape, np.uint8)
        for name in names:
            pts = np.round((d.target_landmarks[topo.loop(name)] - origin) * 16).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1, cv2.LINE_AA, shift=4)
        k = 2 * max(1, int(round(reach * face.pose.scale))) + 1
        out |= cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return 1.0 - cv2.GaussianBlur(out.astype(np.float32), (0, 0), 1.0)
