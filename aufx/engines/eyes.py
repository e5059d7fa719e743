"""The eyeball where lids open or close, and the upper lid where it closes.

The eyeball does not move with expressions, so inside the target lid opening the original pixels are shown in place
(the iris stays round); where the lids reveal what the photo never showed, sclera and iris are continued from their
own colours. The photo's lash lines are lid, not eyeball: a lid that opens carries its margin with the warp, and a
margin that stays keeps its own pixels (replacing them, or blending synthesized sclera into the soft edge of the
eye's mask, drew a pale outline round the eye). A lower lid that rises over the eyeball is the photo's lower lid
moved up (the warp's inversion leaves jagged iris there), and so is eyeball the warp brings below a new lower margin
(where lids meet, the field folds). A closing upper lid is the person's own lid skin: the visible band between the
skin ring above the lid and the lash line, stretched from that ring down to the new margin (along the lid, so
nothing of the eyeball is smeared into it), with the photo's grain, and a dark lash line sized by the IPD along the
new margin. What in that band is not lid skin (lashes that curl up over the lid, the crease's shadow, eyeball where
MediaPipe's margin lies on it) is told from it by the brow-bone skin's hue and lightness: a lid that closes is the
smoothed colour of its clear skin with the sample's own texture as far as the stretch keeps it, and isotropic skin
texture at the skin's own contrast for the rest (stretched, the sample's texture is streaks); a lid lowered only a
little (a squint) keeps its own band.
"""
from __future__ import annotations

import cv2
import numpy as np

from aufx.model.deform import Deformation
from aufx.engines.channels import painted, planes, weighted
from aufx.engines.interiors import (InteriorConfig, bbox, carried, median_colour, normalized_blur, poly_mask,
                                    polyline_distance, pull_push)
from aufx.engines.photometry import Photometry, PhotometryConfig, grain, luminance, photometry
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology


