"""Appearance of AUs as relief: folds, furrows, bags and bulges lit like the face itself.

Each AU's strokes (aufx/assets/au_appearance.yaml) are drawn once per face into a height field on the photo's own
landmarks, at unit intensity (cached per channel); an edit scales the channels it raises, combines them and carries
the result with the warp, so wrinkles sit on the skin that makes them and bunch or spread with it (drawn per edit on
the moved landmarks instead, 34 strokes cost 1.7 ms of a 13 ms edit). The relief is shaded with the light direction
read from the face's own shading (Lambert on the relief normals, plus occlusion in the valleys), blurred to the
photo's own sharpness, wrinkles scaled to the person's skin-texture contrast (folds of the face's form are as deep on
any skin), and applied as a luminance gain so the skin's own texture and hue stay underneath; where the gain darkens,
grain is added back so the photo's noise level is kept. Strength follows the requested increase of each AU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import yaml

from aufx.au import catalogue
from aufx.model.basis import basis, mirror_map
from aufx.model.deform import Deformation
from aufx.engines.channels import planes
from aufx.engines.photometry import (Photometry, PhotometryConfig, grain, photometry, tinted, unclipped,
                                     wide_blur)
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import ASSETS, N_LANDMARKS, topology


@dataclass(frozen=True)
class ShadingConfig:
    """Design constants of the relief shading; the strokes themselves are data (au_appearance.yaml)."""

    enabled: bool = True  # draw the relief at all
    strength: float = 1.0  # global multiplier on every stroke's depth
    form_strength: float = 1.0  # ...and on the folds of the face's form (stroke "form": the nasolabial shadow) alone
    bulge: float = 0.3  # a fold's bulge height relative to its valley depth, unless the stroke says otherwise
    bulge_offset: float = 1.3  # bulge centre from the valley centre, in valley widths
    bulge_width: float = 1.6  # bulge width relative to the valley width
    aspect: float = 1.0  # relief height in pixels per (depth x width in pixels): sets the slopes the light sees
    occlusion: float = 0.45  # darkening of a valley bottom per unit relative depth (less light reaches it)
    irregularity: float = 0.2  # relative depth variation along a fold (creases are not uniform; more: blotches)
    taper: float = 0.5  # fraction of a fold's length that fades in, half at each end (0: even depth, round ends)
    texture_ref: float = 0.035  # skin texture contrast (Photometry.texture) at which the table's depths apply
    texture_gain: tuple[float, float] = (0.3, 1.0)  # range of the texture scaling (smooth young skin folds softly:
    # at 0.6 a child's forehead (texture 0.11 x texture_ref) showed three drawn stripes under AU01+AU02; past the
    # reference the measure reads pores, stubble and sensor noise: at 1.5 a bearded man's noisy close-up, 2.6 x
    # texture_ref, did too)
    max_dark: float = 0.5  # soft limit of the gain: the deepest darkening...
    max_light: float = 0.015  # ...and the brightest lightening. A real fold's lit side and the skin it bunches are
    # hardly lighter than the skin around them (the raised brows' folds in OpenFace's sample6 still: valleys 25-35%
    # darker, the skin between them no lighter than below them); lit 5%, every crease had a pale line under it
    min_width_px: float = 2.0  # narrower valleys read as drawn lines, not folds
    irregularity_ipd: float = 0.06  # ...smooth over this sigma along the fold (IPD; finer reads as blotches)
    stipple_min_px: float = 0.8  # chin-boss dimples are at least this wide (sigma, pixels)


FADES = ("both", "first", "last")  # a stroke's "fade" in au_appearance.yaml


@dataclass(frozen=True)
class Stroke:
    """One fold or mound of an AU's look, as au_appearance.yaml gives it."""

    kind: str  # "fold" | "mound"
    side: str | None  # fold bulge: "up" | "down" | "in" | "out" | None
    width: float  # IPD
    depth: float  # height relative to the width, at full AU intensity
    bulge: float | None  # the fold's bulge height relative to its depth (None: ShadingConfig.bulge)
    anchors: tuple[tuple[tuple[int, float], ...], ...]  # per point: ((landmark, weight), ...)
    fade: str = "both"  # which ends fade in ("both", "first", "last"): a crease that runs on across the midline
    # in its mirror image fades at its outer end only
    form: bool = False  # a fold of the face's form (the nasolabial furrow, the cheek's mass), as deep on smooth skin
    # as on rough; a wrinkle (False) follows the skin's texture contrast


