"""The photo's fine texture where the warp stretches skin: grain at its own size, not streaks.

A warp that stretches skin by s stretches the photo's grain and pores with it. The upper lids stretch under raised
brows, the skin above spectacle frames under a held brow, a cheek when a smile is taken away. From about 1.5x the
grain turns into streaks along the stretch: the vertical streaks on a grainy photo's forehead read as drawn, and
as furrows. There the warped fine detail fades out and the photo's own texture fills in: its fine detail read where
a smoothed version of the warp takes each pixel (the displacement blurred over ``own_ipd`` stretches the skin far
less, so the texture keeps its size: an aged forehead keeps its wrinkles), or, where that lands on eyes, brows or
lips, grain of the photo's own size and strength. The detail keeps its variance but loses its direction. The
coarser shading (the lid crease, a fold, the brow's edge) is warped as it is.

Per face (cached): the photo's fine detail (luma minus luma blurred by ``detail_px`` or ``detail_ipd``), its local
strength, a fixed grain field with the detail's own correlation and maps of where the features are. Per edit: the
stretch from the warp's backward maps, and the correction only inside the box where it passes ``from_stretch``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from aufx.engines.channels import planes
from aufx.engines.field import map_scales
from aufx.engines.interiors import not_features
from aufx.engines.photometry import Photometry, grain, luminance
from aufx.face.analysis import FaceAnalysis


@dataclass(frozen=True)
class TextureConfig:
    """Where stretched skin gets fresh grain, and how much."""

    enabled: bool = True
    detail_px: float = 1.5  # the fine texture: luma finer than a Gaussian of this sigma (px: sensor grain)...
    detail_ipd: float = 0.03  # ...or of this (IPD: pores, fine wrinkles), whichever is wider
    own_ipd: float = 0.12  # the own texture is read along the warp's displacement blurred by this (sigma, IPD)
    from_stretch: float = 1.3  # skin stretched less than this keeps its warped texture...
    full_stretch: float = 2.2  # ...from this much on, only fresh grain is left
    keep_out_ipd: float = 0.05  # eyes and lips grown by this (IPD) keep their warped detail: a lip stretched by a
    # smile keeps its sharp edges (brows move as pieces, hardly stretched: the skin below them is what stretches);
    # the own texture is not read from them, nor from the brows
    strength_ipd: float = 0.04  # the texture's strength is measured locally over this (sigma, IPD)...
    noise_gain: float = 1.5  # ...from the detail clipped at this x the photo's pixel noise: the detail taken away
    # is the grain's and the stretched lines' (a lid crease, lash shadows), and only the grain comes back
    grain_sizes: tuple[float, ...] = (0.0, 0.5, 0.75, 1.0, 1.5, 2.0)  # fresh grain is white noise blurred by one of
    # these (sigma, px): the one whose fine detail is as correlated between neighbours as the photo's


@dataclass(frozen=True)
class _Texture:
    """One face's fine texture over the warp's ROI: ``detail`` (h, w, 2) float32, the fine detail (luma units) and its
    local standard deviation; ``grain`` (h, w) float32 unit-variance fine noise of the detail's own size."""

    detail: np.ndarray
    grain: np.ndarray


def _fine(y: np.ndarray, detail_px: float) -> np.ndarray:
    """(h, w) float32: ``y`` (h, w) float32 minus itself blurred by ``detail_px``."""
    return y - cv2.GaussianBlur(y, (0, 0), detail_px)


