"""Dense warp field: landmark motion -> per-pixel backward map, with everything that can be precomputed cached.

Per face (once): a region of interest, a ring of zero-motion anchors around the face, the mesh rasterised into a
low-resolution triangle-index map with barycentric weights (a sparse matrix). Per edit: one sparse product gives the
forward displacement field (blurred over the lower face's skin, whose stretch would otherwise jump at every triangle
edge), a few Newton steps invert it (solve q + d(q) = p for q; each step only where the
residual is still above a tolerance: on a smile 4 in 10 of the field's pixels take the first, 1 in 10 the second),
and one remap moves the pixels.
Motion is exactly zero outside the ring, so hair, clothes and background are untouched.

Newton, not the plain fixed point q = p - d(q): the fixed point only converges where the field's gradient stays below
1, and a brow raised against a pinned lid or a lip corner pulled far stretches the skin more than that; the plain
iteration then leaves the features where they were and smears the band in between.

Inside the mouth and eye openings the field follows one side only (the lower lip, the upper lid) while they open.
Interpolating across an opening would stretch it faster than the inversion can follow when lips part; those pixels
are drawn by the interior layers anyway, so only the lips and lids themselves need to land exactly. Lips that close
are the other way round: an interior riding on the lower lip would slide over the upper lip and show the teeth
between closed lips, so the mouth's interior is squeezed between both lips, in proportion to how much of the lip
gap closes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay

from aufx.face.analysis import FaceAnalysis
from aufx.face.mesh import N_MESH, ignored_corners, lips_closing, opening_triangles
from aufx.face.topology import topology


@dataclass(frozen=True)
class FieldConfig:
    """Where the warp stops and how finely it is computed."""

    ring_scale: float = 1.30  # anchors sit this many face-radii from the face centre: motion fades out by there
    ring_scale_below: float = 1.75  # ...and further below the chin, so a dropped jaw has room to move
    field_max_side: int = 256  # the field is smooth: compute it at low resolution, upsample the final map
    inverse_iterations: int = 3  # at most this many Newton steps that invert the forward field (solve q + d(q) = p)
    min_jacobian: float = 0.05  # where the forward map's Jacobian determinant falls below this (a fold), the step is
    # the plain fixed-point one
    max_step_ratio: float = 4.0  # a Newton step is at most this many times the residual (no jumps across a fold)
    backtracks: int = 3  # halvings of a Newton step that would leave a larger residual
    tolerance: float = 0.01  # low-res px: a pixel whose residual is smaller takes no more steps
    smooth_ipd: float = 0.05  # the field over the skin is blurred by this (sigma, IPD): interpolated linearly over
    # the mesh, its stretch changes abruptly at every triangle edge, and a cheek it squeezes shows the edges as lines
    exact_ipd: float = 0.04  # ...but not within this of the lips, nor above this far below the lower lids (fading out
    # over as much again): lip contours must land where the deformation puts them, the upper face moves in pieces


@dataclass(frozen=True)
class FrameHold:
    """Where the field's lifting motion is held (under spectacle frames' top rims), per face."""

    box: tuple[slice, slice]  # the low-res box of every pixel whose motion is held at all
    held: np.ndarray  # (bh, bw) float32 0..1 over it: the share of the lifting motion taken away

    @classmethod
    def of(cls, motion: np.ndarray) -> FrameHold:
        """From ``motion`` (lh, lw), the share of the lifting motion each field pixel takes (1: all of it)."""
        ys, xs = np.nonzero(motion < 1.0)
        if not len(ys):
            return cls((slice(0, 0), slice(0, 0)), np.zeros((0, 0), np.float32))
        box = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        return cls(box, (1.0 - motion[box]).astype(np.float32))


class WarpField:
    """Everything about one face's warp that does not change between slider moves.

    ``roi`` (x0, y0, x1, y1) px: the only pixels that may move; ``region`` (rh, rw) uint8: 1 inside the anchor ring;
    ``weights`` (lw * lh, n_verts) sparse: barycentric weights of the low-resolution grid over the mesh vertices and
    the zero-motion anchors; ``closing_weights`` (same shape, built on first use): what changes in them when the
    mouth's interior is squeezed between both lips instead of riding on the lower one; ``scale``: low-resolution px
    per image px.
    """

    def __init__(self, face: FaceAnalysis, cfg: FieldConfig = FieldConfig()):
        self.cfg = cfg
        h, w = face.image_size
        topo = topology()
        pts = face.landmarks[:N_MESH, :2]
        oval = pts[list(topo.groups["face_oval"])]
        centre = pts.mean(axis=0)
        down = face.pose.image_axes()[1]
        rel = oval - centre
        below = np.clip((rel @ down) / (np.linalg.norm(rel, axis=1) + 1e-9), 0, 1)
        ring = centre + rel * (cfg.ring_scale + (cfg.ring_scale_below - cfg.ring_scale) * below)[:, None]
        x0, y0 = np.floor(np.minimum(ring.min(0), pts.min(0))).astype(int) - 2
        x1, y1 = np.ceil(np.maximum(ring.max(0), pts.max(0))).astype(int) + 3
        self.roi = (max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1)))
        rx0, ry0, rx1, ry1 = self.roi
        rw, rh = rx1 - rx0, ry1 - ry0
        self.scale = float(min(1.0, cfg.field_max_side / max(rw, rh)))
        self.low_size = (max(2, int(round(rw * self.scale))), max(2, int(round(rh * self.scale))))

        corners = np.array([[rx0, ry0], [rx1, ry0], [rx1, ry1], [rx0, ry1]], float)
        anchors = np.vstack([ring, corners])
        verts = np.vstack([pts, anchors])  # anchor displacement is always zero
        self.n_verts = len(verts)
        band = Delaunay(np.vstack([oval, anchors]))
        oval_ids = np.asarray(topo.groups["face_oval"])
        ids = np.concatenate([oval_ids, N_MESH + np.arange(len(anchors))])
        band_tris = ids[band.simplices]
        band_tris = band_tris[(band_tris >= N_MESH).any(axis=1)]
        depth = face.landmarks[topo.triangles, 2].mean(axis=1)
        order = np.argsort(-depth)  # far first, so nearer triangles win where they overlap
        tris = np.vstack([band_tris, topo.triangles[order]])
        ignore = np.vstack([np.zeros(band_tris.shape, bool), ignored_corners()[order]])
        mouth = np.concatenate([np.zeros(len(band_tris), bool), opening_triangles()["lips_inner"][order]])
        pixels, corners, lam, tri = self._rasterise(verts, tris)
        self.weights = self._weights(pixels, corners, lam, ignore[tri])
        both_lips = ignore[tri] & ~mouth[tri, None]  # the mouth's interior interpolated between both lips
        self._closing_parts = (pixels, corners, lam, both_lips)  # closing_weights, built when first needed: a live
        # frame's field serves one edit, and most never close the lips
        self._pts, self._down = pts, down

        ring_roi = np.round((ring - [rx0, ry0]) * 8).astype(np.int32)
        self.region = np.zeros((rh, rw), np.uint8)
        cv2.fillPoly(self.region, [ring_roi], 1, lineType=cv2.LINE_8, shift=3)
        self._grid = np.meshgrid(np.arange(rx0, rx1, dtype=np.float32), np.arange(ry0, ry1, dtype=np.float32))
        lw, lh = self.low_size
        gx, gy = np.meshgrid(np.arange(lw, dtype=np.float32), np.arange(lh, dtype=np.float32))
        self._low_map = np.dstack([gx, gy])  # (lh, lw, 2) each low-res pixel's own position...
        self._low_x, self._low_y = gx.ravel(), gy.ravel()  # ...and its x and y, flat
        self._exact = self._exact_share(face, ring)

    def _exact_share(self, face: FaceAnalysis, ring: np.ndarray) -> tuple | None:
        """(the share of the blurred field per low-res pixel (bh, bw, 2) float32 over the box (a pair of slices) where
        it is not 0, the blur sigma in low-res px, that box and the box the blur reads for it), or None where the
        blur is too small to matter. The field is exact (piecewise linear) near the lips, over the upper face and
        outside the anchor ring (where motion is exactly zero)."""
        ipd_low = face.pose.scale * self.scale
        sigma = self.cfg.smooth_ipd * ipd_low
        if sigma < 0.3:
            return None
        lw, lh = self.low_size
        topo = topology()
        lips = np.zeros((lh, lw), np.uint8)
        outline = np.round(self._to_low(face.landmarks[topo.loop("lips_outer"), :2]) * 16).astype(np.int32)
        cv2.fillPoly(lips, [outline], 1, lineType=cv2.LINE_8, shift=4)
        outside = np.ones((lh, lw), np.uint8)
        cv2.fillPoly(outside, [np.round(self._to_low(ring) * 16).astype(np.int32)], 0, lineType=cv2.LINE_8, shift=4)
        dist = cv2.distanceTransform(1 - lips, cv2.DIST_L2, 5) / max(ipd_low, 1e-6)  # from the lips, IPD
        # the upper face (from the lower lids up) stays exact too: eyes, lids, brows and the skin between them move
        # as pieces, and blurred there OpenFace read the brows and lids less (AU01, AU02, AU04, AU05)
        lids = self._to_low(face.landmarks[list(topo.groups["eye_R_lower"]) + list(topo.groups["eye_L_lower"]), :2])
        below = (self._low_map - lids.mean(0).astype(np.float32)) @ self._down.astype(np.float32) / ipd_low
        share = np.clip(2.0 - np.minimum(dist, np.maximum(below, 0)) / self.cfg.exact_ipd, 0, 1).astype(np.float32)
        blurred = 1.0 - np.maximum(share, outside.astype(np.float32))
        ys, xs = np.nonzero(blurred > 0)
        if not len(ys):
            return None
        reach = int(np.ceil(4 * sigma)) + 2  # OpenCV's float kernel reaches 4 sigma
        inner = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        outer = np.s_[max(0, ys.min() - reach):ys.max() + 1 + reach, max(0, xs.min() - reach):xs.max() + 1 + reach]
        share = blurred[inner]
        return cv2.merge([share, share]), float(sigma), inner, outer  # both channels of the field at once

    def _to_low(self, xy: np.ndarray) -> np.ndarray:
        rx0, ry0 = self.roi[:2]
        return (xy - [rx0, ry0] + 0.5) * self.scale - 0.5

    def _rasterise(self, verts: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every low-resolution pixel a triangle covers: (n,) flat pixel index, (n, 3) the triangle's vertices,
        (n, 3) barycentric weights, (n,) the triangle's row in ``tris`` (later triangles win)."""
        lw, lh = self.low_size
        v = self._to_low(verts)
        index = np.full((lh, lw), -1, np.int32)
        polys = np.round(v * 16).astype(np.int32)[tris]  # (n, 3, 2): each triangle a contiguous view below
        for k in range(len(polys)):
            cv2.fillConvexPoly(index, polys[k], k, lineType=cv2.LINE_8, shift=4)
        ys, xs = np.nonzero(index >= 0)
        t = tris[index[ys, xs]]
        vx, vy = v[:, 0], v[:, 1]  # one coordinate at a time: gathering (n, 2) rows was 3x slower
        ax, ay = vx.take(t[:, 0]), vy.take(t[:, 0])
        e1x, e1y = vx.take(t[:, 1]) - ax, vy.take(t[:, 1]) - ay
        e2x, e2y = vx.take(t[:, 2]) - ax, vy.take(t[:, 2]) - ay
        epx, epy = xs - ax, ys - ay
        det = e1x * e2y - e1y * e2x
        ok = np.abs(det) > 1e-9
        det = np.where(ok, det, 1.0)
        l1 = (epx * e2y - epy * e2x) / det
        l2 = (e1x * epy - e1y * epx) / det
        lam = np.stack([np.clip(x, 0, 1) for x in (1 - l1 - l2, l1, l2)], axis=1)
        lam[~ok] = 1.0 / 3.0  # degenerate (closed mouth/eye) slivers: average of their corners
        return ys * lw + xs, t, lam + 1e-6, index[ys, xs]

    def _weights(self, pixels: np.ndarray, corners: np.ndarray, lam: np.ndarray,
                 ignore: np.ndarray) -> sp.csr_matrix:
        """(lw * lh, n_verts) interpolation matrix; ``ignore`` (n, 3) bool: corners a pixel must not follow (inside
        an opening: the upper lip's, the lower lid's)."""
        lw, lh = self.low_size
        w = [np.where(ignore[:, i], 0.0, lam[:, i]) for i in range(3)]  # column by column: numpy's row sums and
        total = (w[0] + w[1]) + w[2]  # sorts over (n, 3) arrays were 5-10x slower, with the same sums
        w = [x / total for x in w]
        c = [corners[:, i] for i in range(3)]
        # built as CSR directly: one row per covered pixel (``pixels`` ascending), three entries each, in column order
        # as the COO route sorted them (the same sums, bit for bit), without that route's sort over every entry:
        # a triangle's three corners sorted by a stable exchange of neighbours
        for i, j in ((0, 1), (1, 2), (0, 1)):
            later = c[i] > c[j]
            c[i], c[j] = np.where(later, c[j], c[i]), np.where(later, c[i], c[j])
            w[i], w[j] = np.where(later, w[j], w[i]), np.where(later, w[i], w[j])
        indptr = np.zeros(lw * lh + 1, np.int64)
        indptr[pixels + 1] = 3
        np.cumsum(indptr, out=indptr)
        return sp.csr_matrix((np.stack(w, axis=1).ravel(), np.stack(c, axis=1).ravel(), indptr),
                             shape=(lw * lh, self.n_verts))

    @cached_property
    def closing_weights(self) -> sp.csr_matrix:
        """(lw * lh, n_verts): what changes in ``weights`` when the mouth's interior is squeezed between both lips
        instead of riding on the lower one (built on first use)."""
        return self._weights(*self._closing_parts) - self.weights

    def closing(self, disp_px: np.ndarray) -> float:
        """0..1: the share of the photo's lip gap that ``disp_px`` (478, 2) closes (0 where the lips part further
        or the mouth was closed)."""
        return lips_closing(self._pts, self._pts + disp_px[:N_MESH], self._down)[0]

    def forward(self, disp_px: np.ndarray) -> np.ndarray:
        """(lh, lw, 2) float32 forward displacement in low-res px, from ``disp_px`` (478, 2) landmark motion in
        image px (only the 468 mesh vertices move it)."""
        lw, lh = self.low_size
        d = np.zeros((self.n_verts, 2))
        d[:N_MESH] = disp_px[:N_MESH] * self.scale
        fwd = self.weights @ d
        shut = self.closing(disp_px)
        if shut > 0:
            fwd += shut * (self.closing_weights @ d)
        fwd = fwd.reshape(lh, lw, 2).astype(np.float32)
        if self._exact is not None:  # blurred only over the box where the field is not exact, read with the
            share, sigma, inner, outer = self._exact  # blur's reach around it: the same pixels, less work
            part = fwd[inner]
            part += (cv2.GaussianBlur(fwd[outer], (0, 0), sigma)[_within(inner, outer)] - part) * share
        return fwd

    def low_res(self, box: tuple[int, int, int, int], mask: np.ndarray) -> np.ndarray:
        """(lh, lw) float32: ``mask`` (h, w) float, over ``box`` (x0, y0, x1, y1 image px), resampled onto the
        field's low-resolution grid (0 outside the box)."""
        ox, oy = self._to_low(np.array(box[:2], np.float64))  # where the box's first pixel lands
        m = np.float32([[self.scale, 0, ox], [0, self.scale, oy]])
        return cv2.warpAffine(mask.astype(np.float32), m, self.low_size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def backward_maps(self, disp_px: np.ndarray, motion: FrameHold | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(map_x, map_y), each (rh, rw) float32: the absolute image px each ROI pixel is sampled from (cv2.remap
        maps), for landmark motion ``disp_px`` (478, 2) px. ``motion``, if given, scales the motion that lifts
        pixels (towards the top of the face) where they must stay: under spectacle frames a brow lifted off the rim
        would drag what lies under it into view, while one lowered behind the rim is covered by it."""
        fwd = self.forward(disp_px)
        if motion is not None:
            part = fwd[motion.box]  # a view: the only pixels whose motion is held
            lift = np.clip(-(part[..., 0] * self._down[0] + part[..., 1] * self._down[1])
                           / (_norm(part[..., 0], part[..., 1]) + 1e-3), 0.0, 1.0)
            keep = 1.0 - motion.held * lift
            part *= cv2.merge([keep, keep])
        # central differences (the field is 0 at the grid's edge, outside the anchor ring): the Jacobian of
        # q -> q + d(q) is [[1 + gx0, gy0], [gx1, 1 + gy1]], sampled where each step needs it
        gx = cv2.filter2D(fwd, -1, _CENTRAL_X, borderType=cv2.BORDER_REPLICATE)  # d(dx)/dx, d(dy)/dx
        gy = cv2.filter2D(fwd, -1, _CENTRAL_Y, borderType=cv2.BORDER_REPLICATE)  # d(dx)/dy, d(dy)/dy
        r = cv2.remap(fwd, self._low_map - fwd, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT) - fwd
        rx_all, ry_all = (c.ravel() for c in cv2.split(r))  # the residual at the first guess q = p - d(p)
        size = _norm(rx_all, ry_all)
        # Only pixels whose residual exceeds the tolerance take a step (where d(p) = 0 the guess q = p is exact):
        # after the first step most of the face has converged, so the later ones touch a few pixels each. The
        # active pixels are kept as flat x and y arrays: gathering single floats is far cheaper than (n, 2) rows.
        act = np.flatnonzero(size > self.cfg.tolerance)
        ox_all, oy_all = (c.ravel() for c in cv2.split(fwd))  # the guess q = p - (ox, oy), first d(p)
        px, py = self._low_x[act], self._low_y[act]
        rx, ry, size = rx_all[act], ry_all[act], size[act]
        ox, oy = ox_all[act], oy_all[act]
        for _ in range(self.cfg.inverse_iterations):
            if act.size == 0:
                break
            qx, qy = px - ox, py - oy
            (a, c), (b, e) = _sample(gx, qx, qy, cv2.BORDER_REPLICATE), _sample(gy, qx, qy, cv2.BORDER_REPLICATE)
            a += 1.0
            e += 1.0
            det = a * e - b * c
            fold = det <= self.cfg.min_jacobian  # no inverse Jacobian: the plain fixed-point step
            if fold.any():
                det[fold] = 1.0
                a[fold], e[fold], b[fold], c[fold] = 1.0, 1.0, 0.0, 0.0
            sx, sy = (e * rx - b * ry) / det, (a * ry - c * rx) / det
            # A step far longer than the residual jumps across a fold: cap it (damped Newton).
            cap = np.maximum(_norm(sx, sy) / (self.cfg.max_step_ratio * size + 1e-6), 1.0)
            sx /= cap
            sy /= cap
            # Where a pinned band meets stretched skin the field has a kink, and a full step can overshoot across
            # it and back: halve the step wherever it would leave a larger residual (backtracking).
            nx, ny = ox + sx, oy + sy
            rx, ry = _sample(fwd, px - nx, py - ny)
            rx, ry = rx - nx, ry - ny
            new_size = _norm(rx, ry)
            worse = np.flatnonzero(new_size > size)
            for _ in range(self.cfg.backtracks):
                if worse.size == 0:
                    break
                sx[worse] *= 0.5
                sy[worse] *= 0.5
                cx, cy = ox[worse] + sx[worse], oy[worse] + sy[worse]
                wx, wy = _sample(fwd, px[worse] - cx, py[worse] - cy)
                nx[worse], ny[worse], rx[worse], ry[worse] = cx, cy, wx - cx, wy - cy
                new_size[worse] = _norm(rx[worse], ry[worse])
                worse = worse[new_size[worse] > size[worse]]
            ox_all[act], oy_all[act] = nx, ny
            keep = np.flatnonzero(new_size > self.cfg.tolerance)  # indices: gathering by a bool mask is 6x slower
            act, px, py, ox, oy, rx, ry, size = (v[keep] for v in (act, px, py, nx, ny, rx, ry, new_size))
        off = cv2.merge([ox_all.reshape(fwd.shape[:2]), oy_all.reshape(fwd.shape[:2])])
        rx0, ry0, rx1, ry1 = self.roi
        full = cv2.resize(off, (rx1 - rx0, ry1 - ry0), interpolation=cv2.INTER_LINEAR)
        return tuple(cv2.scaleAdd(f, -1.0 / self.scale, g) for f, g in zip(cv2.split(full), self._grid))


_CENTRAL_X = np.float32([[-0.5, 0.0, 0.5]])
_CENTRAL_Y = _CENTRAL_X.T


def map_scales(mx: np.ndarray, my: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(smallest, largest) singular values of the backward maps' Jacobian around every ``step``-th pixel of ``mx``,
    ``my`` (h, w) float32, each (ceil(h / step), ceil(w / step)) float32: 1 / the smallest is how far the warp
    stretches the photo there, the largest how many photo pixels it squeezes into one."""
    grid = cv2.merge([mx[::step, ::step], my[::step, ::step]])
    kernel = np.float32([[-0.5, 0.0, 0.5]]) / np.float32(step)  # central differences, the first and last rows'
    d_x = cv2.filter2D(grid, -1, kernel, borderType=cv2.BORDER_REPLICATE)  # and columns' taken from their
    d_y = cv2.filter2D(grid, -1, kernel.T, borderType=cv2.BORDER_REPLICATE)  # neighbours (replicated, they halved)
    if d_x.shape[1] > 2:
        d_x[:, 0], d_x[:, -1] = d_x[:, 1], d_x[:, -2]
    if d_y.shape[0] > 2:
        d_y[0], d_y[-1] = d_y[1], d_y[-2]
    mx_x, my_x = cv2.split(d_x)  # the backward map's Jacobian
    mx_y, my_y = cv2.split(d_y)
    frob = mx_x * mx_x + mx_y * mx_y + my_x * my_x + my_y * my_y
    det = mx_x * my_y - mx_y * my_x
    disc = np.sqrt(np.maximum(frob * frob - 4 * det * det, 0.0))
    return np.sqrt(np.maximum((frob - disc) / 2, 0.0)), np.sqrt(np.maximum((frob + disc) / 2, 0.0))


def _within(inner: tuple[slice, slice], outer: tuple[slice, slice]) -> tuple[slice, slice]:
    """The box ``inner`` (a pair of slices) relative to the box ``outer`` that holds it."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))


def _norm(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|(x, y)| elementwise, same shape and dtype. Not cv2.magnitude: OpenCV 5's rounds some elements differently
    depending on where the arrays lie in memory, and the Newton steps' comparisons turned those last bits into
    different maps in different processes (up to 0.37 px). Nor numpy's float32 hypot, 15x slower."""
    return np.sqrt(x * x + y * y)


def _sample(img: np.ndarray, qx: np.ndarray, qy: np.ndarray, border: int = cv2.BORDER_CONSTANT) -> list[np.ndarray]:
    """c arrays (n,) float32, one per channel: ``img`` (h, w, c) float32 sampled bilinearly at the points (``qx``,
    ``qy``), each (n,) px, 0 outside (or the edge replicated). The points go to cv2.remap as the rows of a block:
    each side of its maps must stay under 32767."""
    n, cols = len(qx), 256
    maps = np.zeros((2, -(-n // cols) * cols), np.float32)
    maps[0, :n], maps[1, :n] = qx, qy
    out = cv2.remap(img, maps[0].reshape(-1, cols), maps[1].reshape(-1, cols), cv2.INTER_LINEAR, borderMode=border,
                    borderValue=0)
    return [c.ravel()[:n] for c in cv2.split(out)]
