"""Rigid things stay rigid: spectacle frames do not bend with the brows.

Once per face the frames are looked for around the eyes, guided by the landmarks: in polar coordinates about each
eye, the rim is the closed path of strongest radial edges (dynamic programming over the angle); a face wears
glasses when both paths are edges all the way round (a brow gives only the top of a ring) and something crosses
the nose bridge between them (the bridge is tested first: it is cheap and most faces stop there). The frame is
what is not skin-coloured or is black along each rim and across the bridge, grown through the black pixels it
touches, and the bridge bar between its upper and lower edges (a translucent bridge is skin-coloured); the eyes and
upper lids are never part of it. The warp then moves a copy of the photo with the frame inpainted (re-grained), and
every edit puts the photo's own frame pixels back on top: the frame stays where it was, the face moves behind it,
and no piece of frame is dragged along with the brows.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aufx.engines.photometry import PhotometryConfig, grain, luminance, photometry
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology


@dataclass(frozen=True)
class RigidConfig:
    """Design constants of the spectacle-frame search and keep (IPD = the face's inter-pupil distance)."""

    enabled: bool = True
    rim_min_ipd: float = 0.24  # the rim is searched this far from the eye centre...
    rim_max_ipd: float = 0.85  # ...up to this far (IPD units)
    angles: int = 120  # polar resolution of the rim search
    rim_slope: int = 2  # the rim radius changes by at most this many samples per angle step
    complete: float = 3.0  # glasses: the rim's weak quarter (25th percentile of its edge strength) is at least this
    #                        many times the skin's typical edge (median over the cheeks and forehead)
    bridge: float = 4.0  # ...and the nose bridge shows an edge this many times the skin's typical edge
    rim_width_ipd: float = 0.16  # thickest frame rim (IPD)
    run_cap: float = 1.5  # ...and inwards (towards the lens) at most this many times (plus one sample) the run that
    run_window: int = 5  # ...the rays this many angle steps either side reach (their 75th percentile)
    grow_ipd: float = 0.6  # dark pieces of frame connected to the found ones are added within this of an eye
    black: float = 0.35  # "dark as a frame": luma below this fraction of the skin's
    rim_percentile: float = 25.0  # a rim's completeness is this percentile of the edge strength along it
    bridge_half_ipd: float = 0.12  # the nose-bridge profile is averaged over a strip this half-wide (IPD)...
    bridge_rays: int = 7  # ...sampled along this many parallel lines
    bridge_band_ipd: float = 0.15  # the frame's bridge is looked for along a band this wide between the rims (IPD)
    bar_search_ipd: float = 0.15  # the bridge bar's edges are looked for this far above and below that band's axis
    bar_edge: float = 2.0  # ...and the bar holds where both its edges are this many times the skin's typical edge
    edge_patch_radii_ipd: tuple[float, ...] = (0.12, 0.12, 0.14)  # half-sides of the 'edge_patches' samples (IPD)
    edge_blur_px: float = 0.8  # luminance is smoothed by this sigma (pixels) before edges are measured
    fill_blur_px: float = 0.7  # the grain given back to the inpainted skin is smoothed by this sigma (pixels)
    inpaint_px: int = 3  # the inpainting radius (pixels)
    hold_ipd: float = 0.12  # skin within this of a frame is not lifted (soft edge): a brow lifted off the top rim
    #                         would otherwise drag the inpainted rim and the lens' highlights up with it
    hold_above_ipd: float = 0.15  # ...only above the eyes: the hold fades in from the eyes' line to this far above


@dataclass(frozen=True)
class Frames:
    """The detected frame as a soft mask over a box of the image, with the photo's pixels there."""
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the image
    alpha: np.ndarray  # (h, w, 1) float32, 1 on the frame (and a pixel around it), else 0
    evidence: dict  # rim completeness per eye and bridge strength, in multiples of the skin's typical edge
    at: tuple[np.ndarray, np.ndarray]  # image (rows, cols) of the pixels the mask touches
    weight: np.ndarray  # (n, 1) float32: their alpha
    pixels: np.ndarray  # (n, 3) float32: the photo there


def detect_frames(image: np.ndarray, face: FaceAnalysis, cfg: RigidConfig = RigidConfig(),
                  photo: PhotometryConfig = PhotometryConfig()) -> Frames | None:
    """The face's spectacle frames in ``image`` (H, W, 3) uint8, or None; cached on the analysis."""
    key = ("frames", cfg, photo)
    if key not in face.cache:
        face.cache[key] = _detect(image, face, cfg, photo)
    return face.cache[key]


def without_frames(image: np.ndarray, face: FaceAnalysis, cfg: RigidConfig,
                   photo: PhotometryConfig = PhotometryConfig()) -> np.ndarray:
    """(H, W, 3) uint8: the photo with its frames inpainted (the image itself when there are none): the warp moves
    the face from this, so no piece of frame is dragged along with the brows; keep_rigid puts the frame back on
    top."""
    if not cfg.enabled:
        return image
    key = ("frame_free", cfg, photo)
    if key not in face.cache:  # None without frames: the cache never holds the caller's image (it may be edited)
        fr = detect_frames(image, face, cfg, photo)
        out = None
        if fr is not None:
            x0, y0, x1, y1 = fr.box
            hole = (fr.alpha[..., 0] > 0).astype(np.uint8)  # exactly the pixels keep_rigid puts back
            filled = cv2.inpaint(np.ascontiguousarray(image[y0:y1, x0:x1]), hole, cfg.inpaint_px, cv2.INPAINT_TELEA)
            # inpainting is smooth: give the filled skin the photo's own texture contrast and grain back
            pm = photometry(image, face, photo)
            g = cv2.GaussianBlur(grain(max(image.shape[:2]), 5)[y0:y1, x0:x1], (0, 0), cfg.fill_blur_px)
            g = g / (g.std() + 1e-6) * (pm.texture * luminance(filled) + pm.noise)
            filled = np.clip(filled + (g * hole)[..., None], 0, 255).astype(np.uint8)
            out = image.copy()
            out[y0:y1, x0:x1] = filled
        face.cache[key] = out
    return image if face.cache[key] is None else face.cache[key]


def frame_hold(image: np.ndarray, face: FaceAnalysis, cfg: RigidConfig,
               photo: PhotometryConfig = PhotometryConfig()) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Where the warp must not lift the face because a frame's top rim covers it: (box (x0, y0, x1, y1) image px,
    (h, w) float32 0..1, 1 on the frame above the eyes and fading out over ``hold_ipd`` around it), or None without
    frames (or hold). Below the eyes the cheeks and lower lids rise under the lower rims as they should."""
    if not cfg.enabled or cfg.hold_ipd <= 0:
        return None
    fr = detect_frames(image, face, cfg, photo)
    if fr is None:
        return None
    r = max(1.0, cfg.hold_ipd * face.pose.scale)
    pad = int(np.ceil(2 * r))
    x0, y0, x1, y1 = fr.box
    mask = cv2.copyMakeBorder(fr.alpha[..., 0], pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    hold = cv2.GaussianBlur((mask > 0).astype(np.float32), (0, 0), r / 2)  # smooth: a jagged hold tears the skin
    hold = np.clip(2.0 * hold, 0.0, 1.0)
    groups = topology().groups
    eyes = face.landmarks[list(groups["eye_inner_corners"]) + list(groups["eye_outer_corners"]), :2].mean(axis=0)
    up = -face.pose.image_axes()[1]
    gx, gy = np.meshgrid(np.arange(x0 - pad, x1 + pad), np.arange(y0 - pad, y1 + pad))
    above = ((gx - eyes[0]) * up[0] + (gy - eyes[1]) * up[1]) / face.pose.scale  # IPD above the eyes' line
    hold *= np.clip(above / cfg.hold_above_ipd, 0.0, 1.0).astype(np.float32)
    return (x0 - pad, y0 - pad, x1 + pad, y1 + pad), hold


def keep_rigid(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, box: tuple[int, int, int, int],
               cfg: RigidConfig, photo: PhotometryConfig = PhotometryConfig()) -> np.ndarray:
    """The edited ROI (h, w, 3) uint8 at ``box`` (x0, y0, x1, y1 image pixels) with the photo's own frame pixels
    composited back over it."""
    if not cfg.enabled:
        return roi
    fr = detect_frames(image, face, cfg, photo)
    if fr is None:
        return roi
    key = ("frames_in_box", cfg, photo, box, roi.shape[:2])
    if key not in face.cache:  # the frame's pixels inside the box and their weights over 3 channels, per face
        rows, cols = fr.at[0] - box[1], fr.at[1] - box[0]
        keep = (rows >= 0) & (rows < roi.shape[0]) & (cols >= 0) & (cols < roi.shape[1])
        a = np.repeat(fr.weight[keep], 3, axis=1)  # (n, 3): a (n, 1) broadcast runs a 3-long inner loop
        face.cache[key] = (rows[keep], cols[keep], 1 - a, fr.pixels[keep] * a)
    rows, cols, behind, front = face.cache[key]
    out = roi.copy()
    out[rows, cols] = np.clip(out[rows, cols] * behind + front + 0.5, 0, 255).astype(np.uint8)
    return out


def _rim(y: np.ndarray, centre: np.ndarray, ipd: float, cfg: RigidConfig):
    """Best closed rim about ``centre`` (2,) pixels in the luma crop ``y`` (h, w) float32: (radii (angles,) in
    pixels, edge strength along it (angles,) in 8-bit luma units per radial sample)."""
    r_max = cfg.rim_max_ipd * ipd
    n_r = max(16, int(round(r_max)))
    polar = cv2.warpPolar(y, (n_r, cfg.angles), tuple(float(c) for c in centre), r_max,
                          cv2.INTER_LINEAR | cv2.WARP_POLAR_LINEAR)
    polar = cv2.GaussianBlur(polar, (0, 0), cfg.edge_blur_px)
    edge = np.abs(np.diff(polar, axis=1))  # radial derivative: a rim crosses every ray
    r0 = int(np.ceil(cfg.rim_min_ipd / cfg.rim_max_ipd * edge.shape[1]))
    edge[:, :r0] = 0
    # dynamic programming twice round the circle (the second lap starts from the first: a closed path)
    path = _best_path(np.vstack([edge, edge]), cfg.rim_slope)
    lap = path[edge.shape[0]:]
    strength = edge[np.arange(edge.shape[0]), lap]
    return (lap + 0.5) * r_max / edge.shape[1] + 0.5 * r_max / edge.shape[1], strength


def _detect(image: np.ndarray, face: FaceAnalysis, cfg: RigidConfig, photo: PhotometryConfig) -> Frames | None:
    """The frames in ``image`` (H, W, 3) uint8 over a box around the eyes, or None (see Frames)."""
    topo = topology()
    ipd = face.pose.scale
    pm = photometry(image, face, photo)
    lm = face.landmarks[:, :2]
    h, w = image.shape[:2]
    pad = int(cfg.rim_max_ipd * ipd) + 3
    corners = list(topo.groups["eye_outer_corners"])
    x0, y0 = np.floor(lm[corners].min(0)).astype(int) - pad
    x1, y1 = np.ceil(lm[corners].max(0)).astype(int) + pad
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    y = luminance(image[y0:y1, x0:x1])
    typical = _typical_edge(image, face, cfg)
    evidence = {"bridge": _bridge(y, lm, ipd, [x0, y0], cfg) / typical}
    if evidence["bridge"] < cfg.bridge:  # cheap test first: most faces stop here
        return None
    rims = []
    for eye in ("eye_R", "eye_L"):
        centre = lm[topo.loop(eye)].mean(0) - [x0, y0]
        radii, strength = _rim(y, centre, ipd, cfg)
        evidence[eye] = float(np.percentile(strength, cfg.rim_percentile) / typical)
        rims.append((centre, radii))
    if min(evidence["eye_R"], evidence["eye_L"]) < cfg.complete:
        return None
    skin = pm.skin_at(x0, y0, x1, y1)
    ref = float(np.median(y[skin > 0.9])) if (skin > 0.9).any() else float(np.median(y))
    black = y < cfg.black * ref  # much darker than skin: frames, not brows or creases
    not_skin = ((skin < 0.5) | black).astype(np.float32)  # frames are not skin-coloured, or black
    frame = np.zeros(y.shape, bool)
    for centre, radii in rims:
        frame |= _rim_body(not_skin, centre, radii, ipd, cfg)
    a_r = rims[0][0] + _towards(rims[0], rims[1][0])
    a_l = rims[1][0] + _towards(rims[1], rims[0][0])
    band = np.zeros(y.shape, np.uint8)
    cv2.line(band, tuple(np.round(a_r * 16).astype(int)), tuple(np.round(a_l * 16).astype(int)), 1,
             max(2, int(cfg.bridge_band_ipd * ipd)), cv2.LINE_8, shift=4)
    frame |= band.astype(bool) & (not_skin > 0.5)
    frame |= _bridge_bar(y, a_r, a_l, ipd, typical, cfg)  # a translucent bridge is skin-coloured: found by its edges
    # a dark frame is one piece: grow what was found through the dark pixels it touches, within reach of the rims
    reach = np.zeros(y.shape, np.uint8)
    for centre, radii in rims:
        cv2.circle(reach, tuple(int(v) for v in np.round(centre)), int(cfg.grow_ipd * ipd), 1, -1)
    frame = _grow(frame & black, black & reach.astype(bool)) | frame
    frame = cv2.morphologyEx(frame.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    for eye in ("eye_R", "eye_L"):  # never the eyes nor the upper lids, whose lashes and creases are dark too
        lids = np.vstack([lm[list(topo.groups[f"{eye}_lid_ring"])], lm[list(topo.groups[f"{eye}_lower"])][::-1]])
        cv2.fillPoly(frame, [np.round(lids - [x0, y0]).astype(np.int32)], 0)
        cv2.fillPoly(frame, [np.round(lm[topo.loop(eye)] - [x0, y0]).astype(np.int32)], 0)
    # the frame with a one-pixel margin, put back whole (the warp moved an inpainted copy: nothing of it may show)
    alpha = cv2.dilate(frame, np.ones((3, 3), np.uint8)).astype(np.float32)
    r, c = np.nonzero(alpha > 0)
    return Frames((x0, y0, x1, y1), alpha[..., None], evidence, (r + y0, c + x0), alpha[r, c, None],
                  image[r + y0, c + x0].astype(np.float32))


def _rim_body(not_skin: np.ndarray, centre: np.ndarray, radii: np.ndarray, ipd: float,
              cfg: RigidConfig) -> np.ndarray:
    """(h, w) bool: the frame's body along one rim path (``radii`` (angles,) pixels about ``centre`` (2,)) in the
    (h, w) float32 ``not_skin`` map: per ray, the run of non-skin pixels that touches the path (outwards and
    inwards), at most one rim width long."""
    r_max = cfg.rim_max_ipd * ipd
    n_r = max(16, int(round(r_max)))
    c = tuple(float(v) for v in centre)
    polar = cv2.warpPolar(not_skin, (n_r, len(radii)), c, r_max, cv2.INTER_LINEAR | cv2.WARP_POLAR_LINEAR) > 0.5
    at = np.clip(np.round(radii / r_max * n_r - 0.5).astype(int), 0, n_r - 1)
    reach = max(2, int(np.ceil(cfg.rim_width_ipd * ipd * n_r / r_max)))
    rows = np.arange(len(radii))[:, None]
    body = np.zeros(polar.shape, bool)
    k = cfg.run_window
    for step in (1, -1):
        for start in (0, step):  # the edge lies between two samples: the run starts on either side of it
            idx = np.clip(at[:, None] + start + step * np.arange(reach + 1)[None], 0, n_r - 1)
            run = np.cumprod(polar[rows, idx], axis=1).astype(bool)
            if step < 0:  # inwards a run can go on into the lens (lit skin behind it is not skin-coloured either):
                # no longer than the rim is wide around it
                length = run.sum(1).astype(np.float32)
                ring = np.lib.stride_tricks.sliding_window_view(np.pad(length, k, mode="wrap"), 2 * k + 1)
                around = np.percentile(ring, 75, axis=1)  # one window per ray: itself and k on either side
                run &= np.arange(reach + 1)[None] < np.maximum(2, np.ceil(cfg.run_cap * around + 1))[:, None]
            body[np.broadcast_to(rows, idx.shape)[run], idx[run]] = True
    h, w = not_skin.shape  # back to the image: look every pixel up by its (angle, radius) cell
    gx, gy = np.meshgrid(np.arange(w) - centre[0], np.arange(h) - centre[1])
    ri = np.floor(np.hypot(gx, gy) * n_r / r_max).astype(int)
    ai = np.round(np.arctan2(gy, gx) % (2 * np.pi) / (2 * np.pi) * len(radii)).astype(int) % len(radii)
    return (ri < n_r) & body[ai, np.minimum(ri, n_r - 1)]


def _grow(seed: np.ndarray, limit: np.ndarray, max_steps: int = 200) -> np.ndarray:
    """Morphological reconstruction: the parts of ``limit`` connected to ``seed`` (both (h, w) bool)."""
    cur = (seed & limit).astype(np.uint8)
    lim = limit.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(max_steps):
        nxt = cv2.dilate(cur, kernel) & lim
        if np.array_equal(nxt, cur):
            break
        cur = nxt
    return cur.astype(bool)


def _towards(rim, target: np.ndarray) -> np.ndarray:
    """(2,) pixels: the rim point in the direction of ``target`` (2,), as an offset from the rim's centre."""
    centre, radii = rim
    d = target - centre
    a = np.arctan2(d[1], d[0]) % (2 * np.pi)
    r = radii[int(round(a / (2 * np.pi) * len(radii))) % len(radii)]
    return d / (np.linalg.norm(d) + 1e-9) * r


