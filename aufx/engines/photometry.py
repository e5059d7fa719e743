"""What the photo itself says about light, sharpness, noise and skin texture, measured once per face.

Everything the warp engine paints (relief shading, closed lids, lash lines) is matched to these numbers so it looks
photographed with the same camera under the same light: lit from the same side, no sharper than the photo's own
edges, with the same grain, and with folds as contrasty as the person's own skin texture.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology


@dataclass(frozen=True)
class PhotometryConfig:
    """Design constants of the photo measurements (IPD = the face's inter-pupil distance)."""

    face_pad_ipd: float = 0.1  # the measured box is the face box grown by this (IPD)
    skin_patch_radii_ipd: tuple[float, ...] = (0.13, 0.13, 0.07, 0.05)  # radii of the 'skin_patches' samples (IPD)
    light_blur_ipd: float = 0.25  # the shading that gives the light direction is blurred by this sigma (IPD)...
    light_sphere_ipd: float = 0.9  # ...its mean gradient x this / mean brightness ~ sin(light tilt) (a sphere's)
    light_prior: float = 0.25  # a weak prior for light from above, added to that
    light_tilt: tuple[float, float] = (0.2, 0.8)  # bounds of sin(light tilt from the view axis)
    blur_sigma0: float = 1.0  # re-blur sigma of the edge-blur measurement (pixels)
    blur_edge_percentile: float = 98.0  # it reads the face's edges above this percentile of gradient magnitude
    blur_default_px: float = 0.5  # edge blur when no edge qualifies (pixels)
    blur_range_px: tuple[float, float] = (0.4, 4.0)  # bounds of the measured edge blur (pixels)
    max_edge_percentile: float = 99.5  # the face's steepest edges: this percentile of its gradient magnitude
    highlight_percentile: float = 99.5  # the face's brightest pixels (sclera, teeth, sheen): this percentile of luma
    highlight_inset_ipd: float = 0.1  # ...inside the face oval shrunk by this (IPD): its rim takes in hair and
    # background beside the face (on a dimly lit face before a lit wall, the wall read 192, the face's own 158)
    band_ipd: tuple[float, float] = (0.008, 0.04)  # skin-texture band-pass: difference of these Gaussian sigmas (IPD)
    band_min_px: float = 0.5  # ...the smaller at least this (pixels)
    texture_default: float = 0.02  # skin texture contrast when no patch can be measured
    tint_range: tuple[float, float] = (0.6, 1.6)  # bounds of each channel's shading slope against luma
    clip_level: float = 250.0  # a channel at or above this is clipped: its value is continued from the others...
    overexposed_share: float = 0.1  # ...where at least this share of the skin patches' pixels is clipped (a few
    # specular highlights are white, not skin-coloured: continuing them in the skin's colour speckled the shading)
    chroma_weight: float = 0.3  # skin map: weight of log chroma beside hue...
    hue_ridge: float = 1e-4  # ...regularizing the hue-chroma covariance...
    hue_limit: float = 5.5  # ...skin fades out from this Mahalanobis distance...
    hue_soft: float = 2.0  # ...over this much more
    lightness_weight: float = 0.25  # the Lab distance weighs lightness this much...
    lightness_blur_ipd: float = 0.08  # ...taken over areas this size (sigma, IPD)...
    colour_ridge: float = 4.0  # ...regularizing the Lab covariance...
    colour_limit: float = 5.0  # ...skin fades out from this Mahalanobis distance...
    colour_soft: float = 1.5  # ...over this much more
    skin_blur_ipd: float = 0.02  # the skin map is smoothed by this sigma (IPD, at least a pixel)


@dataclass(frozen=True)
class Photometry:
    """What one photo says about its face: light, sharpness, noise, texture, tint and where its skin is."""

    light: np.ndarray  # (3,) unit vector towards the light in image axes (x right, y down, z towards the camera)
    blur_px: float  # Gaussian sigma of the photo's own sharpest edges (the lens/resampling blur), pixels
    noise: float  # standard deviation of the photo's pixel noise, 8-bit luminance units
    texture: float  # std of band-passed log luminance on the skin patches (skin texture contrast)
    max_edge: float  # 99.5th percentile of the luminance gradient magnitude over the face (8-bit units / px)
    highlight: float  # 99.5th percentile of luma over the face inside its rim: how bright its brightest things are
    # (exposure, not skin tone: sclera, teeth and sheen are near white on every face)
    light_rgb: np.ndarray  # (3,) float32 mean colour of those brightest pixels, unit mean: the colour of the light
    # (white things take it; the skin's colour would be the person's as much as the light's)
    tint: np.ndarray  # (3,) d log(channel) / d log(luma) of the skin's own shading: shadows on skin are redder
    skin_rgb: np.ndarray  # (3,) float32 median colour of the skin patches' pixels no channel of which is clipped
    overexposed: bool  # so much of the skin is clipped that shading must continue its colour (``unclipped``)
    skin: np.ndarray  # (h, w) float32 in [0, 1]: how skin-like each pixel of the face box is (hair, frames: 0)
    origin: tuple[int, int]  # (x, y) of skin[0, 0] in the image

    def skin_at(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """(y1 - y0, x1 - x0) float32 skin map over an image box (pixels outside the face box are not skin)."""
        out = np.zeros((y1 - y0, x1 - x0), np.float32)
        ox, oy = self.origin
        h, w = self.skin.shape
        ax0, ay0, ax1, ay1 = max(x0, ox), max(y0, oy), min(x1, ox + w), min(y1, oy + h)
        if ax1 > ax0 and ay1 > ay0:
            out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = self.skin[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox]
        return out


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(h, w) float32 luma (BT.601) of an RGB uint8 image."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) if rgb.ndim == 3 else rgb.astype(np.float32)


def unclipped(rgb: np.ndarray, skin_rgb: np.ndarray, level: float = PhotometryConfig.clip_level) -> np.ndarray:
    """(h, w, 3) float32: ``rgb`` (h, w, 3) with each channel the photo clipped (at ``level`` or above) continued
    in the skin's own proportions ``skin_rgb`` (3,), as bright as ``skin_brightness`` says the pixel is. Shading
    darkens the true colour: on an overexposed face, whose skin reads (255, 255, 235), a fold darkened the clipped
    white into grey where the skin's real colour is warm."""
    bright = skin_brightness(rgb, skin_rgb, level)
    return np.stack([unclipped_channel(rgb, c, skin_rgb, bright, level) for c in range(3)], axis=-1)


def skin_brightness(rgb: np.ndarray, skin_rgb: np.ndarray,
                    level: float = PhotometryConfig.clip_level) -> np.ndarray:
    """(h, w) float32: how bright each pixel of ``rgb`` (h, w, 3) is in units of the skin's colour ``skin_rgb`` (3,):
    what its dimmest unclipped channel says (a highlight is whiter than the skin, so the others overstate it), and
    at least what each clipped channel says (it was ``level`` or more)."""
    skin = np.maximum(np.asarray(skin_rgb, np.float32), 1.0)
    free = np.full(rgb.shape[:2], np.inf, np.float32)
    floor = np.zeros(rgb.shape[:2], np.float32)
    for c in range(3):
        ch = rgb[..., c]
        clipped = ch >= level
        np.minimum(free, np.where(clipped, np.inf, ch / skin[c]), out=free)
        np.maximum(floor, np.where(clipped, level / skin[c], 0.0), out=floor)
    free[np.isinf(free)] = 0.0
    return np.maximum(free, floor)


def unclipped_channel(rgb: np.ndarray, c: int, skin_rgb: np.ndarray, bright: np.ndarray,
                      level: float = PhotometryConfig.clip_level) -> np.ndarray:
    """(h, w) float32: channel ``c`` of ``unclipped`` (one plane at a time, for photos too large to copy whole);
    ``bright`` is ``skin_brightness(rgb, skin_rgb)``."""
    ch = rgb[..., c].astype(np.float32)
    clipped = ch >= level
    if clipped.any():
        ch[clipped] = np.maximum(ch[clipped], bright[clipped] * max(float(skin_rgb[c]), 1.0))
    return ch


WIDE_BLUR_PX = 24.0  # a Gaussian blur wider than this (sigma, pixels) runs on a shrunk copy (wide_blur)


def tinted(gain: np.ndarray, tint: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 per-channel multiplier for a luminance ``gain`` (h, w) on skin: shadows turn redder as the
    skin's own do, gain ** ``tint`` (3,) per channel (Photometry.tint), to second order."""
    dg = gain - 1.0
    dg2 = dg * dg
    return cv2.merge([1.0 + tc * dg + qc * dg2 for tc, qc in zip(tint, 0.5 * tint * (tint - 1.0))])


def wide_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """cv2.GaussianBlur(x, (0, 0), sigma) for ``x`` (h, w[, c]) float32. Up to WIDE_BLUR_PX it is exactly that; a
    wider blur (a large face's light, lightness or wobble: their sigmas grow with the face, their cost with its area
    times the sigma) runs on a copy shrunk so the sigma is 8 to 16 px there, and is enlarged back: what such a blur
    keeps is smooth on that grid. Against the full-size blur of a face's luma: within a few tenths of a level
    farther than 3 sigma from the border, a few levels at it; a sigma of 163 px (the light of a face 650 px between the
    pupils) 6.3 s -> 7 ms."""
    if sigma <= WIDE_BLUR_PX:
        return cv2.GaussianBlur(x, (0, 0), sigma)
    f = int(sigma // 8)  # the shrink factor
    h, w = x.shape[:2]
    small = cv2.resize(x, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    # the box average and the linear enlargement blur by about f / 2 between them
    s = np.sqrt(sigma * sigma - f * f / 4.0) / f
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), s), (w, h), interpolation=cv2.INTER_LINEAR)


def gradient_magnitude(y: np.ndarray) -> np.ndarray:
    """Central-difference gradient magnitude (8-bit units per pixel), shape of ``y``."""
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=1, scale=0.5)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)
    return np.hypot(gx, gy)


