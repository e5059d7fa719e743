"""What a warp cannot invent: shared config and helpers of the mouth (mouth.py) and eye (eyes.py) interiors."""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology


@dataclass(frozen=True)
class MouthConfig:
    """Design constants of the mouth interior (mouth.py, mouth_layers.py); IPD = the face's inter-pupil distance."""

    min_open_px: float = 0.75  # lips parting less than this (pixels, beyond the photo's own gap) draw nothing
    recompose_ipd: float = 0.02  # a photo's own open mouth is redrawn from its layers in proportion to how far its
    # inner lips move, fully from this far (IPD): below it the warp carries the photo's interior, so a slider
    # nudged from the photo does not swap its mouth for the layers' version of it at once
    upper_incisal_ipd: float = 0.05  # closed mouth: upper incisal edge this far below the resting lip line (IPD)
    overbite_ipd: float = 0.03  # at rest the lower incisal edge hides this far behind the upper teeth (IPD)
    lower_teeth_scale: float = 0.8  # lower row = the exemplar's upper row mirrored, uniformly this much smaller
    lower_teeth_shade: float = 0.85  # the lower row sits deeper in the mouth, in more shadow
    incisal_shadow: float = 0.7  # the lower row and the mouth behind the upper teeth darken this much towards the
    incisal_shadow_ipd: float = 0.015  # ...upper incisal edge, over this distance below it (IPD)
    colour_strength: float = 1.0  # exponent on the colour of the face's light relative to the exemplar's
    colour_gain_range: tuple[float, float] = (0.7, 1.3)  # bounds of that colour gain, per channel
    own_teeth_colour: float = 1.0  # where the photo shows its own teeth, exemplar teeth take this much of their
    # hue (0: the exemplar's own, in the face's light); their brightness stays the exemplar's
    chroma_max: float = 1.0  # the exemplar's colourfulness scaled to the person's photo, never above its own...
    full_colour: float = 0.35  # ...which is in full colour when its skin's and lips' colourfulness add up to this
    # (colour faces 0.37-1.24; a black-and-white photo 0)
    normal_highlight: float = 215.0  # a normally exposed face's brightest pixels (Photometry.highlight) reach this
    # luma; a face whose do not is lit that much darker: the teeth, the mouth and white itself with it
    # (a black-and-white photo gets grey teeth and a grey mouth, not the exemplar's warm ones)
    gum_gain: float = 0.85  # gum above the upper teeth = the person's lip tissue colour x this
    crown_reveal_ipd: float = 0.05  # an upper lip raised off the photo's own upper teeth shows this much more of
    # their crowns (IPD) before the gum: the crown's part under the lip is the visible part mirrored about the lip
    # line (a central incisor's crown is about 0.17 IPD tall; a smile shows 0.1-0.15 of it)
    crown_skip_px: float = 2.0  # ...skipping this many pixels of the lip's edge and shadow on the teeth
    tongue_gain: float = 0.6  # tongue = the person's lip tissue colour x this
    tissue_saturation: float = 2.0  # lip tissue colour (gum, tongue): the lips' colour this many times as far from
    tissue_chroma: float = 0.5  # its grey (both are redder than a pale lip), up to this colourfulness
    # (mouth_layers.colourfulness; lips measure 0.24 (pale) to 0.71 (deep red): a red lip is not made redder, none
    # is made paler)
    tongue_rise_ipd: float = 0.08  # tongue top above the lower incisal edge at the mouth centre (IPD)
    tongue_share: float = 0.3  # ...and at least this share of the open gap, from the lower lip up
    tongue_depth_ipd: float = 0.08  # the tongue brightens from its dark back (top edge) over this depth (IPD)
    cavity_saturation: float = 0.5  # the dark of the mouth: the exemplar's darkest colour, this saturated
    corner_dark: float = 0.6  # synthesized interior darkens this much toward the mouth corners...
    corner_start: float = 0.45  # ...from this fraction of the opening's half-width outwards
    upper_lip_shadow: float = 0.3  # darkening right under the upper lip...
    lower_lip_shadow: float = 0.3  # ...and above the lower lip...
    lip_shadow_ipd: float = 0.025  # ...decaying over this distance (IPD)
    seal_centre: float = 0.4  # the opening of this central fraction of the mouth width bounds the corners' opening
    seal_roundness: float = 0.35  # ...times (1 - x^2)^this, x = 0 centre, 1 corner (0.5 = an ellipse; less = fuller)
    junction_depth: float = 1.0  # lips closed over the photo's opening: the line where they meet is the lips'
    # colour c x (c / white)^this, darker and redder as in shadow between lips (Grace Hopper's closed lips: about
    # 2); white = 255 in the face's light (less in an underexposed photo, whose lips are not darker tissue)...
    junction_chroma: float = 1.3  # ...and no more colourful than this times the photo's own lips in shade
    # (mouth_layers._shade_chroma) or the lips around it: a webcam's red lips meet in a dark line, not a red pencil
    # stroke
    shadow_share: float = 0.1  # the photo's lips in shade: this darkest share of its lip pixels
    own_teeth_share: float = 0.2  # open mouth this tooth-bright (lower row: half): own teeth, no exemplar row
    own_erode_px: float = 0.6  # the photo's own interior is used this far inside its lip contour (pixels)
    box_side_ipd: float = 0.35  # layer box around the resting mouth: sideways beyond the corners (IPD)...
    box_above_ipd: float = 0.45  # ...above its centre...
    box_below_ipd: float = 1.3  # ...and below it (room for a wide-open jaw)
    profile_samples: int = 33  # samples across the mouth width for the allowed-opening profile
    seal_blur: float = 0.5  # sealed lips are filled with their surroundings blurred by this x the widest sealed gap
    fill_known_gain: float = 3.0  # ...taken only where less than 1 / this of a pixel is sealed (the dark at a sealed
    # band's soft edge does not darken the fill)
    closed_seam_ipd: float = 0.012  # lips closed over the photo's open mouth: a band this half-wide (IPD) along
    # their meeting line is drawn as lips, where the squeezed teeth would otherwise show through
    opening_grow_px: float = 1.5  # the photo's own opening, grown by this (pixels: its lips' inner edge), is what
    # must not show where the target has lips elsewhere either (corners pulled down past the squeezed teeth)...
    leak_reach_ipd: float = 0.1  # ...looked for this far around the target opening (IPD)
    leak_blur_ipd: float = 0.012  # the warped opening is blurred this much (IPD; and doubled) before it is sealed:
    # squeezed rows sample it sparsely, and the dark of a smile's corners otherwise stays as specks between samples
    min_alpha: float = 0.02  # interior or sealing coverage below this draws nothing
    tongue_curve: float = 0.5  # the tongue's top falls by this x its rise towards the corners (times x^2)
    tongue_edge_px: float = 1.5  # the tongue's top edge is this soft (pixels), or as soft as the lips' edge...
    tongue_edge_ipd: float = 0.04  # ...and at least this (IPD): its top turns away from the light into the dark, it
    # has no rim (at 1.5 px it cut a flat band across the mouth, a stack of stripes with the rows of teeth)
    tongue_back: float = 0.6  # the tongue's back (top edge) is lit this much of its front: at 0.35, with its top
    # 0.07 IPD above the lower teeth, only that dark back showed and an opened mouth was a black hole (higher
    # still, its top showed as a light band along a barely parted lower lip)
    skin_ring_ipd: tuple[float, float] = (0.04, 0.12)  # perioral skin colour: a ring this far around the lips (IPD)
    lip_rgb: tuple[int, int, int] = (150, 80, 80)  # lip colour when too few lip pixels show
    skin_rgb: tuple[int, int, int] = (180, 140, 120)  # skin colour when too few skin pixels show
    exemplar_min_blur_px: float = 0.3  # the placed exemplar is blurred to the photo's sharpness unless by less
    dark_gap_share: float = 0.15  # dark rows between two rows of own teeth: at least this share of a column's gap
    seam_blur: float = 2.5  # seams between layers are at least this x the photo's edge blur wide