@dataclass(frozen=True)
class Stipple:
    """Chin-boss dimpling of an AU's look, as au_appearance.yaml gives it."""

    at: tuple[tuple[int, float], ...]  # centre: ((landmark, weight), ...)
    radius: float  # IPD, the Gaussian fall-off's sigma
    depth: float  # relative height of the dimples at full AU intensity
    grain: float  # dimple size (blur sigma, IPD)


def _anchor(a) -> tuple[tuple[int, float], ...]:
    return ((int(a), 1.0),) if isinstance(a, int) else tuple((int(k), float(v)) for k, v in a.items())


def _mirror(anchors, m):
    return tuple(tuple((int(m[i]), w) for i, w in pt) for pt in anchors)


@lru_cache(maxsize=1)
def appearance() -> dict[str, tuple[list[Stroke], Stipple | None]]:
    """Channel -> (strokes, stipple); bilateral AUs mirrored, AU45 shares AU43's look."""
    spec = yaml.safe_load((ASSETS / "au_appearance.yaml").read_text())
    m = mirror_map(topology().canonical)
    out = {}
    for au in catalogue():
        s = spec.get(au.code) or spec.get({"AU45": "AU43"}.get(au.code, ""))
        if not s:
            continue
        strokes = []
        for st in s.get("strokes", []):
            if (st["kind"] not in ("fold", "mound") or st.get("side") not in (None, "up", "down", "in", "out")
                    or st.get("fade", "both") not in FADES):
                raise ValueError(f"au_appearance.yaml {au.code}: bad stroke kind/side/fade in {st}")
            strokes.append(Stroke(st["kind"], st.get("side"), st["width"], st["depth"], st.get("bulge"),
                                  tuple(_anchor(p) for p in st["points"]), st.get("fade", "both"),
                                  bool(st.get("form", False))))
        stip = s.get("stipple")
        stipple = Stipple(_anchor(stip["at"]), stip["radius"], stip["depth"], stip["grain"]) if stip else None
        if au.bilateral:
            l, r = au.channels()
            out[r] = (strokes, stipple)
            out[l] = ([Stroke(st.kind, st.side, st.width, st.depth, st.bulge, _mirror(st.anchors, m), st.fade,
                              st.form) for st in strokes],
                      Stipple(_mirror((stipple.at,), m)[0], stipple.radius, stipple.depth, stipple.grain)
                      if stipple else None)
        else:
            out[au.code] = (strokes, stipple)
    return out


def _place(anchor, pts: np.ndarray) -> np.ndarray:
    """(2,) pixels: the weighted landmark sum ``anchor`` ((landmark, weight), ...) over ``pts`` (478, 2)."""
    return sum(w * pts[i] for i, w in anchor)


@lru_cache(maxsize=None)
def _placement(anchors) -> np.ndarray:
    """A stroke's anchors as a (points, 478) matrix of landmark weights: placing it is one product (built once per
    stroke, shared, read only)."""
    m = np.zeros((len(anchors), N_LANDMARKS))
    for i, a in enumerate(anchors):
        for lm, wt in a:
            m[i, lm] += wt
    return m


def stroke_polyline(anchors, pts: np.ndarray) -> np.ndarray:
    """(points, 2) pixels of a stroke placed on the landmarks ``pts`` (478, 2) pixels."""
    return _placement(anchors) @ pts


