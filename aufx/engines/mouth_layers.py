"""What a face's mouth interior is made of, computed once per face (cached on the analysis).

Two layers in the face's own mouth frame: the upper one is fixed to the skull (upper teeth and gum stay where they
are in the photo), the lower one rides on the mandible (lower teeth; render_mouth shifts it with the chin). Each is
the person's own interior where the photo shows one (an open mouth), else a photographic exemplar of teeth
(aufx/assets/mouth_exemplar.png, cut from a public-domain photo by tools/build_mouth_exemplar.py) placed by the face's
landmarks, scaled uniformly by the IPD (teeth are never stretched), matched to the level and colour of the face's
light (its brightest pixels), as colourful as the photo, blurred to its sharpness. Own teeth go on past the resting
lips (a lip moved off them shows more of their crowns, then gum); the exemplar's lower row follows the upper row's
arc, with gum under its crowns. Layers are premultiplied RGBA, float32, over a box around the mouth.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from aufx.engines.channels import painted, premultiplied, weighted
from aufx.engines.interiors import MouthConfig, poly_mask
from aufx.engines.photometry import PhotometryConfig, grain, luminance, photometry
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import ASSETS, topology

EXEMPLAR = ASSETS / "mouth_exemplar"


@dataclass(frozen=True)
class MouthFrame:
    """Face-fixed 2D frame at the resting mouth: u to the image right, v down the face, both in IPD units."""
    centre: np.ndarray  # (2,) pixels
    axes: np.ndarray  # (2, 2) columns: the face's right and down directions in the image
    ipd: float  # pixels per unit

    inverse: np.ndarray = field(init=False, repr=False)  # (2, 2) pixels -> frame, right-multiplied

    def __post_init__(self):
        object.__setattr__(self, "inverse", np.linalg.inv(self.axes).T / self.ipd)

    def to_uv(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) pixels -> (..., 2) frame coordinates."""
        return (np.asarray(xy, np.float64) - self.centre) @ self.inverse

    def to_xy(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) frame coordinates -> (..., 2) pixels."""
        return self.centre + np.asarray(uv, np.float64) * self.ipd @ self.axes.T


def face_frame(face: FaceAnalysis) -> MouthFrame:
    """The face's mouth frame: centred on the middle inner-lip pair at rest, axes from the head pose, IPD units."""
    topo = topology()
    mid = topo.pairs["lip"][len(topo.pairs["lip"]) // 2]
    right, down = face.pose.image_axes()
    return MouthFrame(face.landmarks[mid, :2].mean(0), np.stack([right, down], 1), float(face.pose.scale))


def contour_fn(uv: np.ndarray):
    """v(u) of a lip contour (k, 2) in frame coordinates, linear between its points, for any array of u."""
    order = np.argsort(uv[:, 0])
    us, vs = uv[order, 0], uv[order, 1]
    return lambda u: np.interp(u, us, vs).astype(np.float32)


def _lip_pixels(image: np.ndarray, face: FaceAnalysis, cfg: MouthConfig) -> tuple[np.ndarray, np.ndarray]:
    """(lip pixels (n, 3), perioral skin pixels (m, 3)) uint8 of ``image`` (H, W, 3): the lips between the outer
    and inner contours, the skin in a ring ``skin_ring_ipd`` around the outer lip contour."""
    topo = topology()
    ipd = face.pose.scale
    outer_idx = list(topo.loop("lips_outer"))
    pts = face.landmarks[:, :2]
    pad = int(0.2 * ipd) + 2  # the crop holds the skin ring
    x0, y0 = np.maximum(np.floor(pts[outer_idx].min(0)).astype(int) - pad, 0)
    x1, y1 = np.ceil(pts[outer_idx].max(0)).astype(int) + pad
    crop = image[y0:y1, x0:x1]
    local = pts - [x0, y0]
    outer = poly_mask(crop.shape[:2], local[outer_idx]) > 0.5
    inner = poly_mask(crop.shape[:2], local[topo.loop("lips_inner")]) > 0.01

    def ring(r_ipd: float) -> np.ndarray:
        k = max(1, int(round(r_ipd * ipd)))
        return cv2.dilate(outer.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2)) > 0

    lips = outer & ~cv2.dilate(inner.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    skin = ring(cfg.skin_ring_ipd[1]) & ~ring(cfg.skin_ring_ipd[0])
    return crop[lips], crop[skin]


def mouth_colours(image: np.ndarray, face: FaceAnalysis,
                  cfg: MouthConfig = MouthConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(lip RGB (3,), perioral skin RGB (3,)) float32 0-255 medians over ``image`` (H, W, 3) uint8 (_lip_pixels).
    The exemplar's builder measures its source the same way."""
    return _medians(*_lip_pixels(image, face, cfg), cfg)


def _medians(lips: np.ndarray, skin: np.ndarray, cfg: MouthConfig) -> tuple[np.ndarray, np.ndarray]:
    """(lip RGB (3,), skin RGB (3,)) float32 medians of the pixels ``lips`` (n, 3) and ``skin`` (m, 3) (the
    defaults where fewer than 4 show)."""
    med = [np.median(px, axis=0) if len(px) >= 4 else np.array(d, float)
           for px, d in ((lips, cfg.lip_rgb), (skin, cfg.skin_rgb))]
    return med[0].astype(np.float32), med[1].astype(np.float32)


def _shade_chroma(lips: np.ndarray, cfg: MouthConfig) -> float:
    """How colourful (colourfulness) the photo shows lip tissue in shade: the mean colour of the darkest
    ``shadow_share`` of its lip pixels ``lips`` (n, 3) uint8. Grace Hopper's studio lipstick stays deep red in shade
    (1.24), a webcam's lips (0.67) and the astronaut's (0.35) far less."""
    if len(lips) < 4:
        return colourfulness(np.asarray(cfg.lip_rgb, np.float32))
    lips = lips.astype(np.float32)
    luma = lips @ np.float32([0.299, 0.587, 0.114])
    return colourfulness(lips[luma <= np.quantile(luma, cfg.shadow_share)].mean(axis=0))


@dataclass(frozen=True)
class Exemplar:
    """The photographic teeth exemplar in its own mouth frame (exemplar pixels)."""

    rgba: np.ndarray  # (h, w, 4) uint8; alpha marks the photo's own mouth interior (teeth, dark corners)
    frame: MouthFrame
    upper: np.ndarray  # (11, 2) inner upper lip contour, frame coordinates (the top of the visible teeth)
    lower: np.ndarray  # (11, 2) inner lower lip contour (the upper incisal edges rest on it)
    meta: dict
    tooth: np.ndarray  # (h, w) float32 1 on its teeth, 0 on its gum and dark (tooth_bright)


@lru_cache(maxsize=1)
def exemplar() -> Exemplar:
    """The teeth exemplar (aufx/assets/mouth_exemplar.png and .json), loaded once."""
    meta = json.loads(EXEMPLAR.with_suffix(".json").read_text())
    bgra = cv2.imread(str(EXEMPLAR.with_suffix(".png")), cv2.IMREAD_UNCHANGED)
    frame = MouthFrame(np.asarray(meta["centre_px"], float), np.asarray(meta["axes"], float).T, float(meta["ipd_px"]))
    rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
    tooth = tooth_bright(luminance(rgba[..., :3]), rgba[..., 3] > 127).astype(np.float32)
    return Exemplar(rgba, frame, frame.to_uv(np.asarray(meta["inner_upper_px"])),
                    frame.to_uv(np.asarray(meta["inner_lower_px"])), meta, tooth)


def tooth_bright(y: np.ndarray, inside: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """(h, w) bool: the pixels ``inside`` (h, w) bool an open mouth whose luma ``y`` (h, w) is above Otsu's split of
    theirs (and above ``floor``): teeth, not the dark of the mouth."""
    thr, _ = cv2.threshold(y[inside].astype(np.uint8).reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return inside & (y > max(thr, floor))


@dataclass(frozen=True)
class MouthLayers:
    """A face's mouth interior layers over ``box``, in image pixels unless said otherwise."""

    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) image pixels the layers cover
    frame: MouthFrame
    uv: np.ndarray  # (h, w, 2) float32 frame coordinates of every box pixel
    upper: np.ndarray  # (h, w, 4) premultiplied RGBA, skull-fixed: upper teeth and gum
    lower: np.ndarray  # (h, w, 4) premultiplied RGBA at rest, moves with the jaw: lower teeth and gum
    own: np.ndarray  # (h, w) 1 where the upper layer is the photo's own pixels (kept as they are)
    under_lip: np.ndarray  # (h, w, 4) the upper layer with the crown going on over the resting upper lip's edge
    lip_edge: np.ndarray  # (h, w) the own rows at that edge (the lip's soft edge and its shadow on the teeth)...
    lip_line: np.ndarray  # (h, w) ...below the resting upper inner lip at this frame v: a raised lip takes them along
    own_lower: np.ndarray  # (h, w) the same for the lower layer
    opening: np.ndarray | None  # (h, w) float32 the photo's lip opening grown by opening_grow_px; None: closed
    cavity_rgb: np.ndarray  # (3,) the dark of the mouth, from the exemplar's, in the person's colours
    tongue_rgb: np.ndarray  # (3,)
    lower_incisal: float  # v of the lower incisal edge at rest, mouth centre
    upper_edge: np.ndarray  # (h, w) float32 frame v where the upper row ends, per column (a smile's arc)
    grain: np.ndarray  # (h, w) unit noise x the photo's noise level, for what is synthesized
    feather_px: float  # width of the lips' edge over the interior: as soft as the photo's edges, no steeper
    gain: np.ndarray  # (3,) colour gain that matched the exemplar to the person
    white: float  # the 8-bit level a white surface would have in the face's light: 255, less in a dark photo
    shade_chroma: float  # how colourful the photo shows its lips in shade (_shade_chroma)


def _box(frame: MouthFrame, src_uv: np.ndarray, shape: tuple[int, int], cfg: MouthConfig):
    """(x0, y0, x1, y1) image pixels of the layers around the resting inner lips ``src_uv`` (k, 2) frame uv."""
    u0, u1 = src_uv[:, 0].min() - cfg.box_side_ipd, src_uv[:, 0].max() + cfg.box_side_ipd
    corners = frame.to_xy(np.array([[u0, -cfg.box_above_ipd], [u1, -cfg.box_above_ipd],
                                    [u0, cfg.box_below_ipd], [u1, cfg.box_below_ipd]]))
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [shape[1], shape[0]])
    return int(x0), int(y0), int(x1), int(y1)


def _place(ex: Exemplar, ex_uv: np.ndarray, scale: float, blur_px: float, gain: np.ndarray, chroma: float,
           tint: np.ndarray | None, cfg: MouthConfig) -> np.ndarray:
    """The exemplar sampled at ``ex_uv`` (h, w, 2), the exemplar-frame coordinates of each layer pixel (a uniform
    scale of the face's frame, ``scale`` = face pixels per exemplar pixel, so teeth are not stretched), blurred to
    the photo's sharpness (``blur_px`` sigma), colour-matched by ``gain`` (3,) and its colourfulness scaled by
    ``chroma``; its teeth take the hue of ``tint`` (3,), the person's own teeth, where the photo shows them
    (``own_teeth_colour``): a person's teeth are one colour, and the exemplar's central incisors, whiter than the
    rest, drew a grey-blue lower row under the astronaut's ivory upper one. (h, w, 4) premultiplied RGBA float32,
    colour 0-255."""
    ex_px = ex.frame.to_xy(ex_uv).astype(np.float32)
    extra = np.sqrt(max(blur_px ** 2 - (float(ex.meta["blur_px"]) * max(scale, 1.0)) ** 2, 0.0))

    def sampled(layer: np.ndarray) -> np.ndarray:
        """An exemplar-sized ``layer`` (premultiplied) at the layer pixels, as sharp as the photo."""
        if scale < 1:  # shrinking: remove what the target grid cannot hold first
            layer = cv2.GaussianBlur(layer, (0, 0), 0.5 / scale)
        out = cv2.remap(layer, ex_px[..., 0], ex_px[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=0)
        return cv2.GaussianBlur(out, (0, 0), extra) if extra > cfg.exemplar_min_blur_px else out

    rgba = ex.rgba.astype(np.float32) / 255.0
    rgba[..., :3] *= rgba[..., 3:]
    r, g, b, a = cv2.split(sampled(rgba))  # plane by plane (see channels.py)
    for c, k in zip((r, g, b), gain * 255.0):
        c *= k
    grey = (r + g + b) / 3
    rgb = [grey + chroma * (c - grey) for c in (r, g, b)]
    if tint is not None and cfg.own_teeth_colour > 0:
        share = sampled(ex.tooth * rgba[..., 3]) * np.float32(cfg.own_teeth_colour)  # premultiplied, as the colour
        hue = np.asarray(tint, np.float32) / max(float(np.mean(tint)), 1.0)
        rgb = [c + share * (grey * h - c) / np.maximum(a, 1e-3) for c, h in zip(rgb, hue)]
    return cv2.merge(rgb + [a])


def _crown(image: np.ndarray, frame: MouthFrame, u: np.ndarray, v: np.ndarray, lip: np.ndarray,
           teeth_end: np.ndarray, direction: int, in_width: np.ndarray, ipd: float,
           cfg: MouthConfig, skip_px: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The photo's own teeth continued past the resting lip line ``lip`` (h, w) frame v, upwards (``direction`` = -1:
    the upper row under a raised upper lip) or downwards (+1: the lower row over a lowered lower lip): what a lip moved
    off them shows is more of the same crowns, the rows on the teeth's side of the lip line (from ``crown_skip_px`` past
    it, never past the own teeth's end ``teeth_end`` (h, w)) mirrored about it, for ``crown_reveal_ipd``; a flat band of
    gum there read as drawn. Returns the crown as premultiplied RGBA (h, w, 4) float32 over the layers' box and the
    frame v (h, w) where the gum starts beyond it. ``skip_px`` (default ``crown_skip_px``): 0 where ``lip`` already
    lies past the lip's edge."""
    skip = (cfg.crown_skip_px if skip_px is None else skip_px) / ipd
    # no more crown than the photo shows
    height = np.clip(direction * (lip - teeth_end) - skip, 0.0, cfg.crown_reveal_ipd)
    far = lip + direction * height
    mirrored = frame.to_xy(np.stack([u, 2 * lip - direction * skip - v], -1)).astype(np.float32)
    rgb = cv2.remap(image, mirrored[..., 0], mirrored[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    band = np.minimum(direction * (far - v), direction * (v - lip) + 1.0 / ipd)  # to where own teeth fully show
    alpha = (np.clip(band * ipd + 0.5, 0.0, 1.0) * (height > 0) * in_width).astype(np.float32)
    return premultiplied(rgb.astype(np.float32), alpha), far


def colourfulness(rgb) -> np.ndarray | float:
    """Colourfulness of RGB colours (..., 3): each one's spread about its grey, relative to that grey; a float for
    one colour (3,)."""
    rgb = np.asarray(rgb, np.float64) if np.ndim(rgb) == 1 else rgb
    grey = rgb.mean(axis=-1, keepdims=True)
    c = np.linalg.norm(rgb - grey, axis=-1) / np.maximum(grey[..., 0], 1.0)
    return float(c) if np.ndim(c) == 0 else c


def _saturated(rgb: np.ndarray, factor: float, most: float) -> np.ndarray:
    """One (3,) RGB colour (0-255) up to ``factor`` times as far from its grey, no more colourful than ``most``
    (colourfulness) unless it already is (then unchanged), within 0-255; a grey stays grey."""
    c = colourfulness(rgb)
    scale = max(c, min(factor * c, most)) / c if c > 0 else 1.0
    grey = float(np.mean(rgb))
    return np.clip(grey + scale * (np.asarray(rgb, np.float32) - grey), 0.0, 255.0).astype(np.float32)


def _over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Premultiplied (h, w, 4) ``top`` over ``bottom``."""
    return top + weighted(bottom, 1.0 - top[..., 3])


def _soft_band(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, ipd: float, inset_px: float) -> np.ndarray:
    """(h, w) float32 coverage of lo < v < hi (frame v, IPD units), shrunk by inset_px, anti-aliased over a pixel."""
    return np.clip(np.minimum(v - lo, hi - v) * ipd - inset_px + 0.5, 0.0, 1.0).astype(np.float32)


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of True in a 1-D bool array ((0, 0) if none)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    if not len(edges):
        return 0, 0
    starts, ends = edges[::2], edges[1::2]
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i] - starts[i])


def _split_own(inside: np.ndarray, tooth: np.ndarray, cfg: MouthConfig) -> tuple[float, bool, bool]:
    """Where the photo's open mouth divides into what the skull carries (above) and what the jaw carries (below):
    the middle of the dark gap between an upper and a lower row of teeth, the bottom of the upper row when only it
    shows (a smile), the top of the lower row when only it shows, the middle when no teeth show. Returns that split
    as a fraction of the lip gap (the mean over the box columns, weighted by their height), and whether upper /
    lower teeth are visible (tooth-bright in ``own_teeth_share`` / half that of the open mouth). ``inside`` and
    ``tooth`` are (h, w) bool: the open mouth, and its tooth-bright pixels."""
    share = cfg.own_teeth_share
    fracs, weights = [], []
    n_up = n_lo = 0
    for c in np.flatnonzero(inside.sum(0) >= 2):
        t = tooth[inside[:, c], c]
        split = len(t) / 2
        if t.any():
            first, last = np.flatnonzero(t)[[0, -1]]
            start, length = _longest_run(~t[first:last + 1])
            if length >= max(2, cfg.dark_gap_share * len(t)):  # dark rows between two rows of teeth
                split = first + start + length / 2
            elif first < len(t) / 2:  # one run of teeth starting in the upper half: the upper row (a smile)
                split = last + 1
            else:
                split = first
            n_up += int(t[:int(split)].sum())
            n_lo += int(t[int(split):].sum())
        fracs.append(split / len(t))
        weights.append(len(t))
    if not fracs:
        return 0.5, False, False
    total = max(int(inside.sum()), 1)
    return float(np.average(fracs, weights=weights)), n_up > share * total, n_lo > share / 2 * total


def _luma(rgb: np.ndarray) -> float:
    """BT.601 luma of one (3,) RGB colour."""
    return float(np.dot(rgb, [0.299, 0.587, 0.114]))


def _seam_px(contrast: float, photo, cfg: MouthConfig) -> float:
    """Width (pixels) of a seam between two layers whose luma differs by ``contrast`` (8-bit units): the photo's
    own edge blur, widened where the contrast across it would make it steeper than the face's steepest edges (a
    teeth-to-dark seam on a soft, low-contrast photo)."""
    return max(1.0, cfg.seam_blur * photo.blur_px, abs(contrast) / max(photo.max_edge, 1.0))


def build_layers(image: np.ndarray, face: FaceAnalysis, cfg: MouthConfig,
                 photo_cfg: PhotometryConfig = PhotometryConfig()) -> MouthLayers:
    """The mouth layers of ``image`` (H, W, 3) uint8 for ``face``; see MouthLayers for their shapes."""
    topo = topology()
    frame = face_frame(face)
    ipd = frame.ipd
    lm = face.landmarks[:, :2]
    up_uv = frame.to_uv(lm[list(topo.groups["lips_inner_upper"])])
    lo_uv = frame.to_uv(lm[list(topo.groups["lips_inner_lower"])])
    box = _box(frame, np.vstack([up_uv, lo_uv]), image.shape[:2], cfg)
    x0, y0, x1, y1 = box
    size = (x1 - x0, y1 - y0)
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    uv = frame.to_uv(np.stack([gx, gy], -1)).astype(np.float32)
    u, v = uv[..., 0], uv[..., 1]
    up0, lo0 = contour_fn(up_uv)(u), contour_fn(lo_uv)(u)
    in_width = (u > up_uv[:, 0].min()) & (u < up_uv[:, 0].max())

    photo = photometry(image, face, photo_cfg)
    ex = exemplar()
    lip_px, skin_px = _lip_pixels(image, face, cfg)
    lip, skin = _medians(lip_px, skin_px, cfg)
    # teeth are white things: as bright as the face's light and of its colour (read from its highlights, not from
    # the skin, whose colour is the person's as much as the light's); colourless in a black-and-white photo
    exposure = min(1.0, photo.highlight / cfg.normal_highlight)
    ex_exposure = min(1.0, float(ex.meta["highlight"]) / cfg.normal_highlight)
    cast = photo.light_rgb / np.asarray(ex.meta["light_rgb"], np.float32)
    gain = (exposure / ex_exposure * np.clip(cast ** cfg.colour_strength, *cfg.colour_gain_range)).astype(np.float32)
    chroma = min(cfg.chroma_max, (colourfulness(skin) + colourfulness(lip)) / cfg.full_colour)

    dark = np.asarray(ex.meta["cavity_rgb"], np.float32) * gain
    dark = dark.mean() + cfg.cavity_saturation * chroma * (dark - dark.mean())

    # The photo's own interior, if its lips are apart: split into skull-fixed (upper) and jaw-carried (lower) parts.
    src = src_up = image[y0:y1, x0:x1].astype(np.float32)
    inside = _soft_band(v, up0, lo0, ipd, cfg.own_erode_px) * in_width
    own_up = own_lo = np.zeros(v.shape, np.float32)
    teeth_up = teeth_lo = False
    tint = None  # the colour of the person's own teeth, where the photo shows them
    lo_end = lo0  # where the jaw-carried part of the photo's open mouth ends (frame v), above the lower lip
    hidden = lo0  # where a lower row the photo does not show may begin (frame v): behind the lower lip...
    incisal = 0.5 * (up_uv[len(up_uv) // 2, 1] + lo_uv[len(lo_uv) // 2, 1]) + cfg.upper_incisal_ipd
    seen = (inside > 0.5).sum() >= 6  # the photo's lips are apart: its mouth shows what is inside
    if seen:
        y = luminance(image[y0:y1, x0:x1])
        sel = inside > 0.5
        lip_y = _luma(lip)
        tooth = tooth_bright(y, sel, lip_y)
        frac, teeth_up, teeth_lo = _split_own(sel, tooth, cfg)
        if teeth_up or teeth_lo:
            tint = np.median(src[tooth], axis=0)
        split = up0 + frac * (lo0 - up0)
        tooth_y = float(np.median(y[tooth])) if tooth.any() else lip_y
        seam = _seam_px(tooth_y - _luma(dark), photo, cfg)  # own teeth over the new dark: no steeper than the photo's
        end = np.minimum(split, lo0 - cfg.own_erode_px / ipd)  # the own upper part ends here...
        fade = np.clip((v - end) * ipd / seam, 0, 1)  # ...and fades out below it, its last rows smeared down
        core = (v < end) & (inside > 0)
        smear = cv2.GaussianBlur(src * core[..., None], (0, 0), seam) / np.maximum(
            cv2.GaussianBlur(core.astype(np.float32), (0, 0), seam), 1e-3)[..., None]
        src_up = np.where((v < end)[..., None], src, smear)
        reach = 1.0 / ipd  # upwards the photo continues into its own upper lip: no seam there
        own_up = np.clip((v - up0 + reach) * ipd / 2, 0, 1) * in_width * (1 - fade)
        # the lower lip's soft inner edge is lip, not mouth: the jaw-carried part ends above it, and a lower row
        # continues from there (carried down with the jaw, that edge drew a lip-coloured line across the teeth)
        lo_end = lo0 - max(cfg.own_erode_px, cfg.crown_skip_px, seam) / ipd
        # ...and a band thinner than two seams is the shadow where upper teeth rest on the lower lip, not a mouth
        # to carry (drawn over the lower row a jaw drop shows, it was a line across the teeth)
        band = (lo_end - split) * ipd
        # ...unless the photo shows something lit in the lip's soft edge (its teeth resting on the lip, a lower
        # row, a tongue): then the row may begin above that edge, and a jaw drop shows the row's edge
        edge_band = (v > lo_end) & (v <= lo0) & in_width
        if edge_band.any() and np.median(y[edge_band]) > 0.5 * (_luma(dark) + lip_y):
            hidden = lo_end
        own_lo = (inside * np.clip((v - split) * ipd + 0.5, 0, 1) * np.clip((lo_end - v) * ipd + 0.5, 0, 1)
                  * np.clip(band / (2 * seam) - 1, 0, 1))
        if teeth_up:  # the own upper row ends at the split
            incisal = float(up_uv[len(up_uv) // 2, 1] + frac * (lo_uv[len(lo_uv) // 2, 1] - up_uv[len(up_uv) // 2, 1]))
        else:
            incisal = float(up_uv[len(up_uv) // 2, 1]) + cfg.upper_incisal_ipd
    lower_incisal = float(incisal - cfg.overbite_ipd)
    ex_inc = contour_fn(ex.lower)  # the exemplar's upper incisal edge (it rests on the inner lower lip), v(u)
    inc_e = float(ex_inc(np.array(0.0)))
    k = cfg.lower_teeth_scale
    scale = ipd / ex.frame.ipd
    upper = np.zeros((*v.shape, 4), np.float32)
    lower = np.zeros((*v.shape, 4), np.float32)
    if not teeth_up:  # the exemplar's upper row, its incisal edge at the resting incisal line
        upper = _place(ex, np.stack([u, v + (inc_e - incisal)], -1), scale, photo.blur_px, gain, chroma,
                       tint, cfg)
        top = contour_fn(ex.upper)(u) - inc_e + incisal
        edge = ex_inc(u) - inc_e + incisal  # where the upper row ends, per column
    else:  # the photo's own upper teeth go on under the resting lip: a raised lip shows more crown, then gum
        upper, top = _crown(image, frame, u, v, up0, end, -1, in_width, ipd, cfg)
        edge = split
    if not teeth_lo:  # its mirror image, smaller, as the lower row: its incisal edge follows the upper row's (a
        # smile's arc), hidden the overbite behind it; where the photo's open mouth shows no lower teeth, the lower
        # row is hidden where the photo hides it: an edit that moves the lips a little reveals none (placed at the
        # top of the lip's soft edge, it drew a white line along a barely parted lower lip)
        low = edge - cfg.overbite_ipd
        if seen:
            low = np.where(in_width, np.maximum(low, hidden), low)
            # the tongue rests behind the row where it is drawn, not where a row the photo hides would be
            lower_incisal = float(low.flat[np.argmin(np.abs(u) + np.abs(v - lower_incisal))])
        lower = _place(ex, np.stack([u / k, ex_inc(u / k) - (v - low) / k], -1), scale * k, photo.blur_px, gain,
                       chroma, tint, cfg)
        lower[..., :3] *= cfg.lower_teeth_shade
        bottom = low + k * (ex_inc(u / k) - contour_fn(ex.upper)(u / k))  # where its crowns end
    else:  # the photo's own lower teeth go on under the resting lower lip: a lowered lip shows more crown
        lower, bottom = _crown(image, frame, u, v, lo_end, split, 1, in_width, ipd, cfg, skip_px=0.0)
    # gum beyond either row's crowns: a lip moved off the teeth (a raised upper lip; AU15, AU16, AU20 lowering the
    # lower lip of a parted mouth) shows them and then gum, not the dark of the mouth behind them
    tissue = _saturated(lip, cfg.tissue_saturation, cfg.tissue_chroma)
    gum_rgba = np.append(tissue * cfg.gum_gain, 1.0).astype(np.float32)
    upper = _over(upper, painted(np.clip((top - v) * ipd + 0.5, 0, 1), gum_rgba))
    lower = _over(lower, painted(np.clip((v - bottom) * ipd + 0.5, 0, 1), gum_rgba))
    for layer, own, rgb in ((upper, own_up, src_up), (lower, own_lo, src)):
        layer[:] = _over(premultiplied(rgb, own), layer)
    # the own rows at the lip's edge, and the crown as it goes on below that edge (its first clean row) to show
    # in their place when the lip rises off them
    lip_edge, under_lip = np.zeros(v.shape, np.float32), upper
    if own_up.max() > 0:
        edge_px = max(cfg.crown_skip_px, seam)  # the lip's edge is as soft as the photo's edges
        lip_edge = (np.clip((v - up0) * ipd + 1.5, 0, 1) * np.clip((up0 - v) * ipd + edge_px + 0.5, 0, 1)
                    * in_width).astype(np.float32)
        clean = frame.to_xy(np.stack([u, np.maximum(v, up0 + edge_px / ipd)], -1)).astype(np.float32)
        clean_rgb = cv2.remap(image, clean[..., 0], clean[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        under_lip = _over(premultiplied(clean_rgb.astype(np.float32), lip_edge), upper)
    noise = grain(max(size))[:size[1], :size[0]] * np.float32(photo.noise)
    grown = cfg.opening_grow_px / ipd
    in_reach = (u > up_uv[:, 0].min() - grown) & (u < up_uv[:, 0].max() + grown)
    opening = _soft_band(v, up0, lo0, ipd, -cfg.opening_grow_px) * in_reach if seen else None
    upper, lower, under_lip = (layer.astype(np.float32) for layer in (upper, lower, under_lip))  # warped per edit
    return MouthLayers(box, frame, uv, upper, lower, own_up, under_lip, lip_edge,
                       up0.astype(np.float32), own_lo, opening, dark,
                       (tissue * cfg.tongue_gain).astype(np.float32), lower_incisal, edge.astype(np.float32), noise,
                       _seam_px(_luma(lip) - _luma(dark), photo, cfg), gain, 255.0 * exposure,
                       _shade_chroma(lip_px, cfg))


def layers(image: np.ndarray, face: FaceAnalysis, cfg: MouthConfig,
           photo: PhotometryConfig = PhotometryConfig()) -> MouthLayers:
    """The face's mouth layers (RGBA (h, w, 4) over a box around the mouth) from its (H, W, 3) uint8 photo, cached
    on the analysis per config (computed once per face)."""
    key = ("mouth_layers", cfg, photo)
    if key not in face.cache:
        face.cache[key] = build_layers(image, face, cfg, photo)
    return face.cache[key]
