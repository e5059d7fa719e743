"""The inside of the mouth where lips part, per edit.

The layers of mouth_layers.py (computed once per face) are composed inside the target lip opening: the dark of
the mouth and the tongue, the lower layer moved with the mandible, the upper layer where it is (skull-fixed), so
the person's own teeth are carried and nothing is stretched; what is synthesized is darkened toward the corners and
under the lips, and grained like the photo. Openings that only the lip corners make (a closed-mouth smile pulls
the inner lip contours apart into thin wedges) are sealed: an opening may not be wider at the corners than the
mouth's centre opening allows (an elliptic profile), and what lies beyond is filled with the surrounding lips.
Lips that close over the photo's open mouth get the same fill from the target's lips along the line where they now
meet, and so does whatever else of the photo's opening the warp brings to where the target has lips (corners pulled
down past the squeezed teeth), so no teeth show through.
"""
from __future__ import annotations

import cv2
import numpy as np

from aufx.model.deform import Deformation
from aufx.engines.channels import colour_and_alpha, painted, planes, weighted
from aufx.engines.interiors import InteriorConfig, MouthConfig, carried, poly_mask
from aufx.engines.mouth_layers import MouthLayers, colourfulness, contour_fn, layers
from aufx.engines.photometry import PhotometryConfig
from aufx.face.analysis import FaceAnalysis
from aufx.face.mesh import lips_closing
from aufx.face.topology import topology


def _opening_profile(t_up: np.ndarray, t_lo: np.ndarray, s_up: np.ndarray, s_lo: np.ndarray,
                     cfg: MouthConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u samples, allowed lip gap at each, share of the excess sealed from the top), each (profile_samples,), in
    mouth-frame units (IPD), from the target and source inner lip contours (k, 2) frame uv: the target gap, but no
    more than the photo's own gap (at the same place between the corners, so an open mouth may widen) plus the
    centre's extra opening times a profile that closes at the corners."""
    u0, u1 = t_up[:, 0].min(), t_up[:, 0].max()
    us = np.linspace(u0, u1, cfg.profile_samples)
    x = (us - (u0 + u1) / 2) / max((u1 - u0) / 2, 1e-6)
    gap_t = contour_fn(t_lo)(us) - contour_fn(t_up)(us)
    su0, su1 = s_up[:, 0].min(), s_up[:, 0].max()
    us_src = su0 + (x + 1) / 2 * (su1 - su0)
    gap_s = np.clip(contour_fn(s_lo)(us_src) - contour_fn(s_up)(us_src), 0, None)
    extra = float(np.max((gap_t - gap_s)[np.abs(x) <= cfg.seal_centre], initial=0.0))
    envelope = np.clip(1 - x * x, 0, 1) ** cfg.seal_roundness
    allow = np.clip(np.minimum(gap_t, gap_s + max(extra, 0.0) * envelope), 0, None)
    # The lips close the excess from the side that moved away: a dropped jaw's corners seal from below.
    rise = np.clip(contour_fn(s_up)(us) - contour_fn(t_up)(us), 0, None)
    drop = np.clip(contour_fn(t_lo)(us) - contour_fn(s_lo)(us), 0, None)
    share_top = np.where(rise + drop > 1e-6, rise / np.maximum(rise + drop, 1e-6), 0.5)
    return us, allow, share_top