def _bridge(y: np.ndarray, lm: np.ndarray, ipd: float, origin, cfg: RigidConfig) -> float:
    """Strongest vertical edge across the nose bridge (8-bit luma units per pixel) in the luma crop ``y`` (h, w)
    whose top-left is ``origin`` (x, y) in the image, ``lm`` (478, 2) image pixels: the luminance profile down a
    strip centred on the midline (between the inner eye corners), from the brows' inner ends to the nasal bridge."""
    topo = topology()
    top = lm[list(topo.groups["brow_inner_ends"])].mean(0) - origin
    bottom = lm[topo.groups["nose_bridge"][0]] - origin
    half = cfg.bridge_half_ipd * ipd
    n = max(8, int(np.linalg.norm(bottom - top)))
    t = np.linspace(0, 1, n)[:, None]
    centre = top + t * (bottom - top)
    side = np.array([1.0, 0.0])
    prof = np.mean([cv2.remap(y, (centre[:, 0] + s * half * side[0]).astype(np.float32)[:, None],
                              (centre[:, 1]).astype(np.float32)[:, None], cv2.INTER_LINEAR)[:, 0]
                    for s in np.linspace(-1, 1, cfg.bridge_rays)], axis=0)
    return float(np.abs(np.diff(cv2.GaussianBlur(prof[:, None], (0, 0), cfg.edge_blur_px)[:, 0])).max())