def render_eyes(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, d: Deformation,
                box: tuple[int, int, int, int], cfg: InteriorConfig,
                photo: PhotometryConfig = PhotometryConfig(),
                maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``roi`` (h, w, 3) uint8, the warped face region at ``box`` (x0, y0, x1, y1 image pixels), with both eyes
    drawn into their target lid openings; ``image`` (H, W, 3) uint8 is the photo the warp sampled; ``maps`` the
    warp's backward maps (each (h, w) float32, the image pixel each roi pixel came from)."""
    topo = topology()
    off = np.array(box[:2], float)
    src = face.landmarks[:, :2] - off
    tgt = d.target_landmarks - off
    for eye in ("eye_R", "eye_L"):
        loop = topo.loop(eye)
        if np.abs(tgt[loop] - src[loop]).max() < cfg.min_move_px:
            continue
        x0, y0, x1, y1 = bbox(np.vstack([src[loop], tgt[loop]]), 3, roi.shape[:2])
        if x1 <= x0 or y1 <= y0:
            continue
        shape = (y1 - y0, x1 - x0)
        corner = np.array([x0, y0], float)
        if not _eye_shown(image, face, eye, cfg, photo):
            continue
        m_tgt = poly_mask(shape, tgt[loop] - corner)
        m_src = poly_mask(shape, src[loop] - corner)
        covered = np.clip(m_src - m_tgt, 0, 1)  # eyeball the lids now cover
        leak = np.zeros(shape, np.float32)  # eyeball the warp brought outside the new opening: where lids meet, the
        if maps is not None:  # field folds, and its inversion can take a pixel below the margin from the pupil
            came = carried(m_src, (maps[0][y0:y1, x0:x1], maps[1][y0:y1, x0:x1]), (box[0] + x0, box[1] + y0))
            leak = np.clip(came - np.maximum(m_tgt, m_src), 0, 1)
        _, down = face.pose.image_axes()
        at = (box[0] + x0, box[1] + y0)  # the eye box's top-left in the image
        if m_tgt.max() == 0:  # shut: a lower lid that rose to meet the upper one covers its side of the eyeball
            # (the warp's inversion leaves pieces of the pupil below the new lash line), then the upper lid closes
            roi = roi.copy()
            patch = _raised_lower_lid(roi[y0:y1, x0:x1].astype(np.float32), image, at, covered, leak, src, tgt,
                                      eye, corner, down, cfg)
            roi[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
            roi = _closing_lid(roi, image, face, eye, src, tgt, box, cfg, photo)
            continue
        static = image[at[1]:box[1] + y1, at[0]:box[0] + x1].astype(np.float32)
        opening = m_tgt.sum() > m_src.sum()
        band = _lash_band(face, cfg)
        lower = list(topo.groups[f"{eye}_lower"])
        lowered = float(np.mean((tgt[lower] - src[lower]) @ down)) > cfg.lid_close_px  # the lower lid drops
        m_src = _photo_eyeball(m_src, src - corner, eye, opening, lowered, band, cfg)

        # Continue sclera and iris into what the source lids hid: colours from the visible parts.
        rr, r = _iris_distance(src - corner, eye, shape)
        rr = rr.astype(np.float32)
        iris_rgb, sclera_rgb = _eyeball_colours(image, face, eye, opening, lowered, cfg)
        disk = np.clip(r + 0.5 - rr, 0, 1)
        limbus = np.clip(1 - np.abs(rr - r) / max(cfg.limbus_width * r, cfg.limbus_min_px), 0, 1) * cfg.limbus_dark
        pupil = np.clip(cfg.pupil_radius * r + 0.5 - rr, 0, 1)
        shade = (1 - limbus) * (1 - cfg.pupil_dark * pupil)
        synth = painted((1 - disk) * shade, sclera_rgb) + painted(disk * shade, iris_rgb)
        # as sharp as the photo, no sharper: on a soft photo a painted limbus and a seam to the photo's own eyeball
        # drew a hard-edged disc and a bright crescent (on an 8x enlarged astronaut, edges 3.7x the photo's there)
        known = m_src
        blur = photometry(image, face, photo).blur_px
        if blur > cfg.eye_min_blur_px:
            synth = cv2.GaussianBlur(synth, (0, 0), blur)
            known = cv2.GaussianBlur(known, (0, 0), blur)
        content = weighted(static, known) + weighted(synth, 1 - known)

        # Shadow of the upper lid and lashes along the new lid margin, where that margin is new: synthesized
        # eyeball, and the photo's eyeball under a lid that came down (a margin that stays has its shadow already)
        margin = list(topo.groups[f"{eye}_upper"])
        dist = polyline_distance(shape, tgt[margin] - corner)
        reach = max(cfg.lid_shadow_ipd * face.pose.scale, cfg.lid_shadow_min_px)
        moved = float(np.clip(np.mean((tgt[margin] - src[margin]) @ down) / (cfg.lid_shadow_full * reach), 0, 1))
        where = (1 - known) + known * moved
        content *= planes(1.0 - cfg.lid_shadow * where * np.exp(-dist / reach))

        a = m_tgt
        if opening:  # the warp carried the photo's lash lines with the lids: keep them along the new margins
            if lowered:  # (sclera synthesized up to a lowered lower margin drew a pale line along it)
                dist = np.minimum(dist, polyline_distance(shape, tgt[lower] - corner) / cfg.lower_lash_share)
            a = a * np.clip(dist / band - 0.5, 0, 1)  # lash within half a band, eyeball past 1.5
        roi = roi.copy()
        patch = _raised_lower_lid(roi[y0:y1, x0:x1].astype(np.float32), image, at, covered, leak, src, tgt, eye,
                                  corner, down, cfg)
        roi[y0:y1, x0:x1] = np.clip(weighted(patch, 1 - a) + weighted(content, a) + 0.5, 0, 255).astype(np.uint8)
        roi = _closing_lid(roi, image, face, eye, src, tgt, box, cfg, photo)
    return roi


def _lash_band(face: FaceAnalysis, cfg: InteriorConfig) -> float:
    """Width (px) of the lash line along a lid margin: lid, not eyeball."""
    return max(cfg.lash_band_ipd * face.pose.scale, cfg.lash_band_min_px)


def _iris_distance(src: np.ndarray, eye: str, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """(each pixel's distance (h, w) from the photo's iris centre, the iris radius), both px, over a box of ``shape``
    (h, w) in which the photo's landmarks are ``src`` (478, 2)."""
    iris = list(topology().groups[f"iris_{eye[-1]}"])  # centre, then four points on the limbus
    c = src[iris[0]]
    r = float(np.mean(np.linalg.norm(src[iris[1:]] - c, axis=1)))
    return np.hypot(np.arange(shape[1]) - c[0], (np.arange(shape[0]) - c[1])[:, None]), r


def _photo_eyeball(m_src: np.ndarray, src: np.ndarray, eye: str, opening: bool, lowered: bool, band: float,
                   cfg: InteriorConfig) -> np.ndarray:
    """(h, w) float32 0..1: how much of each pixel of a box is the photo's own visible eyeball, from ``m_src`` (h, w),
    the photo's eye opening over the box, and ``src`` (478, 2) the photo's landmarks in box pixels."""
    topo = topology()
    lower = src[list(topo.groups[f"{eye}_lower"])]
    if opening:  # an opening eye: the photo's lash line of a margin that moves is lid, not eyeball
        for margin in ("upper", "lower") if lowered else ("upper",):
            lashes = polyline_distance(m_src.shape, src[list(topo.groups[f"{eye}_{margin}"])])
            share = cfg.lower_lash_share if margin == "lower" else 1.0
            m_src = m_src * np.clip(lashes / (share * band), 0, 1).astype(m_src.dtype)
    if not lowered:  # a lower margin that stays is the photo's, not the soft edge of its mask blended with
        # synthesized sclera (a pale line along it, out past the eye's corner where the contour overshoots)
        lashes = polyline_distance(m_src.shape, lower)
        m_src = np.maximum(m_src, np.clip(1.5 - lashes / band, 0, 1).astype(m_src.dtype))
    return m_src


def _eyeball_colours(image: np.ndarray, face: FaceAnalysis, eye: str, opening: bool, lowered: bool,
                     cfg: InteriorConfig) -> tuple[np.ndarray, np.ndarray]:
    """(iris RGB, sclera RGB), each (3,) float32, of the photo ``image`` (H, W, 3) uint8: the medians of its visible
    eyeball near and away from the iris centre, sampled over the photo's own eye (cached per face: the same colours
    for every slider position, and no work per edit)."""
    key = ("eyeball_colours", eye, opening, lowered, cfg)
    if key not in face.cache:
        topo = topology()
        src = face.landmarks[:, :2]
        band = _lash_band(face, cfg)
        x0, y0, x1, y1 = bbox(src[topo.loop(eye)], int(np.ceil(1.5 * band)) + 3, image.shape[:2])
        corner = np.array([x0, y0], float)
        shape = (y1 - y0, x1 - x0)
        seen = _photo_eyeball(poly_mask(shape, src[topo.loop(eye)] - corner), src - corner, eye, opening, lowered,
                              band, cfg) > 0.9
        static = image[y0:y1, x0:x1].astype(np.float32)
        rr, r = _iris_distance(src - corner, eye, shape)
        face.cache[key] = (median_colour(static, seen & (rr < cfg.iris_sample * r), cfg.iris_rgb),
                           _sclera_colour(static[seen & (rr > cfg.sclera_sample * r)], cfg))
    return face.cache[key]


def _sclera_colour(samples: np.ndarray, cfg: InteriorConfig) -> np.ndarray:
    """(3,) float32 sclera RGB from the eye opening's visible pixels beyond the iris (n, 3): the whitest quarter
    (bright and unsaturated, so lids, lashes and the caruncle inside a loose eye contour do not count), its tint
    limited to ``sclera_tint`` of its brightness (Grace Hopper's small eyes behind her lenses otherwise gave a brown
    "sclera" that filled a lowered lower lid's gap as a flat brown patch)."""
    if len(samples) < 4:
        return np.array(cfg.sclera_rgb, np.float32)
    white = samples.mean(1) - np.ptp(samples, axis=1)
    rgb = np.median(samples[white >= np.percentile(white, 75)], axis=0).astype(np.float32)
    grey = float(rgb.mean())
    tint = float(np.ptp(rgb))
    return grey + (rgb - grey) * min(1.0, cfg.sclera_tint * grey / max(tint, 1e-6))


def _raised_lower_lid(patch: np.ndarray, image: np.ndarray, origin: tuple[int, int], covered: np.ndarray,
                      leak: np.ndarray, src: np.ndarray, tgt: np.ndarray, eye: str, corner: np.ndarray,
                      down: np.ndarray, cfg: InteriorConfig) -> np.ndarray:
    """``patch`` (h, w, 3) float32 (the warped eye box, top-left ``origin`` (x, y) in ``image`` (H, W, 3) uint8, the
    photo) with the eyeball a raised lower lid now covers (the lower lid's side of ``covered`` (h, w), what the lids
    cover) and the eyeball the warp brought there (``leak`` (h, w)) painted as that lid: the photo moved as the
    lower margin moves at each place along it (a mean motion left the pupil below the middle of a margin that rose
    only there). The warp cannot draw it: the lid slides over the eyeball there, and its inversion leaves jagged
    pieces of iris below the new margin. The lid is read from the whole photo: a lid that rises further than the
    eye box reaches below its margin was the box's bottom row repeated, vertical stripes over the eye (AU07 0.8)."""
    topo = topology()
    lower = list(topo.groups[f"{eye}_lower"])
    move = tgt[lower] - src[lower]  # (k, 2)
    rises = float(np.max(-(move[1:-1] @ down))) >= cfg.lid_close_px  # else only what the warp brought is lid
    if not rises and leak.max() < 0.05:
        return patch
    h, w = patch.shape[:2]
    frame = o, ex, ey, length = _frame(tgt[lower][0] - corner, tgt[lower][-1] - corner, down)
    gx, gy = np.arange(w, dtype=np.float32)[None, :], np.arange(h, dtype=np.float32)[:, None]  # a row, a column
    rx, ry = gx - o[0], gy - o[1]
    u = np.clip((rx * ex[0] + ry * ex[1]) / length, 0, 1)
    below = (rx * ey[0] + ry * ey[1]) > _curve(tgt[lower] - corner, frame, u) - 1.0  # the lower lid's side only
    lost = ((np.maximum(covered, leak) if rises else leak) * below).astype(np.float32)
    at = (tgt[lower] - corner - o) @ ex / length
    order = np.argsort(at)
    mx, my = (np.interp(u, at[order], move[order, i]).astype(np.float32) for i in (0, 1))
    lid = cv2.remap(image, (gx - mx + origin[0]).astype(np.float32), (gy - my + origin[1]).astype(np.float32),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    return weighted(patch, 1 - lost) + weighted(lid, lost)


def _eye_shown(image: np.ndarray, face: FaceAnalysis, eye: str, cfg: InteriorConfig,
               photo: PhotometryConfig) -> bool:
    """Whether the photo (H, W, 3) uint8 shows ``eye`` of ``face``: the brightest fifth inside its contour (sclera, a
    catchlight, a closed lid's skin) at least ``eye_shown`` x the skin's luma. Behind an opaque lens it is as dark
    as the lens, and a lid drawn there is skin painted over the lens. Cached per face: the photo does not change."""
    key = ("eye_shown", eye, cfg.eye_shown, photo)
    if key not in face.cache:
        contour = face.landmarks[topology().loop(eye), :2]
        x0, y0, x1, y1 = bbox(contour, 1, image.shape[:2])
        shown = False
        if x1 > x0 and y1 > y0:
            inside = poly_mask((y1 - y0, x1 - x0), contour - [x0, y0]) > 0.5
            shown = True  # a shut eye's sliver: its lid is what the photo shows
            if inside.any():
                bright = float(np.percentile(luminance(image[y0:y1, x0:x1])[inside], 80))
                skin = photometry(image, face, photo).skin_rgb
                shown = bright >= cfg.eye_shown * float(np.dot(skin, [0.299, 0.587, 0.114]))
        face.cache[key] = shown
    return face.cache[key]


def _frame(corner0: np.ndarray, corner1: np.ndarray, down: np.ndarray):
    """Eye frame from two (2,) corner points, pixels: (origin (2,), x unit (2,), y unit (2,), length px); x runs
    along the eye (u = 0..1 corner to corner), y across it, downwards, in pixels."""
    ex = corner1 - corner0
    length = float(np.linalg.norm(ex)) + 1e-9
    ex = ex / length
    ey = np.array([-ex[1], ex[0]])
    return corner0, ex, (ey if ey @ down >= 0 else -ey), length


def _curve(points: np.ndarray, frame, u: np.ndarray) -> np.ndarray:
    """y (pixels, shape of ``u``) of the contour ``points`` (k, 2) pixels in the eye frame at each u (held flat
    beyond its ends)."""
    o, ex, ey, length = frame
    pu, py = (points - o) @ ex / length, (points - o) @ ey
    order = np.argsort(pu)
    return np.interp(u, pu[order], py[order])


def _closing_lid(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, eye: str, src: np.ndarray,
                 tgt: np.ndarray, box: tuple[int, int, int, int], cfg: InteriorConfig,
                 photo: PhotometryConfig) -> np.ndarray:
    """Repaint the upper lid between its skin ring and the lowered margin with the person's own lid skin, and
    draw the lash line along the new margin. ``src``/``tgt`` are (478, 2) landmarks in ROI pixels; ``roi``
    (h, w, 3) uint8 at ``box`` in ``image`` (H, W, 3) uint8."""
    topo = topology()
    margin = np.array(topo.groups[f"{eye}_upper"])
    ring = np.array(topo.groups[f"{eye}_lid_ring"])
    _, down = face.pose.image_axes()
    if float(np.mean((tgt[margin[1:-1]] - src[margin[1:-1]]) @ down)) < cfg.lid_close_px:
        return roi  # the lid does not come down: the warp has it
    pm = photometry(image, face, photo)
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
    skip = cfg.lid_crease_skip * np.maximum(s_bottom - gap - s_top, 0.0)  # below the crease shadow (and frame edge)
    s_y = s_top + skip + v * (s_bottom - gap - s_top - skip)
    sx = fs[0][0] + u * fs[3] * fs[1][0] + s_y * fs[2][0] + box[0]
    sy = fs[0][1] + u * fs[3] * fs[1][1] + s_y * fs[2][1] + box[1]
    skin = cv2.remap(image, sx.astype(np.float32), sy.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    ring_u = (tgt[ring] - ft[0]) @ ft[1] / ft[3]
    ends = np.clip((u - ring_u.min()) / cfg.lid_end_fade, 0, 1) * np.clip((ring_u.max() - u) / cfg.lid_end_fade, 0, 1)
    # a shut eye (the lower margin within a pixel of the upper) keeps no sliver of eyeball: the lid covers it
    lower = _curve(tgt[np.array(topo.groups[f"{eye}_lower"])], ft, u)
    floor = np.where(lower - bottom < cfg.shut_px, np.maximum(bottom, lower) + cfg.shut_cover_px, bottom)
    a = np.clip((y - top) / cfg.lid_top_px + 0.5, 0, 1) * np.clip((floor - y) / cfg.lid_margin_px + 0.5, 0, 1) * ends
    inside = (u > 0) & (u < 1)
    # the brow-bone skin above the lid ring (its lighter half: brow hairs are darker), which a closed lid continues
    above = _samples(image, src[ring] + box[:2] - down * cfg.brow_bone_ipd * ipd, rows=2)
    # only a lid that closes turns its lashes down and shows skin where its band held them; a lid lowered part of
    # the way (a squint, AU07) keeps its own band, lashes and crease shadow and all
    lower_y = src[np.array(topo.groups[f"{eye}_lower"])[1:-1]] @ down
    opening = max(float(np.mean(lower_y) - np.mean(src[margin[1:-1]] @ down)), 1.0)
    closure = float(np.mean((tgt[margin[1:-1]] - src[margin[1:-1]]) @ down)) / opening
    c0, c1 = cfg.lid_clean_closure
    closing = float(np.clip((closure - c0) / (c1 - c0), 0.0, 1.0))
    filled = np.zeros(a.shape, np.float32)
    stretch = (bottom - top) / np.maximum(s_bottom - gap - s_top, 0.5)  # how far the sampled band is stretched
    seam = np.clip(v / cfg.lid_seam, 0.0, 1.0)  # the lid's top is the photo's own skin under the ring: no seam
    seam = seam * seam * (3.0 - 2.0 * seam)
    if closing > 0:
        bone = pm.skin_rgb
        if len(above) >= 8:
            bone_luma = luminance(above[None])[0]
            bone = np.median(above[bone_luma >= np.median(bone_luma)], axis=0).astype(np.float32)
        cleaned, filled = _lid_skin_only(skin, a > 0.5, bone, ipd, pm, 1.0 / np.maximum(stretch, 1.0), cfg)
        t = (seam * closing)[..., None]
        skin = skin * (1.0 - t) + cleaned * t
        filled = filled * t[..., 0]
    # stretching smooths the grain, and the filled pixels have none: add back what they lost, at the photo's level
    lost = pm.noise * np.sqrt(np.clip(np.maximum(1.0 - 1.0 / np.maximum(stretch, 1.0) ** 2, filled ** 2), 0.0, 1.0))
    skin += (lost * grain(max(roi.shape[:2]), 11)[y0:y1, x0:x1])[..., None]
    skin *= (1.0 - cfg.lid_turn_under * v * v)[..., None]  # the lid turns under towards its margin
    # a shut lid comes forward out of the socket's shadow: lift it part way towards the brow-bone skin above it
    lid = a > 0.5
    if lid.any() and len(above):
        lid_luma = float(np.median(luminance(np.clip(skin[lid], 0, 255)[None].astype(np.uint8))))
        bone_luma = float(np.median(luminance(above[None])))
        lift = float(np.clip((bone_luma / max(lid_luma, 1.0)) ** cfg.lid_lift, 1.0, cfg.lid_lift_max))
        skin *= (1.0 + (lift - 1.0) * seam)[..., None]  # from the photo's own skin at the top (a lifted top edge
        # drew a bright outline round the lid)
    patch = roi[y0:y1, x0:x1].astype(np.float32)
    if closing > 0:  # the repainted lid meets the skin around it without a step (its top is the photo's own skin)
        step = _border_step(skin, patch, a, y < bottom - cfg.lid_margin_px, ipd, cfg)
        skin += step * (closing * seam)[..., None]
    patch = patch * (1 - a[..., None]) + skin * a[..., None]

    # the lash line: dark, thickest over the middle and outer lid, hanging just below the margin
    lash_px = max(cfg.lash_width_ipd * ipd, cfg.lash_min_px)
    sigma = float(np.hypot(cfg.lash_sigma * lash_px, pm.blur_px))
    along = np.sin(np.pi * uc) ** cfg.lash_taper * (1.0 - cfg.lash_inner_thin * uc) * inside
    la = cfg.lash_strength * along * np.exp(-0.5 * ((y - bottom - cfg.lash_drop * lash_px) / sigma) ** 2)
    patch = patch * (1 - la[..., None]) + _lash_colour(image, src[margin] + box[:2], cfg) * la[..., None]
    out = roi.copy()
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    return out


def _border_step(skin: np.ndarray, around: np.ndarray, a: np.ndarray, above: np.ndarray, ipd: float,
                 cfg: InteriorConfig) -> np.ndarray:
    """(h, w, 3) float32: the correction that takes the repainted lid ``skin`` (h, w, 3) to the colour of the skin
    ``around`` (h, w, 3) it at the lid's border (its alpha ``a`` (h, w)) where that border lies ``above`` (h, w) bool
    the new margin (the margin itself meets lashes and eyeball, not skin), smooth inside (pull_push). A lid painted
    from the colour of its band was up to 30 levels off the skin beside it: an outlined patch."""
    inside = a > 0.5
    k = max(2, int(round(cfg.lid_border_ipd * ipd)))
    grown = cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2)) > 0
    ring = grown & ~inside & above
    if ring.sum() < 4 or inside.sum() < 4:
        return np.zeros_like(skin)
    # each side's mean within about k of the border: grain and texture left out
    near = [normalized_blur(image, where.astype(np.float32), k) for image, where in ((around, ring), (skin, inside))]
    return pull_push(near[0] - near[1], ring)


def _lid_skin_only(skin: np.ndarray, lid: np.ndarray, bone: np.ndarray, ipd: float, pm: Photometry,
                   kept: np.ndarray, cfg: InteriorConfig) -> tuple[np.ndarray, np.ndarray]:
    """The sampled lid ``skin`` (h, w, 3) float32 with what is not lid skin inside ``lid`` (h, w) bool filled, and
    how much each pixel was filled (h, w) float32 0..1. The band between the lid ring and the photo's margin holds
    more than lid skin: lashes that curl up over the lid, the crease's shadow and, where MediaPipe's margin lies on
    the eyeball (wide-open eyes), sclera and iris; stretched over a closed lid they drew it as streaks. Lid skin is
    judged against the brow-bone skin ``bone`` (3,) RGB that the closed lid continues: its hue (CIELAB a*b* within
    ``lid_hue``) and about its lightness (``lid_luma_range``). The lid becomes the colour of its clear skin, smoothed
    (the brow bone's, a little darker, where little is clear), with the sample's own texture where it is skin, as
    strong as the skin's texture or the photo's grain (``pm``, the photo's Photometry)."""
    noise, texture = pm.noise, pm.texture
    none = np.zeros(lid.shape, np.float32)
    if lid.sum() < 8:
        return skin, none
    lab = cv2.cvtColor(np.clip(skin, 0, 255) / np.float32(255), cv2.COLOR_RGB2LAB)
    ref = cv2.cvtColor(np.float32(bone).reshape(1, 1, 3) / 255, cv2.COLOR_RGB2LAB)[0, 0]
    hue = (np.hypot(lab[..., 1] - ref[1], lab[..., 2] - ref[2]) - cfg.lid_hue) / cfg.lid_hue_soft
    # lightness about the brow bone's, or the lid's own lighter skin where the lid lies in shadow (deep-set eyes,
    # behind tinted lenses): a closed lid judged by the brow bone alone was filled flat there
    skin_hued = lid & (hue <= 0)
    light = float(ref[0])
    if skin_hued.sum() >= 8:
        light = min(light, float(np.percentile(lab[..., 0][skin_hued], cfg.lid_light_percentile)))
    lo, hi = cfg.lid_luma_range
    ratio = lab[..., 0] / max(light, 1.0)
    off = np.maximum(hue, np.maximum(lo - ratio, ratio - hi) / cfg.lid_luma_soft)  # 0 at the limits, 1 past
    keep = (1.0 - np.clip(off, 0.0, 1.0)) * lid
    clear = keep > 0.9
    typical = np.median(skin[clear], axis=0) if clear.sum() >= 8 else np.float32(bone) * cfg.lid_shade
    sigma = max(cfg.lid_fill_ipd * ipd, 1.0)
    sure = keep ** 4  # the colour is taken from clear lid skin only, not from the soft edges of what is not
    weight = cv2.GaussianBlur(sure, (0, 0), sigma)[..., None]
    base = (cv2.GaussianBlur(skin * sure[..., None], (0, 0), sigma) + 0.05 * typical) / (weight + 0.05)
    # over the smooth lid colour, the sample's own fine texture where it is lid skin, no stronger than the skin's
    # texture (an aged lid keeps its wrinkles; a lash or a glint is a line, not texture)
    coarse = max(cfg.lid_texture_ipd * ipd, 1.0)
    fine = skin - cv2.GaussianBlur(skin, (0, 0), coarse)
    limit = cfg.lid_texture_limit * np.maximum(noise, texture * base.mean(axis=2, keepdims=True))
    # stretched down over the eye, the sample's texture turns into streaks along the stretch: only the share
    # ``kept`` (h, w) (1 / stretch) is the sample's, the rest (and all of what is filled) is isotropic skin texture
    # at the skin's own contrast (a filled lid without it was a smooth blob)
    g = grain(max(lid.shape), 17)[:lid.shape[0], :lid.shape[1]]
    iso = cv2.GaussianBlur(g, (0, 0), max(pm.blur_px, 0.5)) - cv2.GaussianBlur(g, (0, 0), coarse)
    iso *= np.float32(texture) / max(float(iso.std()), 1e-6)
    own = kept * keep
    out = base + np.clip(fine, -limit, limit) * own[..., None] + base * (iso * np.sqrt(1.0 - own * own))[..., None]
    filled = (1.0 - keep) * lid
    return np.where(lid[..., None], out, skin), filled.astype(np.float32)


def _samples(image: np.ndarray, poly: np.ndarray, rows: int = 1) -> np.ndarray:
    """(n, 3) uint8 pixels of ``image`` (H, W, 3) along a polyline (k, 2) in image pixels, and ``rows - 1`` rows
    above it."""
    pts = np.concatenate([np.linspace(a, b, 6, endpoint=False) for a, b in zip(poly[:-1], poly[1:])])
    xy = np.round(pts).astype(int)
    h, w = image.shape[:2]
    xy = xy[(xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= rows - 1) & (xy[:, 1] < h)]
    return np.concatenate([image[xy[:, 1] - k, xy[:, 0]] for k in range(rows)]).reshape(-1, 3)


def _lash_colour(image: np.ndarray, margin: np.ndarray, cfg: InteriorConfig) -> np.ndarray:
    """(3,) float32 RGB, the person's own lash colour: the darkest pixels along the photo's upper lid margin
    ``margin`` (k, 2) image pixels."""
    rgb = _samples(image, margin, rows=2).astype(np.float32)
    if len(rgb) < 4:
        return np.array(cfg.lash_rgb, np.float32)
    lum = luminance(rgb[None].astype(np.uint8))[0]
    return np.median(rgb[lum <= np.percentile(lum, cfg.lash_percentile)], axis=0)