def photometry(image: np.ndarray, face: FaceAnalysis, cfg: PhotometryConfig = PhotometryConfig()) -> Photometry:
    """The photometry of ``image`` (H, W, 3) uint8 around ``face``, cached on the analysis per config (the source
    image of one analysis never changes)."""
    key = ("photometry", cfg)
    if key not in face.cache:
        face.cache[key] = measure(image, face, cfg)
    return face.cache[key]


def measure(image: np.ndarray, face: FaceAnalysis, cfg: PhotometryConfig = PhotometryConfig()) -> Photometry:
    """The photometry of ``image`` (H, W, 3) uint8 RGB around ``face`` (its box grown by ``face_pad_ipd``)."""
    ipd = face.pose.scale
    x0, y0, x1, y1 = face.box
    pad = int(cfg.face_pad_ipd * ipd)
    x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
    x1, y1 = min(image.shape[1], x1 + pad), min(image.shape[0], y1 + pad)
    y = luminance(image[y0:y1, x0:x1])
    pts = face.landmarks[:, :2] - [x0, y0]
    mask = np.zeros(y.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts[list(topology().groups["face_oval"])]).astype(np.int32)], 1)
    skin = mask.astype(bool)
    patch = image[y0:y1, x0:x1]
    sel = _patches(y.shape, pts, ipd, cfg)
    return Photometry(_light(y, skin, face, cfg), _blur(y, skin, cfg), _noise(y, skin), _texture(y, pts, ipd, cfg),
                      float(np.percentile(gradient_magnitude(y)[skin], cfg.max_edge_percentile)),
                      *_highlight(patch, y, _inset(mask, cfg.highlight_inset_ipd * ipd), cfg),
                      _tint(patch, y, sel, ipd, cfg), _skin_rgb(patch, sel, cfg), _overexposed(patch, sel, cfg),
                      _skin_map(patch, sel, skin, ipd, cfg), (x0, y0))