def _neighbour_correlation(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Correlation of ``x`` (h, w) with itself one pixel across and down, over ``mask`` (h, w) bool (all)."""
    a, b, c = x[:-1, :-1], x[:-1, 1:], x[1:, :-1]
    m = np.ones(a.shape, bool) if mask is None else mask[:-1, :-1] & mask[:-1, 1:] & mask[1:, :-1]
    if m.sum() < 16:
        return 0.0
    a, b, c = a[m], b[m], c[m]
    return float(0.5 * (np.dot(a, b) + np.dot(a, c)) / max(float(np.dot(a, a)), 1e-9))


@lru_cache(maxsize=None)
def _grain_correlations(detail_px: float, sizes: tuple[float, ...]) -> tuple[float, ...]:
    """The neighbour correlation of the fine detail of white noise blurred by each of ``sizes`` (px)."""
    white = grain(256, 77)
    return tuple(_neighbour_correlation(_fine(_blurred(white, s), detail_px)) for s in sizes)


def _local_spread(detail: np.ndarray, reach_px: float, most: float) -> np.ndarray:
    """(h, w) float32: the local standard deviation of ``detail`` (h, w) float32 within about ``reach_px`` (sigma),
    each value clipped to +-``most`` first, so that a brow's or a lash line's edges beside a patch of skin count as
    no more than grain (unclipped, they drew blotches over the astronaut's lids)."""
    clipped = np.clip(detail, -most, most)
    return np.sqrt(cv2.GaussianBlur(clipped * clipped, (0, 0), max(1.0, reach_px)))


def _blurred(x: np.ndarray, sigma: float) -> np.ndarray:
    """``x`` (h, w) float32 blurred by ``sigma`` px (as it is at 0)."""
    return cv2.GaussianBlur(x, (0, 0), sigma) if sigma > 0 else x


def _detail_sigma(face: FaceAnalysis, cfg: TextureConfig) -> float:
    """The sigma (px) below which luma is the face's fine texture."""
    return float(max(cfg.detail_px, cfg.detail_ipd * face.pose.scale))


def texture(image: np.ndarray, face: FaceAnalysis, box: tuple[int, int, int, int], pm: Photometry,
            cfg: TextureConfig) -> _Texture:
    """The face's fine texture over ``box`` (x0, y0, x1, y1 image px): its grain size read over the skin, its strength
    bounded by ``noise_gain`` x the photo's pixel noise (``pm``); cached on the analysis."""
    key = ("texture", box, cfg)
    if key not in face.cache:
        x0, y0, x1, y1 = box
        sigma = _detail_sigma(face, cfg)
        detail = _fine(luminance(image[y0:y1, x0:x1]), sigma)
        strength = _local_spread(detail, cfg.strength_ipd * face.pose.scale, cfg.noise_gain * pm.noise)
        skin = pm.skin_at(*box) > 0.5
        rho = _neighbour_correlation(detail, skin)
        size = cfg.grain_sizes[int(np.argmin([abs(r - rho) for r in _grain_correlations(sigma, cfg.grain_sizes)]))]
        h, w = detail.shape
        g = _fine(_blurred(grain(max(h, w), 78)[:h, :w], size), sigma)
        face.cache[key] = _Texture(cv2.merge([detail, strength]), g / max(float(g.std()), 1e-6))
    return face.cache[key]


SKIN_CELL = 4  # image px per cell of the map of where the texture may be replaced: it is read on a coarse grid


def _skin(face: FaceAnalysis, box: tuple[int, int, int, int], cfg: TextureConfig, brows: bool) -> np.ndarray:
    """(h // SKIN_CELL, w // SKIN_CELL) float32 over ``box``: 0 on the eyes and lips (and ``brows``), 1 on skin;
    cached on the analysis."""
    key = ("texture_skin", box, cfg.keep_out_ipd, brows)
    if key not in face.cache:
        face.cache[key] = not_features(face, box, SKIN_CELL, cfg.keep_out_ipd, brows=brows)
    return face.cache[key]


def _on_skin(face: FaceAnalysis, box: tuple[int, int, int, int], cfg: TextureConfig, brows: bool, sx: np.ndarray,
             sy: np.ndarray) -> np.ndarray:
    """``_skin`` read at the box pixels (``sx``, ``sy``) (float32 arrays of one shape)."""
    cell = np.float32(1.0 / SKIN_CELL)
    return cv2.remap(_skin(face, box, cfg, brows), (sx + np.float32(0.5)) * cell - np.float32(0.5),
                     (sy + np.float32(0.5)) * cell - np.float32(0.5), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def stretch(mx: np.ndarray, my: np.ndarray, step: int) -> np.ndarray:
    """(ceil(h / step), ceil(w / step)) float32: how far the warp stretches the photo around every ``step``-th pixel
    of the backward maps ``mx``, ``my`` (h, w) float32 (the largest singular value of the forward map's Jacobian)."""
    smallest, _ = map_scales(mx, my, step)  # 1 / the forward map's largest
    return (1.0 / np.maximum(smallest, 1e-3)).astype(np.float32)


def restore_texture(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, box: tuple[int, int, int, int],
                    pm: Photometry, maps: tuple[np.ndarray, np.ndarray], step: int, cfg: TextureConfig) -> np.ndarray:
    """``roi`` (h, w, 3) uint8 over ``box`` (x0, y0, x1, y1 image px), warped from ``image`` (H, W, 3) uint8 by
    ``maps`` (each (h, w) float32, the image px each roi pixel came from), with the fine detail the warp stretched
    past ``from_stretch`` faded into the photo's own texture at its size (``pm``: the photo's photometry); ``step``:
    the maps vary smoothly over this many pixels. The face's texture is measured the first time an edit stretches
    its skin."""
    if not cfg.enabled:
        return roi
    s = stretch(maps[0], maps[1], step)
    fade = np.clip((s - cfg.from_stretch) / (cfg.full_stretch - cfg.from_stretch), 0.0, 1.0)
    if not fade.any():
        return roi
    ox, oy = box[:2]
    gx, gy = maps[0][::step, ::step] - np.float32(ox), maps[1][::step, ::step] - np.float32(oy)  # box px, per cell
    fade *= _on_skin(face, box, cfg, False, gx, gy)  # eyes and lips keep their edges
    ys, xs = np.nonzero(fade > 0)
    if not len(ys):
        return roi
    h, w = roi.shape[:2]
    y0, y1 = max(0, (ys.min() - 1) * step), min(h, (ys.max() + 2) * step)
    x0, x1 = max(0, (xs.min() - 1) * step), min(w, (xs.max() + 2) * step)
    # the own texture is read along the displacement (grid px - source px) blurred over own_ipd: per grid cell,
    # where that takes it and whether it lands on skin (not on eyes, brows or lips: there fresh grain fills in)
    gh, gw = s.shape
    cx, cy = np.meshgrid(np.arange(gw, dtype=np.float32) * step, np.arange(gh, dtype=np.float32) * step)
    sigma = max(1.0, cfg.own_ipd * face.pose.scale / step)
    osx, osy = (c - cv2.GaussianBlur(c - g, (0, 0), sigma) for c, g in ((cx, gx), (cy, gy)))
    r0, c0 = y0 // step, x0 // step  # the cells over the box, brought to pixels
    r1, c1 = min(gh, -(-y1 // step) + 1), min(gw, -(-x1 // step) + 1)
    cells = cv2.merge([fade, _on_skin(face, box, cfg, True, osx, osy), osx, osy])[r0:r1, c0:c1]
    cells = cv2.resize(cells, ((c1 - c0) * step, (r1 - r0) * step), interpolation=cv2.INTER_LINEAR)
    fade, skin, sx, sy = cv2.split(cells[y0 - r0 * step:y1 - r0 * step, x0 - c0 * step:x1 - c0 * step])
    tex = texture(image, face, box, pm, cfg)
    mx, my = maps[0][y0:y1, x0:x1] - ox, maps[1][y0:y1, x0:x1] - oy
    detail, strength = cv2.split(cv2.remap(tex.detail, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    own = cv2.remap(tex.detail, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[..., 0]
    fill = skin * own + (1.0 - skin) * strength * tex.grain[y0:y1, x0:x1]
    keep = 1.0 - fade
    out = roi.copy()
    out[y0:y1, x0:x1] = cv2.add(roi[y0:y1, x0:x1], planes(np.sqrt(np.maximum(1.0 - keep * keep, 0.0)) * fill
                                                           - fade * detail), dtype=cv2.CV_8U)  # rounded, clipped
    return out