def _bridge_bar(y: np.ndarray, a: np.ndarray, b: np.ndarray, ipd: float, typical: float,
                cfg: RigidConfig) -> np.ndarray:
    """(h, w) bool: the bridge bar from rim point ``a`` (2,) to rim point ``b`` (2,) (pixels in the luma crop ``y``
    (h, w)): the pixels between its two edges, an upper and a lower one of opposite sign no further apart than
    ``bridge_band_ipd``, each a path across the strip between the rims, where both edges are at least ``bar_edge``
    times the skin's ``typical`` edge. A translucent or skin-toned bridge is not in the not-skin map, and where it
    was left out it bent up with the glabella under a brow raise."""
    along = b - a
    n_u = max(2, int(np.ceil(np.linalg.norm(along))) + 1)
    down = np.array([-along[1], along[0]]) / (np.linalg.norm(along) + 1e-9)
    if down[1] < 0:
        down = -down
    half = max(2, int(round(cfg.bar_search_ipd * ipd)))
    t, v = np.meshgrid(np.linspace(0.0, 1.0, n_u), np.arange(-half, half + 1, dtype=np.float64))
    px = (a[0] + t * along[0] + v * down[0]).astype(np.float32)
    py = (a[1] + t * along[1] + v * down[1]).astype(np.float32)
    strip = cv2.GaussianBlur(cv2.remap(y, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), (0, 0),
                             cfg.edge_blur_px)
    g = np.diff(strip, axis=0)  # (2 half, n_u): g[i] is the step from strip row i to row i + 1
    tallest = max(1, int(round(cfg.bridge_band_ipd * ipd)))
    steps, cols = np.arange(g.shape[0])[:, None], np.arange(g.shape[1])
    best = None
    for sign in (1.0, -1.0):  # a bar darker than the skin around it (the edge above falls, the one below rises),
        top = _best_path((-sign * g).T, 1)  # then one lighter
        bottom = _best_path(np.where((steps > top) & (steps <= top + tallest), sign * g, -1e6).T, 1)
        strength = np.minimum(-sign * g[top, cols], sign * g[bottom, cols])
        if best is None or strength.sum() > best[2].sum():
            best = (top, bottom, strength)
    top, bottom, strength = best
    on = (strength >= cfg.bar_edge * typical) & (bottom > top)
    rows = np.arange(strip.shape[0])[:, None]
    cells = (rows > top) & (rows <= bottom) & on  # strip rows from below the upper edge to the lower edge
    out = np.zeros(y.shape, np.uint8)
    xi, yi = np.round(px[cells]).astype(int), np.round(py[cells]).astype(int)
    keep = (xi >= 0) & (xi < y.shape[1]) & (yi >= 0) & (yi < y.shape[0])
    out[yi[keep], xi[keep]] = 1
    return cv2.morphologyEx(out, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)