def _inset(mask: np.ndarray, px: float) -> np.ndarray:
    """(h, w) bool: the uint8 ``mask`` shrunk by ``px`` pixels (as it is if that leaves nothing)."""
    k = 2 * int(round(px)) + 1
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    return inner if inner.any() else mask > 0


def _highlight(patch: np.ndarray, y: np.ndarray, face: np.ndarray, cfg: PhotometryConfig) -> tuple[float, np.ndarray]:
    """(the face's highlight luma, the colour of its light (3,) float32 with unit mean) from ``patch`` (h, w, 3)
    uint8, its luma ``y`` (h, w) and the face inside its rim ``face`` (h, w) bool: the ``highlight_percentile`` of
    luma, and the mean colour of the pixels at or above it."""
    level = float(np.percentile(y[face], cfg.highlight_percentile))
    rgb = patch[face & (y >= level)].astype(np.float64).mean(axis=0)
    return level, (rgb / max(rgb.mean(), 1e-6)).astype(np.float32)


def _light(y: np.ndarray, skin: np.ndarray, face: FaceAnalysis, cfg: PhotometryConfig) -> np.ndarray:
    """(3,) unit vector towards the light, from the face's own shading (``y`` (h, w) float32 luma, ``skin`` (h, w)
    bool): the mean gradient of a heavily blurred luminance over the face points towards the lit side; its size
    relative to the brightness gives the light's tilt from the view axis. A weak prior from above (the usual key
    light) steadies flat-lit faces."""
    ipd = face.pose.scale
    lum = wide_blur(y, cfg.light_blur_ipd * ipd)
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=1, scale=0.5)[skin].mean()
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)[skin].mean()
    g = np.array([gx, gy]) * (cfg.light_sphere_ipd * ipd) / max(float(lum[skin].mean()), 1.0)  # ~ sin(tilt)
    up = -face.pose.image_axes()[1]
    xy = g + cfg.light_prior * up
    s = float(np.clip(np.linalg.norm(xy), *cfg.light_tilt))
    xy = xy / (np.linalg.norm(xy) + 1e-12) * s
    return np.array([xy[0], xy[1], np.sqrt(1 - s * s)])