def _shift(layer: np.ndarray, offset: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """layer (h, w[, c]) sampled at (box pixel - offset), offset (2,) in layer pixels, output of ``size`` (w, h)."""
    m = np.float32([[1, 0, -offset[0]], [0, 1, -offset[1]]])
    return cv2.warpAffine(layer, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def render_mouth(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, d: Deformation,
                 box: tuple[int, int, int, int], config: InteriorConfig,
                 photo: PhotometryConfig = PhotometryConfig(),
                 maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``roi`` (h, w, 3) uint8, the warped face region at ``box`` (x0, y0, x1, y1 image pixels), returned with the
    mouth drawn into the target lip opening; ``image`` (H, W, 3) uint8 is the source photo; ``maps`` the warp's
    backward maps (each (h, w) float32, the image pixel each roi pixel came from)."""
    cfg = config.mouth
    topo = topology()
    up_idx, lo_idx = list(topo.groups["lips_inner_upper"]), list(topo.groups["lips_inner_lower"])
    src, tgt = face.landmarks[:, :2], d.target_landmarks
    moved = float(np.abs(tgt[up_idx + lo_idx] - src[up_idx + lo_idx]).max())
    if moved < config.min_move_px:
        return roi
    lay = layers(image, face, cfg, photo)
    f, ipd = lay.frame, lay.frame.ipd
    t_up, t_lo = f.to_uv(tgt[up_idx]), f.to_uv(tgt[lo_idx])
    us, allow, share_top = _opening_profile(t_up, t_lo, f.to_uv(src[up_idx]), f.to_uv(src[lo_idx]), cfg)
    fill_sigma = max(1.0, cfg.seal_blur * float(np.max(contour_fn(t_lo)(us) - contour_fn(t_up)(us) - allow)) * ipd)

    # Work box: the target opening (plus room for the lip fill's blur), inside both the layers and the roi.
    loop = tgt[up_idx + lo_idx]
    pad = int(np.ceil(3 * fill_sigma + cfg.leak_reach_ipd * ipd)) + 2
    lx0, ly0, lx1, ly1 = lay.box
    x0 = max(int(np.floor(loop[:, 0].min())) - pad, lx0, box[0])
    y0 = max(int(np.floor(loop[:, 1].min())) - pad, ly0, box[1])
    x1 = min(int(np.ceil(loop[:, 0].max())) + pad + 1, lx1, box[2])
    y1 = min(int(np.ceil(loop[:, 1].max())) + pad + 1, ly1, box[3])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return roi
    sl = np.s_[y0 - ly0:y1 - ly0, x0 - lx0:x1 - lx0]
    u, v = lay.uv[sl][..., 0], lay.uv[sl][..., 1]
    v_up, v_lo = contour_fn(t_up)(u), contour_fn(t_lo)(u)
    in_width = ((u > t_up[:, 0].min()) & (u < t_up[:, 0].max())).astype(np.float32)
    inside = np.clip(np.minimum(v - v_up, v_lo - v) * ipd + 0.5, 0, 1) * in_width
    gap = np.interp(u, us, allow).astype(np.float32) * ipd  # allowed opening, pixels
    excess = np.clip(v_lo - v_up - gap / ipd, 0, None)
    mid = v_up + excess * np.interp(u, us, share_top).astype(np.float32) + gap / (2 * ipd)  # the open band's middle
    feather = lay.feather_px
    alpha = np.clip((gap / 2 - np.abs(v - mid) * ipd) / feather + 0.5, 0, 1) * np.clip(gap / cfg.min_open_px - 1, 0, 1)
    alpha *= in_width
    sealed = np.clip(inside - alpha, 0, 1)
    meets = np.zeros_like(sealed)  # where lips now meet over the photo's opening: their meeting line is drawn there
    leak = np.zeros_like(sealed)  # the photo's opening where the warp brought it onto the target's lips
    # Lips closed over an open mouth: the band along their meeting line is lips, not the squeezed interior...
    shut, gap_before = lips_closing(src, tgt, face.pose.image_axes()[1])
    if shut > 0 and gap_before >= 2 * cfg.min_open_px:
        half = max(cfg.closed_seam_ipd * ipd, 1.0)
        band = np.clip(1.5 - np.abs(v - mid) * ipd / half, 0, 1) * in_width * shut * (1 - alpha)
        inside = np.maximum(inside, band)
        sealed = np.maximum(sealed, band)
        meets = band
        fill_sigma = max(fill_sigma, half)
    if maps is not None and lay.opening is not None:  # ...and so is the rest of it, wherever the warp brought it
        # (corners pulled down past the squeezed teeth): the photo's opening where the target has lips
        wsl = np.s_[y0 - box[1]:y1 - box[1], x0 - box[0]:x1 - box[0]]
        came = carried(lay.opening, (maps[0][wsl], maps[1][wsl]), (lx0, ly0))
        # squeezed rows sample the photo sparsely: close the holes that left between the samples
        came = cv2.morphologyEx(came, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        came = np.clip(2 * cv2.GaussianBlur(came, (0, 0), cfg.leak_blur_ipd * ipd), 0, 1)
        leak = np.clip(came - alpha, 0, 1)
        if leak.max() >= cfg.min_alpha:
            inside = np.maximum(inside, leak)
            sealed = np.maximum(sealed, leak)
            meets = np.maximum(meets, leak)
            fill_sigma = max(fill_sigma, 1.0)
    if alpha.max() < cfg.min_alpha and sealed.max() < cfg.min_alpha:
        return roi

    out = roi[y0 - box[1]:y1 - box[1], x0 - box[0]:x1 - box[0]].astype(np.float32)
    rows, cols = np.flatnonzero(alpha.max(1) >= cfg.min_alpha), np.flatnonzero(alpha.max(0) >= cfg.min_alpha)
    if len(rows):  # the interior, on the part of the work box where it shows
        i = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        a = alpha[i]
        if lay.opening is not None:  # the photo's own mouth is redrawn as far as its lips moved (recompose_ipd);
            a = a * min(1.0, moved / (cfg.recompose_ipd * ipd))  # the rest of it is the warped photo
        sub = np.s_[sl[0].start + rows[0]:sl[0].start + rows[-1] + 1, sl[1].start + cols[0]:sl[1].start + cols[-1] + 1]
        half_gap = gap[i] / (2 * ipd)
        interior = _interior(lay, d, sub, (float(us[0]), float(us[-1])), u[i], v[i], mid[i] - half_gap,
                             mid[i] + half_gap, v_up[i], cfg)
        out[i] = weighted(out[i], 1 - a) + weighted(interior, a)
    if sealed.max() >= cfg.min_alpha:  # lips that stay together: their own colour, with the line where they meet
        # the soft edge of a sealed leak is dark photo, not lips: it does not colour the fill (away from an
        # opening, whose own soft edge the fill meets)
        k = 2 * int(np.ceil(feather)) + 1
        clear = cv2.dilate(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) < cfg.min_alpha
        known = 1.0 - np.maximum(inside, np.clip(cfg.fill_known_gain * leak, 0, 1) * clear)
        # lips are filled from lips, skin (a leak past the corners) from skin
        lips = poly_mask(known.shape, tgt[topo.loop("lips_outer")] - np.float32([x0, y0]))
        used = sealed > 0  # the fill shows only on sealed pixels, each from its own side of the lip line
        fill = (_fill_from_around(out, known * lips, fill_sigma, used & (lips > 0)) * lips[..., None]
                + _fill_from_around(out, known * (1 - lips), fill_sigma, used & (lips < 1)) * (1 - lips[..., None]))
        closed = np.clip(1 - gap / feather, 0, 1)  # the meeting line continues the mouth line where lips close
        # the line in shadow between them: light that crossed more lip tissue, darker and redder (Beer-Lambert),
        # but no redder than the photo shows its lips in shade; only where they close over the photo's opening:
        # the thin wedges a smile pulls between lips that were already closed carry the photo's own line (a drawn
        # one there is a dotted pencil line over it)
        depth = (cfg.junction_depth * closed * np.exp(-(((v - mid) * ipd / feather) ** 2)) * (meets > 0))[used]
        fill = fill[used]  # (n, 3): only the sealed pixels show it
        line = fill * np.power(np.clip(fill / lay.white, 1e-3, 1.0), depth[:, None])  # the same in a dark photo
        line = _no_more_colourful(line, fill, cfg.junction_chroma * lay.shade_chroma)
        a = sealed[used][:, None]
        out[used] = out[used] * (1 - a) + line * a
    roi = roi.copy()
    roi[y0 - box[1]:y1 - box[1], x0 - box[0]:x1 - box[0]] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return roi


def _no_more_colourful(line: np.ndarray, fill: np.ndarray, most: float) -> np.ndarray:
    """(n, 3) ``line`` colours with each one's colourfulness brought down to ``most``, or to that of ``fill`` (n, 3)
    where that is more, keeping its grey."""
    grey = line.mean(axis=-1, keepdims=True)
    cap = np.maximum(colourfulness(fill), most) / np.maximum(colourfulness(line), 1e-6)
    return grey + (line - grey) * np.minimum(1.0, cap)[:, None]


def _fill_from_around(image: np.ndarray, known: np.ndarray, sigma: float, where: np.ndarray, levels: int = 3,
                      enough: float = 0.2) -> np.ndarray:
    """(h, w, 3) float32: ``image`` (h, w, 3) blurred by ``sigma`` px over its ``known`` (h, w) 0..1 pixels only
    (normalised convolution), at the pixels ``where`` (h, w) bool (0 elsewhere). Where the known pixels within reach
    weigh less than ``enough`` of the kernel, the blur widens 3x per level, so a hole of any width is filled from the
    pixels around it and never darkens toward black; the wider blurs run only while some pixel still needs them."""
    fill = np.zeros_like(image)
    need = where.astype(np.float32)  # share of each pixel still to fill
    for level in range(levels):
        if not need.any():
            break
        s = sigma * 3 ** level
        num = cv2.GaussianBlur(image * known[..., None], (0, 0), s)
        den = cv2.GaussianBlur(known, (0, 0), s)
        take = need if level == levels - 1 else need * np.clip(den / enough, 0, 1)
        fill += take[..., None] * num / np.maximum(den, 1e-6)[..., None]
        need = need - take
    return fill


def _interior(lay: MouthLayers, d: Deformation, sl, span: tuple[float, float], u: np.ndarray, v: np.ndarray,
              top: np.ndarray, bottom: np.ndarray, lip: np.ndarray, cfg: MouthConfig) -> np.ndarray:
    """(h, w, 3) float32 colour (0-255) of the mouth's inside over the layers' slice ``sl``; ``span`` is the
    opening's u range, ``u``, ``v``, ``top``/``bottom`` (h, w) the pixels' frame coordinates and the open band's
    lip lines, ``lip`` (h, w) the target's upper inner lip (frame v per pixel, IPD units)."""
    f, ipd = lay.frame, lay.frame.ipd
    size = (sl[1].stop - sl[1].start, sl[0].stop - sl[0].start)
    jaw_px = d.displacement_px[list(topology().groups["mandible"])].mean(0)
    jaw_v = float(f.to_uv(f.centre + jaw_px)[1])
    offset = np.array([sl[1].start, sl[0].start], float)
    lower = _shift(lay.lower, jaw_px - offset, size)
    own_lower = _shift(lay.own_lower, jaw_px - offset, size)
    # a raised upper lip takes its edge and shadow along: the photo's own pixels there give way to the crown
    raised = lay.lip_edge[sl] * np.clip((lay.lip_line[sl] - lip) * f.ipd / cfg.crown_skip_px, 0, 1)
    upper = lay.upper[sl] + (lay.under_lip[sl] - lay.upper[sl]) * cv2.merge([raised] * 4)

    half = max((span[1] - span[0]) / 2, 1e-6)
    x = np.abs(u - (span[0] + span[1]) / 2) / half
    tongue_top = np.minimum(lay.lower_incisal + jaw_v - cfg.tongue_rise_ipd * (1 - cfg.tongue_curve * x * x),
                            bottom - cfg.tongue_share * (bottom - top))
    edge = max(cfg.tongue_edge_px, cfg.tongue_edge_ipd * ipd, lay.feather_px)  # no sharper than the photo's edges
    tongue = np.clip((v - tongue_top) * ipd / edge + 0.5, 0, 1)
    back = cfg.tongue_back  # its back is in shade
    lit = back + (1 - back) * np.clip((v - tongue_top) / cfg.tongue_depth_ipd, 0, 1)
    cavity = painted(np.ones_like(tongue), lay.cavity_rgb)
    colour = cavity + weighted(painted(lit, lay.tongue_rgb - lay.cavity_rgb), tongue)  # the tongue over the dark
    lower_rgb, lower_a = colour_and_alpha(lower)
    colour = lower_rgb + weighted(colour, 1 - lower_a)
    # what lies behind the upper incisal edge is in its shadow: a dark line between the rows where the lips part
    behind = np.exp(-np.clip(v - lay.upper_edge[sl], 0, None) / cfg.incisal_shadow_ipd)
    colour = colour + weighted(cavity - colour, cfg.incisal_shadow * behind)
    upper_rgb, upper_a = colour_and_alpha(upper)
    colour = upper_rgb + weighted(colour, 1 - upper_a)
    own = lay.own[sl] * (1 - raised) + own_lower * (1 - upper_a)

    # Shadow: toward the corners, under the upper lip, above the lower lip; toward the cavity's dark, not black.
    ramp = np.clip((x - cfg.corner_start) / (1 - cfg.corner_start), 0, 1)
    shade = (1 - cfg.corner_dark * ramp * ramp * (3 - 2 * ramp))
    shade *= 1 - cfg.upper_lip_shadow * np.exp(-np.clip(v - top, 0, None) / cfg.lip_shadow_ipd)
    shade *= 1 - cfg.lower_lip_shadow * np.exp(-np.clip(bottom - v, 0, None) / cfg.lip_shadow_ipd)
    synth = cavity + weighted(colour - cavity, shade) + planes(lay.grain[sl])
    return weighted(colour, own) + weighted(synth, 1 - own)
