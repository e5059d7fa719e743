"""What a warp cannot invent: shared config and helpers of the mouth (mouth.py) and eye (eyes.py) interiors."""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from aufx.face.analysis import FaceAnalysis


@dataclass(frozen=True)
class MouthConfig:
    min_open_px: float = 0.75  # lips parting less than this (pixels, beyond the photo's own gap) draw nothing
    upper_incisal_ipd: float = 0.05  # closed mouth: upper incisal edge this far below the resting lip line (IPD)
    overbite_ipd: float = 0.03  # at rest the lower incisal edge hides this far behind the upper teeth (IPD)
    lower_teeth_scale: float = 0.8  # lower row = the exemplar's upper row mirrored, uniformly this much smaller
    lower_teeth_shade: float = 0.85  # the lower row sits deeper in the mouth, in more shadow
    colour_strength: float = 0.4  # exponent on the person/exemplar skin-and-lip colour ratio (1 = full match)
    colour_gain_range: tuple[float, float] = (0.55, 1.25)  # bounds of that colour gain, per channel
    gum_gain: float = 0.7  # gum above the upper teeth = the person's lip colour x this
    tongue_gain: float = 0.6  # tongue = the person's lip colour x this
    tongue_rise_ipd: float = 0.07  # tongue top above the lower incisal edge at the mouth centre (IPD)
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
    junction_dark: float = 0.25  # sealed lips: the line where they meet is this much darker than the lips
    own_teeth_share: float = 0.2  # open mouth this tooth-bright (lower row: half): own teeth, no exemplar row
    own_erode_px: float = 0.6  # the photo's own interior is used this far inside its lip contour (pixels)
    box_side_ipd: float = 0.35  # layer box around the resting mouth: sideways beyond the corners (IPD)...
    box_above_ipd: float = 0.45  # ...above its centre...
    box_below_ipd: float = 1.3  # ...and below it (room for a wide-open jaw)


@dataclass(frozen=True)
class InteriorConfig:
    mouth: MouthConfig = field(default_factory=MouthConfig)  # teeth, cavity and sealed lips (mouth.py)
    lid_shadow: float = 0.35
    lash_width_ipd: float = 0.022  # closing lids: width of the dark lash line along the new margin (IPD)
    lash_strength: float = 0.95  # ...its opacity at the centre of the lid (it thins out towards the corners)
    lid_lash_gap_ipd: float = 0.03  # the lid skin is sampled this far above the photo's own lash line (IPD)


def poly_mask(shape: tuple[int, int], poly: np.ndarray) -> np.ndarray:
    """Anti-aliased polygon coverage in [0, 1]."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255.0


def bbox(poly: np.ndarray, pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    x0, y0 = np.floor(poly.min(0)).astype(int) - pad
    x1, y1 = np.ceil(poly.max(0)).astype(int) + pad
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def face_axes(face: FaceAnalysis) -> tuple[np.ndarray, np.ndarray]:
    r = face.pose.rotation[:2]
    right = r[:, 0] / np.linalg.norm(r[:, 0])
    down = r[:, 1] / np.linalg.norm(r[:, 1])
    return right, down


def median_colour(image: np.ndarray, mask: np.ndarray, default) -> np.ndarray:
    sel = image[mask]
    return np.median(sel, axis=0).astype(np.float32) if len(sel) >= 4 else np.asarray(default, np.float32)