@dataclass(frozen=True)
class InteriorConfig:
    """Design constants of what the warp cannot invent: the mouth's (nested) and the eyes' and lids' (eyes.py).
    Frozen and hashable: it keys the per-face caches and is part of WarpConfig, so it lands in each edit's metadata."""

    mouth: MouthConfig = field(default_factory=MouthConfig)  # teeth, cavity and sealed lips (mouth.py)
    min_move_px: float = 0.05  # an aperture whose landmarks move less than this (pixels) is left to the warp
    eye_min_blur_px: float = 1.0  # the painted eyeball and its seam are blurred to the photo's sharpness (Photometry
    # .blur_px, sigma) where the photo is softer than this; sharper photos keep the 1 px anti-aliased edges
    eye_shown: float = 0.2  # an eye whose brightest fifth (sclera, a closed lid's skin) is darker than this x the
    # skin's luma is behind an opaque lens: left to the warp (the 38 eyes of the development and sample photos
    # 0.36-1.07, the shaded side of a side-lit face the least, Grace Hopper's behind tinted lenses 0.43-0.63; black
    # lenses drawn on the astronaut 0.1)
    lash_band_ipd: float = 0.025  # an opening eye: the photo's lash line, this wide (IPD) under its upper margin,
    # is lid, not eyeball; it is continued as sclera and iris instead of being left as a ghost line
    lash_band_min_px: float = 1.0  # ...at least this many pixels
    lower_lash_share: float = 0.5  # a lower lid that drops carries its margin, this share of the band wide (its
    # lashes are finer; sclera synthesized up to the new margin drew a pale line along it)
    lid_shadow: float = 0.35  # darkening of new eyeball right under the upper lid margin...
    lid_shadow_ipd: float = 0.02  # ...decaying over this distance (IPD)...
    lid_shadow_min_px: float = 0.7  # ...or at least this many pixels
    lid_shadow_full: float = 2.0  # the photo's own eyeball is fully shadowed once the margin came this many decays down
    iris_sample: float = 0.8  # iris colour: visible pixels within this x the iris radius
    iris_rgb: tuple[int, int, int] = (90, 70, 55)  # ...or this when none show
    sclera_sample: float = 1.15  # sclera colour: the whitest of the visible pixels beyond this x the iris radius
    sclera_rgb: tuple[int, int, int] = (215, 205, 200)  # ...or this when too few show
    sclera_tint: float = 0.3  # the sclera's colour spread (max - min channel) is at most this x its brightness (the
    # lid and lash pixels of a loose eye contour made Grace Hopper's a saturated brown, R-B 88 levels; at 0.12 her
    # new sclera was a grey-blue line against the orange of her lenses and skin)
    limbus_width: float = 0.18  # dark ring around a synthesized iris: width in iris radii...
    limbus_min_px: float = 0.6  # ...at least this many pixels...
    limbus_dark: float = 0.35  # ...darkening this much at its centre
    pupil_radius: float = 0.42  # synthesized pupil radius (iris radii)...
    pupil_dark: float = 0.8  # ...darkening this much
    lid_close_px: float = 0.5  # an upper lid coming down less than this (mean over its inner margin, pixels) is warped
    lid_crease_skip: float = 0.1  # the lid skin is sampled below this share of its band (under the crease shadow)
    lid_turn_under: float = 0.12  # the repainted lid darkens this much (quadratically) towards its margin
    lid_end_fade: float = 0.1  # ...and fades out over this share of the eye width inside the lid ring's ends
    lid_top_px: float = 1.5  # softness of the repainted lid's upper edge (pixels)...
    lid_margin_px: float = 0.7  # ...and of its margin (pixels)
    shut_px: float = 1.0  # a lower margin within this of the upper one (pixels) is a shut eye...
    shut_cover_px: float = 1.2  # ...whose lid reaches this far past the lower margin, leaving no eyeball sliver
    brow_bone_ipd: float = 0.05  # brow-bone skin is sampled this far above the lid ring (IPD)...
    lid_lift: float = 0.3  # ...and a shut lid brightens by (brow bone / lid luma) ** this...
    lid_lift_max: float = 1.12  # ...at most this gain
    lash_width_ipd: float = 0.022  # closing lids: width of the dark lash line along the new margin (IPD)
    lash_strength: float = 0.95  # ...its opacity at the centre of the lid (it thins out towards the corners)
    lid_lash_gap_ipd: float = 0.03  # the lid skin is sampled this far above the photo's own lash line (IPD)
    lid_hue: float = 12.0  # closing lids: sampled pixels whose CIELAB a*b* lie further than this from the brow-bone
    # skin's (sclera, iris) are not lid skin...
    lid_hue_soft: float = 6.0  # ...by more than this (they fade out of the lid skin over it)...
    lid_luma_range: tuple[float, float] = (0.7, 1.1)  # ...nor those whose L* is outside this x the brow bone's, or
    # the lid's own lighter skin's where darker (lashes and the crease's shadow below it, glints above)...
    lid_luma_soft: float = 0.15  # ...by more than this
    lid_light_percentile: float = 75.0  # the lid's lighter skin: this percentile of L* of its skin-hued pixels
    lid_border_ipd: float = 0.02  # a closed lid takes the colour of the skin around it at its border, read over
    # this band outside it (IPD)
    lid_shade: float = 0.92  # a lid without clear skin is the brow bone's colour times this
    lid_fill_ipd: float = 0.06  # the closed lid's colour: its clear skin averaged over this (IPD)...
    lid_texture_ipd: float = 0.02  # ...with the sample's texture finer than this (IPD) on top where it is skin...
    lid_texture_limit: float = 2.5  # ...at most this x the skin's texture contrast or the photo's grain
    lid_seam: float = 0.3  # from the ring down over this share of the lid, the photo's own skin gives way to it...
    lid_clean_closure: tuple[float, float] = (0.25, 0.6)  # ...and as the lid closes from the first to the second
    # share of the photo's eye opening (a lid lowered less keeps its own band: AU07 at 0.8 lowers it 0.07-0.18)
    lash_min_px: float = 1.0  # the lash line is at least this wide (pixels)
    lash_sigma: float = 0.5  # its profile's sigma: this x its width, combined with the photo's blur
    lash_drop: float = 0.25  # it hangs this x its width below the margin
    lash_taper: float = 0.35  # along the lid it follows sin(pi u) ** this (u = 0 outer, 1 inner corner)...
    lash_inner_thin: float = 0.25  # ...and thins by this share towards the inner corner
    lash_percentile: float = 15.0  # lash colour: the median of the darkest this percent along the photo's lid margin...
    lash_rgb: tuple[int, int, int] = (40, 30, 28)  # ...or this when too few pixels show