class _Relief:
    """Height canvases over the ROI, filled stroke by stroke in small boxes: ``rel`` (height relative to the
    stroke's own width, for occlusion) and ``px`` (height in pixels, whose gradient is the surface slope).
    Overlapping strokes combine by the highest / the deepest (touching creases do not dig a pit, neighbouring
    bulges do not pile up into a blister); the stipple adds its dimples on top."""

    def __init__(self, shape: tuple[int, int], taper: float = 0.0):
        self.taper = taper  # ShadingConfig.taper: how much of a stroke's length fades in at its ends
        self.rel = np.zeros(shape, np.float32)
        self.px = np.zeros(shape, np.float32)
        self.valley_rel = np.zeros(shape, np.float32)
        self.valley_px = np.zeros(shape, np.float32)
        self.box = [shape[1], shape[0], 0, 0]  # union of touched boxes (x0, y0, x1, y1)

    def _touch(self, x0, y0, x1, y1):
        b = self.box
        self.box = [min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)]

    def add(self, poly: np.ndarray, width_px: float, height: float, fade: str = "both") -> None:
        """A Gaussian ridge (height > 0) or valley along ``poly`` (k, 2) ROI pixels, sigma = width / 2, peak =
        height (relative to the width)."""
        sigma = width_px / 2.0
        pad = int(3 * sigma) + 3
        h, w = self.rel.shape
        pts = poly.tolist()  # a handful of points: plain Python for the box
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, y0 = max(int(min(xs)) - pad, 0), max(int(min(ys)) - pad, 0)
        x1, y1 = min(int(max(xs)) + pad + 1, w), min(int(max(ys)) + pad + 1, h)
        if x1 <= x0 or y1 <= y0:
            return
        layer = np.zeros((y1 - y0, x1 - x0), np.float32)
        local = [(x - x0, y - y0) for x, y in pts]
        if len(local) == 1:
            (lx, ly), = local
            cv2.circle(layer, (int(lx * 16 + 0.5), int(ly * 16 + 0.5)), 16, 1.0, -1, cv2.LINE_AA, shift=4)
        else:
            draw_tapered(layer, local, self.taper, fade)
        layer = cv2.GaussianBlur(layer, (0, 0), sigma)
        _, peak, _, _ = cv2.minMaxLoc(layer)
        if peak <= 0:
            return
        layer *= height / peak
        scaled = layer * width_px
        if height < 0:
            rel, px = self.valley_rel[y0:y1, x0:x1], self.valley_px[y0:y1, x0:x1]
            cv2.min(rel, layer, dst=rel)
            cv2.min(px, scaled, dst=px)
        else:
            rel, px = self.rel[y0:y1, x0:x1], self.px[y0:y1, x0:x1]
            cv2.max(rel, layer, dst=rel)
            cv2.max(px, scaled, dst=px)
        self._touch(x0, y0, x1, y1)

    def add_field(self, x0: int, y0: int, field: np.ndarray, width_px: float) -> None:
        """Add a relative-height ``field`` (fh, fw) at (x0, y0), its pixel height = field x ``width_px``."""
        fh, fw = field.shape
        self.rel[y0:y0 + fh, x0:x0 + fw] += field
        self.px[y0:y0 + fh, x0:x0 + fw] += field * width_px
        self._touch(x0, y0, x0 + fw, y0 + fh)


@lru_cache(maxsize=None)
def _taper_profile(taper: float, fade: str, pieces: int) -> tuple[tuple[float, ...], tuple[tuple[int, float], ...]]:
    """Piece ends along a stroke (pieces + 1 values, 0..1), and the runs of pieces of one value as (first piece,
    value): 1, fading to 0 (raised cosine) over ``taper`` / 2 of the length at each ``fade`` end ("both", "first",
    "last")."""
    u = np.linspace(0.0, 1.0, pieces + 1)
    mid = (u[:-1] + u[1:]) / 2
    end = {"both": np.minimum(mid, 1.0 - mid), "first": mid, "last": 1.0 - mid}[fade]
    ramp = np.clip(end / max(taper / 2.0, 1e-6), 0.0, 1.0) if taper > 0 else np.ones_like(mid)
    values = (0.5 - 0.5 * np.cos(np.pi * ramp)).tolist()
    runs = tuple((k, v) for k, v in enumerate(values) if k == 0 or v != values[k - 1])
    return tuple(u.tolist()), runs