def _blur(y: np.ndarray, skin: np.ndarray, cfg: PhotometryConfig) -> float:
    """Edge blur (Gaussian sigma, pixels) by re-blurring (Zhuo & Sim 2011): at a step edge blurred by s the
    gradient peak falls by sqrt(s^2 + sigma0^2) / s when blurred again by sigma0; read off at the face's strongest
    edges. ``y`` (h, w) float32 luma, ``skin`` (h, w) bool."""
    sigma0 = cfg.blur_sigma0
    m1 = gradient_magnitude(y)
    m2 = gradient_magnitude(cv2.GaussianBlur(y, (0, 0), sigma0))
    strong = skin & (m1 >= np.percentile(m1[skin], cfg.blur_edge_percentile))
    r = m1[strong] / np.maximum(m2[strong], 1e-3)
    r = r[r > 1.01]
    if len(r) == 0:
        return cfg.blur_default_px
    return float(np.clip(np.median(sigma0 / np.sqrt(r * r - 1)), *cfg.blur_range_px))


_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def _noise(y: np.ndarray, skin: np.ndarray) -> float:
    """Pixel noise (std, 8-bit luma units) of ``y`` (h, w) float32 over ``skin`` (h, w) bool, by Immerkaer's (1996)
    Laplacian difference, which cancels smooth shading; the median over the skin (not the mean) keeps wrinkles
    and edges from counting as noise. The mask's L2 norm is 6."""
    r = np.abs(cv2.filter2D(y, cv2.CV_32F, _NOISE_MASK))[skin]
    return float(1.4826 * np.median(r) / 6.0)


def _skin_patches(cfg: PhotometryConfig):
    """(landmark, radius in IPD) of the skin samples for colour and texture: both cheeks, the glabella and the nose
    bridge (the mid-forehead is often under a fringe)."""
    return zip(topology().groups["skin_patches"], cfg.skin_patch_radii_ipd)


def _patches(shape: tuple[int, int], pts: np.ndarray, ipd: float, cfg: PhotometryConfig) -> np.ndarray:
    """(h, w) bool: the cheek and forehead patches where skin is sampled; ``pts`` (478, 2) pixels in the crop."""
    sel = np.zeros(shape, np.uint8)
    for i, r in _skin_patches(cfg):
        cv2.circle(sel, tuple(int(v) for v in np.round(pts[i])), max(2, int(r * ipd)), 1, -1)
    return sel.astype(bool)


def _band(x: np.ndarray, ipd: float, cfg: PhotometryConfig) -> np.ndarray:
    """(h, w) float32 band-pass of ``x`` (h, w) float32 from pores to fine lines (~0.01-0.05 IPD)."""
    fine, coarse = cfg.band_ipd
    return cv2.GaussianBlur(x, (0, 0), max(cfg.band_min_px, fine * ipd)) - cv2.GaussianBlur(x, (0, 0), coarse * ipd)


def _texture(y: np.ndarray, pts: np.ndarray, ipd: float, cfg: PhotometryConfig) -> float:
    """Skin texture contrast (log-luma units): robust std (1.4826 MAD) of the band-passed log luminance in each
    skin patch, the median over the patches. Per patch and robust, because a fringe over the forehead or a frame
    over a cheek is not skin texture (it made a young face's smooth skin read as the most wrinkled of all)."""
    band = _band(np.log1p(y), ipd, cfg)
    per_patch = []
    for i, r in _skin_patches(cfg):
        sel = np.zeros(y.shape, np.uint8)
        cv2.circle(sel, tuple(int(v) for v in np.round(pts[i])), max(2, int(r * ipd)), 1, -1)
        vals = band[sel.astype(bool)]
        if len(vals) > 8:
            per_patch.append(1.4826 * float(np.median(np.abs(vals - np.median(vals)))))
    return float(np.median(per_patch)) if per_patch else cfg.texture_default