def polyline_distance(shape: tuple[int, int], poly: np.ndarray) -> np.ndarray:
    """(h, w) float32 Euclidean distance (pixels) from each pixel of an array of ``shape`` to the polyline ``poly``
    (k, 2) pixels, exact to the sub-pixel (a rasterised 1-px line steps by whole pixels, and blends keyed on it
    show the steps as dashes on a small eye)."""
    p = poly.astype(np.float32)
    a, step = p[:-1, :, None, None], (p[1:] - p[:-1])[:, :, None, None]  # each (segments, 2, 1, 1)
    dx, dy = step[:, 0], step[:, 1]
    ex = np.arange(shape[1], dtype=np.float32)[None, None, :] - a[:, 0]  # (segments, 1, w): from each segment's start
    ey = np.arange(shape[0], dtype=np.float32)[None, :, None] - a[:, 1]  # (segments, h, 1)
    t = np.clip((ex * dx + ey * dy) / np.maximum(dx * dx + dy * dy, np.float32(1e-9)), 0.0, 1.0)
    return np.sqrt(((ex - t * dx) ** 2 + (ey - t * dy) ** 2).min(axis=0))  # all segments at once: a few calls


def carried(mask: np.ndarray, maps: tuple[np.ndarray, np.ndarray], at: tuple[int, int]) -> np.ndarray:
    """(h, w) float32: how much of each pixel the warp took from ``mask`` (mh, mw) float32, a mask of the photo whose
    first pixel is image pixel ``at`` (x, y); ``maps`` (each (h, w) float32) are the warp's backward maps over the
    pixels asked about (the image pixel each came from). 0 for what it took from outside the mask's box."""
    return cv2.remap(mask, maps[0] - np.float32(at[0]), maps[1] - np.float32(at[1]), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def normalized_blur(image: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """(h, w, c) float32: ``image`` (h, w, c) float32 blurred by ``sigma`` px over its ``weight`` (h, w) float32
    pixels only (normalised convolution): each pixel the weighted mean of what lies around it."""
    return cv2.GaussianBlur(image * weight[..., None], (0, 0), sigma) / np.maximum(
        cv2.GaussianBlur(weight, (0, 0), sigma), 1e-3)[..., None]


def pull_push(values: np.ndarray, known: np.ndarray, boost: float = 4.0) -> np.ndarray:
    """(h, w, c) float32: ``values`` (h, w, c) where ``known`` (h, w) bool, and everywhere else a smooth surface
    that meets them: pull-push interpolation (Gortler et al. 1996). Pull: the known values and their weight are
    averaged down a pyramid of halvings; push: from the coarsest level up, each level keeps what it knows (weight
    ``boost`` x its coverage, at most 1) and takes the rest from the level below, upsampled. Exact at the known
    pixels, no seam where they end, about 0.1 ms for an eye-sized box."""
    weight = known.astype(np.float32)
    levels = [(values * weight[..., None], weight)]
    while max(levels[-1][1].shape) > 2:
        v, w = levels[-1]
        size = (max(1, w.shape[1] // 2), max(1, w.shape[0] // 2))
        levels.append((cv2.resize(v, size, interpolation=cv2.INTER_AREA),
                       cv2.resize(w, size, interpolation=cv2.INTER_AREA)))
    v, w = levels[-1]
    out = v / np.maximum(w, 1e-6)[..., None]
    for v, w in reversed(levels[:-1]):
        below = cv2.resize(out, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(v.shape)
        share = np.clip(boost * w, 0.0, 1.0)[..., None]
        out = share * (v / np.maximum(w, 1e-6)[..., None]) + (1.0 - share) * below
    return out.astype(np.float32)


def poly_mask(shape: tuple[int, int], poly: np.ndarray) -> np.ndarray:
    """(h, w) float32 anti-aliased coverage in [0, 1] of ``poly`` (k, 2) pixels over an array of ``shape`` (h, w)."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255.0


def bbox(poly: np.ndarray, pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixels: the box around ``poly`` (k, 2) pixels grown by ``pad`` px, clipped to ``shape``."""
    x0, y0 = np.floor(poly.min(0)).astype(int) - pad
    x1, y1 = np.ceil(poly.max(0)).astype(int) + pad
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def median_colour(image: np.ndarray, mask: np.ndarray, default) -> np.ndarray:
    """(3,) float32 median RGB of ``image`` (h, w, 3) under the bool ``mask`` (h, w), ``default`` if under 4 px."""
    sel = image[mask]
    return np.median(sel, axis=0).astype(np.float32) if len(sel) >= 4 else np.asarray(default, np.float32)


def not_features(face: FaceAnalysis, box: tuple[int, int, int, int], k: int, grow_ipd: float,
                 brows: bool = True) -> np.ndarray:
    """(h, w) float32 over ``box`` (x0, y0, x1, y1 image px) in cells of ``k`` image px: 0 on the eye openings, lips
    (and ``brows``) grown by ``grow_ipd`` (IPD), 1 elsewhere (softened over as much again): where skin may be
    retouched."""
    topo = topology()
    x0, y0, x1, y1 = box
    pts = (face.landmarks[:, :2] - (x0, y0) + 0.5) / k - 0.5
    mask = np.zeros(((y1 - y0) // k, (x1 - x0) // k), np.uint8)
    loops = [topo.loop("eye_R"), topo.loop("eye_L"), topo.loop("lips_outer")]
    for loop in loops + ([topo.groups["brow_R"], topo.groups["brow_L"]] if brows else []):
        cv2.fillPoly(mask, [np.round(pts[list(loop)]).astype(np.int32)], 1)
    grow = max(1, int(round(grow_ipd * face.pose.scale / k)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return 1.0 - cv2.GaussianBlur(mask.astype(np.float32), (0, 0), grow)