def _best_path(score: np.ndarray, reach: int) -> np.ndarray:
    """(n_steps,) int: the state per step of the path through ``score`` (n_steps, n_states) with the largest sum,
    its state changing by at most ``reach`` between neighbouring steps (dynamic programming)."""
    n_steps, n_states = score.shape
    idx = np.arange(n_states)
    reachable = idx[:, None] + np.arange(2 * reach + 1)  # (states, 2 reach + 1): each state's predecessors in padded
    padded = np.full(n_states + 2 * reach, -np.inf, score.dtype)
    back = np.zeros(score.shape, np.int64)
    acc = score[0].copy()
    for a in range(1, n_steps):
        padded[reach:n_states + reach] = acc
        windows = padded[reachable]
        step = np.argmax(windows, axis=1)
        back[a] = idx + step - reach
        acc = windows[idx, step] + score[a]
    path = np.zeros(n_steps, np.int64)
    path[-1] = int(np.argmax(acc))
    for a in range(n_steps - 1, 0, -1):
        path[a - 1] = back[a, path[a]]
    return path


def _typical_edge(image: np.ndarray, face: FaceAnalysis, cfg: RigidConfig) -> float:
    """The skin's typical edge size (median absolute luminance step on cheeks and forehead, 8-bit luma units per
    pixel), at least 1."""
    ipd = face.pose.scale
    vals = []
    for i, r in zip(topology().groups["edge_patches"], cfg.edge_patch_radii_ipd):
        c = face.landmarks[i, :2]
        rr = int(r * ipd) + 1
        x0, y0 = np.maximum(np.round(c - rr).astype(int), 0)
        patch = luminance(image[y0:y0 + 2 * rr, x0:x0 + 2 * rr])
        if patch.size > 9:
            g = cv2.GaussianBlur(patch, (0, 0), cfg.edge_blur_px)
            vals.append(np.abs(np.diff(g, axis=0)).ravel())
            vals.append(np.abs(np.diff(g, axis=1)).ravel())
    return max(1.0, float(np.median(np.concatenate(vals)))) if vals else 1.0