def _skin_rgb(rgb: np.ndarray, sel: np.ndarray, cfg: PhotometryConfig) -> np.ndarray:
    """(3,) float32 median colour of the pixels of ``rgb`` (h, w, 3) uint8 over ``sel`` (h, w) bool none of whose
    channels is clipped; where fewer than 16 are not, of the darkest quarter (the least clipped)."""
    px = rgb[sel].reshape(-1, 3)
    if not len(px):
        return np.full(3, 128.0, np.float32)
    free = px[px.max(axis=1) < cfg.clip_level]
    if len(free) < 16:
        luma = luminance(px[None])[0]
        free = px[luma <= np.percentile(luma, 25)]
    return np.median(free, axis=0).astype(np.float32)


def _overexposed(rgb: np.ndarray, sel: np.ndarray, cfg: PhotometryConfig) -> bool:
    """Whether at least ``overexposed_share`` of the pixels of ``rgb`` (h, w, 3) uint8 over ``sel`` (h, w) bool
    have a clipped channel."""
    return bool(sel.any() and np.mean(rgb[sel].max(axis=-1) >= cfg.clip_level) >= cfg.overexposed_share)


def _tint(rgb: np.ndarray, y: np.ndarray, sel: np.ndarray, ipd: float, cfg: PhotometryConfig) -> np.ndarray:
    """(3,) float32: how each colour channel of ``rgb`` (h, w, 3) uint8 follows the luminance ``y`` (h, w) in the
    skin's own small-scale shading over ``sel`` (h, w) bool (regression slopes of band-passed log channel on
    band-passed log luma): a darkening by g becomes g ** tint per channel."""
    ly = _band(np.log1p(y), ipd, cfg)[sel]
    var = float(ly.var())
    if len(ly) < 16 or var < 1e-8:
        return np.ones(3, np.float32)
    slopes = [float(np.mean(_band(np.log1p(rgb[..., c].astype(np.float32)), ipd, cfg)[sel] * ly) / var)
              for c in range(3)]
    tint = np.clip(np.array(slopes, np.float32), *cfg.tint_range)
    return tint / float(tint @ np.float32([0.299, 0.587, 0.114]))  # the luma follows the gain itself


def _mahalanobis(feats: np.ndarray, sel: np.ndarray, ridge: float) -> np.ndarray:
    """(h, w) distance of each pixel's features (h, w, k) from the robust mean and covariance of ``sel``."""
    samples = feats[sel]
    mu = np.median(samples, axis=0)
    cov = np.cov((samples - mu).T) + np.eye(feats.shape[-1]) * ridge
    diff = (feats - mu).reshape(-1, feats.shape[-1])
    # the product through BLAS, then a two-operand einsum: 4x the three-operand einsum's speed, the same to 1e-15
    return np.sqrt(np.einsum("ij,ij->i", diff @ np.linalg.inv(cov), diff)).reshape(feats.shape[:2])


def _skin_map(rgb: np.ndarray, sel: np.ndarray, face: np.ndarray, ipd: float, cfg: PhotometryConfig) -> np.ndarray:
    """(h, w) float32 skin likelihood in [0, 1] over ``rgb`` (h, w, 3) uint8 inside ``face`` (h, w) bool, from the
    colours of the cheek and forehead patches ``sel`` (h, w) bool, by two Mahalanobis distances that shading
    barely moves (a fold or a shadow on skin is darker and more saturated, with the same hue): hue with log chroma
    in Lab, and Lab colour with lightness down-weighted and taken over areas. Hair, frames and background fall off
    to 0."""
    if sel.sum() < 16:
        return face.astype(np.float32)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    a, b = lab[..., 1] - 128.0, lab[..., 2] - 128.0
    hue = _mahalanobis(np.stack([np.arctan2(b, a), cfg.chroma_weight * np.log1p(np.hypot(a, b))], axis=-1), sel,
                       cfg.hue_ridge)
    # lightness only at the scale of regions (hair is a dark area; a fold is a dark line within skin)
    lab[..., 0] = cfg.lightness_weight * wide_blur(lab[..., 0], cfg.lightness_blur_ipd * ipd)
    colour = _mahalanobis(lab, sel, cfg.colour_ridge)
    skin = np.clip((cfg.hue_limit - hue) / cfg.hue_soft, 0, 1) * \
        np.clip((cfg.colour_limit - colour) / cfg.colour_soft, 0, 1) * face
    return cv2.GaussianBlur(skin.astype(np.float32), (0, 0), max(1.0, cfg.skin_blur_ipd * ipd))


@lru_cache(maxsize=4)
def grain(size: int, seed: int = 1234) -> np.ndarray:
    """Fixed-seed unit white noise (size, size): the same edit always renders the same pixels."""
    return np.random.default_rng(seed).standard_normal((size, size)).astype(np.float32)