def draw_tapered(layer: np.ndarray, poly, taper: float, fade: str = "both", pieces: int = 10) -> None:
    """Draw the polyline ``poly`` ((k, 2) array or k (x, y) pairs, layer pixels) into ``layer`` (h, w) as a 1 px
    line that fades out at its ends (_taper_profile), in ``pieces`` steps that the blur afterwards smooths: creases
    are deepest in their middle and die out; a stroke of even depth with round ends reads as stamped. A stroke has
    a handful of points: its arc length is walked in plain Python, and pieces of one value are drawn as one
    polyline (the same pixels as piece by piece)."""
    pts = poly.tolist() if isinstance(poly, np.ndarray) else poly
    arc = [0.0]
    for (ax, ay), (bx, by) in zip(pts, pts[1:]):
        arc.append(arc[-1] + math.hypot(bx - ax, by - ay))
    if arc[-1] <= 0:
        return
    u, runs = _taper_profile(taper, fade, pieces)
    ends, j = [], 0
    for s in (f * arc[-1] for f in u):  # the point at arc length s, linear between the polyline's points
        while j < len(arc) - 2 and arc[j + 1] < s:
            j += 1
        t = min(max((s - arc[j]) / (arc[j + 1] - arc[j]), 0.0), 1.0) if arc[j + 1] > arc[j] else 0.0
        (ax, ay), (bx, by) = pts[j], pts[j + 1]
        ends.append((int((ax + t * (bx - ax)) * 16 + 0.5), int((ay + t * (by - ay)) * 16 + 0.5)))
    for (k, v), nxt in zip(runs, [r[0] for r in runs[1:]] + [pieces]):
        if nxt == k + 1:
            cv2.line(layer, ends[k], ends[nxt], v, 1, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(layer, [np.array(ends[k:nxt + 1], np.int32)], False, v, 1, cv2.LINE_AA, shift=4)


def _offset(poly: np.ndarray, dist: float, towards: np.ndarray) -> np.ndarray:
    """The polyline (k, 2) pixels moved sideways by ``dist`` px along its normals, to the side ``towards`` (2,)
    points to."""
    if len(poly) < 2:
        return poly + towards * dist
    p = poly.tolist()  # a handful of points: plain Python is faster than a dozen numpy calls
    ends = [(p[0], p[1])] + [(p[i - 1], p[i + 1]) for i in range(1, len(p) - 1)] + [(p[-2], p[-1])]
    normals = []
    for (ax, ay), (bx, by) in ends:  # the normal (-ty, tx) of the tangent (central differences inside)
        tx, ty = bx - ax, by - ay
        size = math.sqrt(tx * tx + ty * ty) + 1e-9
        normals.append((-ty / size, tx / size))
    tx, ty = float(towards[0]), float(towards[1])
    flip = -dist if sum(nx * tx + ny * ty for nx, ny in normals) < 0 else dist
    return poly + np.array(normals) * flip


def render_shading(roi: np.ndarray, image: np.ndarray, face: FaceAnalysis, d: Deformation,
                   box: tuple[int, int, int, int], maps: tuple[np.ndarray, np.ndarray], cfg: ShadingConfig,
                   photo: PhotometryConfig = PhotometryConfig()) -> np.ndarray:
    """The warped ROI (h, w, 3) uint8 at ``box`` (x0, y0, x1, y1 image pixels) with each AU's relief shaded in;
    ``image`` (H, W, 3) uint8 is the source photo, ``maps`` the warp's backward maps (each (h, w) float32, the
    photo pixel every ROI pixel shows).

    Each channel's relief is drawn once per face on the photo's own landmarks at unit intensity (cached) and carried
    into the edit by the warp, so its folds sit where the moved skin has them (and bunch or spread with it); an edit
    only scales and combines the channels it asks for."""
    if not cfg.enabled or cfg.strength <= 0:
        return roi
    b = basis()
    amounts = {ch: float(d.appearance[b.index(ch)]) for ch in b.channels}  # clip(delta, 0, 1) x appearance gain
    for ch, other in b.ties.items():
        amounts[other] = max(amounts[other], amounts[ch])
        amounts[ch] = 0.0
    looks = appearance()
    pm = photometry(image, face, photo)
    reliefs = _reliefs(image, face, box, cfg, photo)
    active = [(reliefs.channel(ch), a) for ch, a in amounts.items() if a > 1e-3 and ch in looks]
    active = [(r, a) for r, a in active if r is not None]
    if not active:
        return roi
    h, w = roi.shape[:2]
    src = _union([r.box for r, _ in active])  # (x0, y0, x1, y1) ROI px of the photo
    found = _combine(active, src)
    x0, y0, x1, y1 = _reach(maps, box, src, h, w)
    if x1 <= x0 or y1 <= y0:
        return roi
    mx = maps[0][y0:y1, x0:x1] - np.float32(box[0] + src[0])
    my = maps[1][y0:y1, x0:x1] - np.float32(box[1] + src[1])
    carried = cv2.remap(found, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    pts = d.target_landmarks - np.array(box[:2], float)
    skin = pm.skin_at(x0 + box[0], y0 + box[1], x1 + box[0], y1 + box[1])
    wobble, noise = _fields(face, (h, w), cfg)
    gain = _gain(carried, pts - [x0, y0], skin, wobble[y0:y1, x0:x1], pm, cfg)
    patch = roi[y0:y1, x0:x1]  # a fold on overexposed skin darkens its true colour, not clipped white
    patch = unclipped(patch, pm.skin_rgb, photo.clip_level) if pm.overexposed else patch.astype(np.float32)
    # where the gain darkens, the photo's grain is scaled down with it: add the missing part back
    lost = pm.noise * np.sqrt(np.clip(1.0 - gain * gain, 0.0, 1.0)) * noise[y0:y1, x0:x1]
    out = roi.copy()  # shadows on skin turn redder, as the skin's own do
    out[y0:y1, x0:x1] = np.clip(patch * tinted(gain, pm.tint) + planes(lost) + 0.5, 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True)
class _ChannelRelief:
    """One channel's relief at unit intensity on the photo's landmarks: ``box`` (x0, y0, x1, y1 ROI pixels) and
    there ``planes`` (bh, bw, 4) float32: ridge height relative to the stroke width, ridge height in pixels, valley
    depth relative, valley depth in pixels (valleys positive, so every plane combines by its maximum), and
    ``stipple`` (bh, bw, 2) float32 or None (relative and pixel height, added)."""

    box: tuple[int, int, int, int]
    planes: np.ndarray
    stipple: np.ndarray | None


class _Reliefs:
    """A face's channel reliefs, each drawn the first time an edit asks for it."""

    def __init__(self, pts: np.ndarray, shape: tuple[int, int], ipd: float, up: np.ndarray, contrast: float,
                 cfg: ShadingConfig):
        self.pts, self.shape, self.ipd, self.up, self.contrast, self.cfg = pts, shape, ipd, up, contrast, cfg
        self.built: dict[str, _ChannelRelief | None] = {}

    def channel(self, ch: str) -> _ChannelRelief | None:
        if ch not in self.built:
            self.built[ch] = self._draw(*appearance()[ch])
        return self.built[ch]

    def _draw(self, strokes: list[Stroke], stipple: Stipple | None) -> _ChannelRelief | None:
        cfg, pts, ipd = self.cfg, self.pts, self.ipd
        relief, up = _Relief(self.shape, cfg.taper), self.up
        midline = pts[list(topology().groups["eye_inner_corners"])].mean(0)
        right = np.array([-up[1], up[0]])
        for st in strokes:
            poly = stroke_polyline(st.anchors, pts)
            width = max(cfg.min_width_px, st.width * ipd)
            # a wrinkle follows the skin's texture; a fold of the face's form is as deep on any skin
            k = st.depth * cfg.strength * (cfg.form_strength if st.form else self.contrast)
            if st.kind == "mound":
                relief.add(poly, width, k, st.fade)
                continue
            relief.add(poly, width, -k, st.fade)
            if st.side is not None:
                out = right * np.sign((poly.mean(0) - midline) @ right or 1.0)
                towards = {"up": up, "down": -up, "out": out, "in": -out}[st.side]
                bulge = cfg.bulge if st.bulge is None else st.bulge
                relief.add(_offset(poly, cfg.bulge_offset * width, towards), cfg.bulge_width * width, k * bulge)
        dimples = None
        if stipple is not None:
            dimples = _Relief(self.shape)
            _stipple(dimples, stipple, _place(stipple.at, pts), ipd, cfg.strength * self.contrast, cfg)
        x0, y0, x1, y1 = relief.box if dimples is None else _union([relief.box, dimples.box])
        if x1 <= x0 or y1 <= y0:
            return None
        sl = np.s_[y0:y1, x0:x1]
        planes = cv2.merge([relief.rel[sl], relief.px[sl], -relief.valley_rel[sl], -relief.valley_px[sl]])
        return _ChannelRelief((x0, y0, x1, y1), planes,
                              None if dimples is None else cv2.merge([dimples.rel[sl], dimples.px[sl]]))


def _reliefs(image: np.ndarray, face: FaceAnalysis, box: tuple[int, int, int, int], cfg: ShadingConfig,
             photo: PhotometryConfig) -> _Reliefs:
    """The face's channel reliefs over the ROI ``box`` (cached on the analysis per config)."""
    key = ("reliefs", box, cfg, photo)
    if key not in face.cache:
        pm = photometry(image, face, photo)
        contrast = float(np.clip(pm.texture / cfg.texture_ref, *cfg.texture_gain))  # wrinkles follow the texture
        face.cache[key] = _Reliefs(face.landmarks[:, :2] - np.array(box[:2], float),
                                   (box[3] - box[1], box[2] - box[0]), face.pose.scale, -face.pose.image_axes()[1],
                                   contrast, cfg)
    return face.cache[key]


def _union(boxes) -> tuple[int, int, int, int]:
    xs0, ys0, xs1, ys1 = zip(*boxes)
    return min(xs0), min(ys0), max(xs1), max(ys1)


def _combine(active, src: tuple[int, int, int, int]) -> np.ndarray:
    """(sh, sw, 4) float32 over ``src`` (ROI px): the active channels' reliefs, each scaled by its amount, combined
    as the strokes of one are (the highest ridge, the deepest valley), the chin's dimples added to the ridges."""
    x0, y0, x1, y1 = src
    found = np.zeros((y1 - y0, x1 - x0, 4), np.float32)
    dimples = None
    for r, a in active:
        bx0, by0, bx1, by1 = r.box
        part = found[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0]
        cv2.max(part, r.planes * np.float32(a), dst=part)
        if r.stipple is not None:
            if dimples is None:
                dimples = np.zeros((y1 - y0, x1 - x0, 2), np.float32)
            dimples[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] += r.stipple * np.float32(a)
    if dimples is not None:
        found[..., :2] += dimples
    return found


def _reach(maps, box, src, h: int, w: int, step: int = 4) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) ROI px: the ROI pixels whose photo pixel lies in ``src`` (ROI px), read on every ``step``-th
    pixel of the maps and grown by a step."""
    mx, my = (m[::step, ::step] for m in maps)
    sx0, sy0, sx1, sy1 = (float(v) for v in (src[0] + box[0], src[1] + box[1], src[2] + box[0], src[3] + box[1]))
    hit = ((mx >= sx0) & (mx < sx1) & (my >= sy0) & (my < sy1)).astype(np.uint8)
    x, y, bw, bh = cv2.boundingRect(hit)
    if bw == 0:
        return 0, 0, 0, 0
    return (max((x - 1) * step, 0), max((y - 1) * step, 0), min((x + bw + 1) * step, w), min((y + bh + 1) * step, h))


def _fields(face: FaceAnalysis, shape: tuple[int, int], cfg: ShadingConfig) -> tuple[np.ndarray, np.ndarray]:
    """Fixed per-face fields over the ROI (cached): the along-fold irregularity (1 + smooth noise) that modulates
    the relief, and the unit grain added where the shading darkens; both (h, w) float32 for ``shape`` (h, w)."""
    key = ("relief_fields", shape, cfg.irregularity, cfg.irregularity_ipd)
    if key not in face.cache:
        size = max(shape)
        wob = wide_blur(grain(size, 7)[:shape[0], :shape[1]], max(1.0, cfg.irregularity_ipd * face.pose.scale))
        wob = (1.0 + cfg.irregularity * wob / (wob.std() + 1e-6)).astype(np.float32)
        face.cache[key] = (wob, grain(size)[:shape[0], :shape[1]])
    return face.cache[key]


def _stipple(relief: _Relief, st: Stipple, c: np.ndarray, ipd: float, amount: float, cfg: ShadingConfig) -> None:
    """Chin-boss dimpling ("orange peel") about ``c`` (2,) ROI pixels: band-passed fixed noise under a Gaussian
    fall-off."""
    h, w = relief.rel.shape
    rad = st.radius * ipd
    x0, y0 = np.maximum(np.floor(c - 2.5 * rad).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(c + 2.5 * rad).astype(int), [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    fall = np.exp(-((gx - c[0]) ** 2 + (gy - c[1]) ** 2) / (2 * rad ** 2))
    scale = max(cfg.stipple_min_px, st.grain * ipd)
    g = cv2.GaussianBlur(grain(max(h, w), 99)[y0:y1, x0:x1], (0, 0), scale)
    g /= g.std() + 1e-6
    relief.add_field(int(x0), int(y0), (g * fall * st.depth * amount).astype(np.float32), 2 * scale)


def _gain(planes: np.ndarray, pts: np.ndarray, skin: np.ndarray, wobble: np.ndarray, pm: Photometry,
          cfg: ShadingConfig) -> np.ndarray:
    """Luminance gain (bh, bw) float32 (1 = unchanged) over a box of the ROI: Lambert on the relief normals
    relative to the flat skin (``planes`` (bh, bw, 4) as _ChannelRelief's, its strokes already scaled to the skin's
    texture where they are wrinkles), occlusion by relative height, blurred to the photo's sharpness, kept on skin
    (``skin`` (bh, bw), ``pts`` (478, 2) box pixels)."""
    ridge_rel, ridge_px, valley_rel, valley_px = cv2.split(planes)
    rel = (ridge_rel - valley_rel) * wobble
    hpx = (ridge_px - valley_px) * (wobble * cfg.aspect)
    lx, ly, lz = pm.light
    # first-order Lambert: the relief's slope towards the light, one directional derivative (soft light:
    # foreshortening is left out, the valley's darkness comes from occlusion); z points to the camera, y down
    kernel = np.float32([[0, -ly, 0], [-lx, 0, lx], [0, ly, 0]]) * np.float32(-0.5 / lz)
    lambert = cv2.filter2D(hpx, cv2.CV_32F, kernel)
    shade = lambert + np.float32(cfg.occlusion) * np.minimum(rel, 0.0)
    topo = topology()
    for hole in ("eye_R", "eye_L"):
        cv2.fillPoly(skin, [np.round(pts[topo.loop(hole)] * 16).astype(np.int32)], 0.0, cv2.LINE_AA, shift=4)
    inner = topo.loop("lips_inner")
    cv2.fillPoly(skin, [np.round(pts[inner] * 16).astype(np.int32)], 0.0, cv2.LINE_AA, shift=4)
    shade = cv2.GaussianBlur(shade * skin, (0, 0), pm.blur_px)
    limit = np.where(shade < 0, np.float32(cfg.max_dark), np.float32(cfg.max_light))
    return 1.0 + limit * np.tanh(shade / limit)  # soft limits: no flat-topped blotches
