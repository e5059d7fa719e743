"""From target AUs to target landmarks: edit = target - measured, moved along the basis, kept physically possible.

Shared by every engine: the warp engine moves pixels with it, the diffusion engine draws its control mesh from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from aufx.au import AUVector, get_au
from aufx.model.basis import Basis, basis
from aufx.model.gains import gain_vector
from aufx.model.estimate import channel_vector, estimate_raw
from aufx.face.analysis import FaceAnalysis
from aufx.face.mesh import hold_orientation, lagging_corners, unfold
from aufx.face.topology import Topology, topology


@dataclass(frozen=True)
class DeformConfig:
    """How a request becomes motion: where an edit starts from, and how lids and lips give way when they meet."""

    # Raw estimates below 0 (a face "less than neutral") are displayed as 0. Asking for a small value keeps the face
    # as it is (no jump when a slider leaves 0); from ``ramp`` upwards the edit starts from the raw value, so the
    # re-measured result reaches the target.
    ramp: float = 0.2
    floor: float = 0.25  # raw values are clipped to [-floor, 1 + floor]: an edit never spans much more than 0..1
    lip_upper_share: float = 0.5  # lips that would cross are pushed apart equally: both lips are soft
    lid_upper_share: float = 0.85  # lids that would cross: the upper lid moves, the lower lid barely can
    unfold_rounds: int = 30  # at most this many smoothing rounds to open folded triangles...
    unfold_patience: int = 4  # ...stopping after this many without fewer folds (slivers that will not open)
    squeeze_floor: float = 0.05  # what smoothing leaves folded is squeezed to at least this share of its rest area
    lips_apart_ipd: float = 0.05  # lips this far apart (IPD, the widest place, photo or request) take the fields
    # that move only parted lips (``apart`` in au_handles.yaml) in full; closed lips none of them
    parting: str = "AU25"  # parts the lips to a gap: what those fields lift the upper lip, its lower lip drops less
    opening: tuple[str, ...] = ("AU25", "AU26", "AU27")  # the AUs that part the lips (the lip-closure rule reads
    # them as one)...
    yields: tuple[str, ...] = ("AU16",)  # ...and the lower lip's own depression, whose removal yields to them: the
    # estimator reads parted lips as AU16 too (OpenFace has none to correct it), and an edit that took that reading
    # away lifted the lower lip's sides while its added parting dropped the middle, a V-shaped lower lip
    yield_span: float = 0.1  # an edit that parts the lips this much further (largest increase of ``opening``)
    # takes none of ``yields`` away; less, in proportion
    narrowing: tuple[str, ...] = ("AU23", "AU24")  # AUs that narrow the red of the lips: their motion up and down
    # is in proportion to the person's own red (its height at the midline over the canonical lips'), so full lips
    # are narrowed by as large a share as thin ones, and thin ones not past the line where they meet...
    red_share: tuple[float, float] = (0.3, 1.2)  # ...within these bounds of the canonical motion


@dataclass(frozen=True)
class Deformation:
    """One edit of one face as geometry: what every engine renders (the warp moves pixels by it, the diffusion
    engine draws its control mesh from it)."""

    delta: np.ndarray  # (n_channels,) requested intensity change per basis channel (normalised AU units)
    appearance: np.ndarray  # (n_channels,) how strongly each channel's appearance (shading) is rendered, >= 0
    canonical_target: np.ndarray  # (478, 3) IPD units: the edited face with the head pose removed
    displacement_px: np.ndarray  # (478, 2) px, x right, y down: image-space motion of each landmark
    target_landmarks: np.ndarray  # (478, 2) px: where the landmarks go in the photo

    @property
    def is_identity(self) -> bool:
        """No landmark moves by more than 1e-6 px: the engine can return the image untouched."""
        return not np.any(np.abs(self.displacement_px) > 1e-6)


def channel_deltas(face: FaceAnalysis, target: AUVector, b: Basis | None = None,
                   start: np.ndarray | None = None, cfg: DeformConfig = DeformConfig()) -> np.ndarray:
    """(n_channels,) intensity change (normalised AU units) from the face's measured AUs (or ``start``, (n_channels,)
    raw values) to ``target``."""
    b = b or basis()
    raw = estimate_raw(face) if start is None else start
    shown = np.clip(raw, 0.0, 1.0)
    t = channel_vector(target)
    for ch, other in b.ties.items():  # AU45 and AU43 close the same lid: the larger request drives it...
        i, j = b.index(ch), b.index(other)
        if not _untouched(t[i], shown[i]):  # ...when AU45 is asked for at all: a blink the photo
            t[j] = max(t[i], t[j])  # shows and the request leaves alone closes nothing further
        t[i] = shown[i]
    ramp_lo = np.clip(t / cfg.ramp, 0.0, 1.0)
    ramp_hi = np.clip((1.0 - t) / cfg.ramp, 0.0, 1.0)
    raw = np.clip(raw, -cfg.floor, 1.0 + cfg.floor)
    start = shown + (raw - shown) * np.where(raw < 0, ramp_lo, ramp_hi)
    delta = t - start
    delta[_untouched(t, shown)] = 0.0  # an untouched slider is no edit at all
    return delta


def _untouched(asked, shown):
    """Whether a request ``asked`` (a value or an array) leaves ``shown`` as it is: np.isclose's test at an absolute
    tolerance of 1e-9, without its overhead (np.isclose cost 0.1 ms per edit on these few values)."""
    return np.abs(asked - shown) <= 1e-9 + 1e-5 * np.abs(shown)


def _closure_fraction(face: FaceAnalysis, target: AUVector, b: Basis, start: np.ndarray | None) -> dict[str, float]:
    """Per eye ("eye_R"/"eye_L"), the fraction of the current lid gap a closing AU asks to close (1 = shut)."""
    raw = np.clip(estimate_raw(face) if start is None else start, 0.0, 1.0)
    out: dict[str, float] = {}
    for ch, aperture in b.closing.items():
        if ch in b.ties:
            continue
        tied = [c for c, o in b.ties.items() if o == ch]  # AU45 counts where it is asked for (channel_deltas)
        want = max([target[ch]] + [target[c] for c in tied if not _untouched(target[c], raw[b.index(c)])])
        m = raw[b.index(ch)]
        if want > m + 1e-9 and m < 1.0:
            gain = float(gain_vector((ch, *tied), "geometry").max())  # AU45 closes AU43's lid with its own gain
            out[aperture] = max(out.get(aperture, 0.0), min(1.0, gain * (want - m) / (1.0 - m)))
    return out


def _lip_closure(face: FaceAnalysis, target: AUVector, b: Basis, start: np.ndarray | None,
                 opening: tuple[str, ...]) -> float | None:
    """The fraction of the current lip gap to close (1 = lips together) when the request opens the mouth less than
    it is: the lip-parting AUs ``opening`` (AU25, AU26, AU27) are measured and asked as the largest of them, so
    "neutral" on an open-mouthed smile closes the lips over the teeth instead of leaving a gap the basis cannot
    account for."""
    raw = np.clip(estimate_raw(face) if start is None else start, 0.0, 1.0)
    chans = [c for c in opening if c in b.channels]
    have = max(raw[b.index(c)] for c in chans)
    want = max(target[c] for c in chans)
    if have <= 1e-6 or want >= have:
        return None
    return float(1.0 - want / have)


def _yield_to_parting(gain: np.ndarray, delta: np.ndarray, b: Basis, cfg: DeformConfig) -> np.ndarray:
    """(n_channels,) ``gain`` with the removal of ``cfg.yields`` (AU16) scaled down as far as the edit parts the lips
    further (``delta`` (n_channels,), the largest increase among ``cfg.opening``; all of it from ``yield_span``):
    one lower lip cannot be lifted and dropped at once, and the parting is what the edit asks for."""
    parting = max((delta[b.index(c)] for c in cfg.opening if c in b.channels), default=0.0)
    if parting <= 0:
        return gain
    keep = 1.0 - min(1.0, parting / cfg.yield_span)
    gain = gain.copy()
    for au in cfg.yields:
        for ch in get_au(au).channels():
            i = b.index(ch)
            if delta[i] < 0:
                gain[i] *= keep
    return gain


def red_height(points: np.ndarray, topo: Topology) -> float:
    """Height of the red of both lips at the midline (outer to inner contour, upper plus lower) of ``points``
    (478, 3) in the canonical frame, IPD units."""
    g = topo.groups

    def mid(name: str) -> int:
        return g[name][len(g[name]) // 2]
    return float(points[mid("lips_inner_upper"), 1] - points[mid("lips_outer_upper"), 1]
                 + points[mid("lips_outer_lower"), 1] - points[mid("lips_inner_lower"), 1])


def edit_gains(delta: np.ndarray, b: Basis, cfg: DeformConfig = DeformConfig()) -> np.ndarray:
    """(n_channels,) what multiplies each channel's basis motion in an edit with intensity changes ``delta``
    (n_channels,): the calibrated geometry gain, or the removal gain where an AU is taken away, the lower lip's own
    depression yielding to a parting."""
    gain = np.where(delta < 0, gain_vector(b.channels, "removal"), gain_vector(b.channels, "geometry"))
    return _yield_to_parting(gain, delta, b, cfg)


def basis_motion(face: FaceAnalysis, delta: np.ndarray, gain: np.ndarray, b: Basis, topo: Topology,
                 cfg: DeformConfig = DeformConfig()) -> np.ndarray:
    """(478, 3) canonical motion (IPD units) of ``delta`` (n_channels,) at ``gain`` (edit_gains) on ``face``,
    before lips, lids and folds are seen to. The lip-narrowing AUs (``cfg.narrowing``) move the lips up and down
    in proportion to the person's red over the canonical lips' (red_height, within ``cfg.red_share``)."""
    motion = b.displacement(delta * gain)
    share = float(np.clip(red_height(face.canonical, topo) / red_height(topo.canonical, topo), *cfg.red_share))
    for au in cfg.narrowing:
        for ch in get_au(au).channels():
            k = b.index(ch)
            motion[:, 1] += (share - 1.0) * delta[k] * gain[k] * b.fields[k][:, 1]
    return motion


def _lips_apart(cur: np.ndarray, new: np.ndarray, pairs: np.ndarray, full: float) -> float:
    """0..1: how far the lips are apart, in the photo (``cur`` (478, 3)) or after the edit's motion (``new``): the
    widest gap between the lip ``pairs`` (k, 2) upper/lower indices, as a share of ``full`` (IPD)."""
    up, lo = np.asarray(pairs).T
    gap = max(float(np.max(cur[lo, 1] - cur[up, 1])), float(np.max(new[lo, 1] - new[up, 1])))
    return float(np.clip(gap / full, 0.0, 1.0))


def _parting_shared(lift: np.ndarray, delta: np.ndarray, gain: np.ndarray, b: Basis, topo: Topology,
                    channel: str) -> np.ndarray:
    """(478, 3) the part of the lip-parting AU's motion that ``lift`` (478, 3) already makes: lips part to a gap, and
    where a smile lifts the upper lip (in a real smile the lips part that way: the lower lip hardly drops), the lower
    lip and the jaw drop that much less. Nothing when the edit does not add the parting AU."""
    k = b.index(channel)
    if delta[k] <= 0:
        return np.zeros_like(lift)
    up, lo = topo.pairs["lip"][len(topo.pairs["lip"]) // 2]  # the lips' middle
    own = delta[k] * gain[k] * b.fields[k]
    share = float(np.clip(-lift[up, 1] / max(own[lo, 1], 1e-9), 0.0, 1.0))
    below = np.setdiff1d(np.arange(len(own)), topo.groups["lips_upper"])
    out = np.zeros_like(own)
    out[below] = share * own[below]
    return out


def _keep_apart(cur: np.ndarray, new: np.ndarray, pairs: np.ndarray, close: float | None,
                upper_share: float, bodies: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Lids and lips never cross: a pair's gap (``pairs`` (k, 2) upper/lower indices into ``cur``/``new`` (478, 3),
    no index in two pairs) may shrink to zero (or to what the input already had), not below; ``new`` is corrected in
    place, the upper side taking ``upper_share`` of the correction. Where a pair was apart in ``cur``, the rest of
    the ``bodies`` (upper, lower vertex indices outside ``pairs``: _lip_bodies) moves with its side's correction at
    the same place across the face: lips that close keep their thickness, lips already together are pressed
    thinner."""
    up, lo = np.asarray(pairs).T
    gap0 = cur[lo, 1] - cur[up, 1]  # along the face's down axis (canonical y)
    gap1 = new[lo, 1] - new[up, 1]
    floor = np.minimum(gap0, 0.0)
    ceiling = gap0 * (1.0 - close) if close is not None else np.full_like(gap0, np.inf)
    ceiling = np.where(gap0 > 0, ceiling, np.inf)
    fix = np.minimum(np.maximum(gap1, floor), np.maximum(ceiling, floor)) - gap1
    new[up, 1] -= upper_share * fix
    new[lo, 1] += (1.0 - upper_share) * fix
    if bodies is None:
        return
    order = np.argsort(cur[up, 0])
    x, carried = cur[up, 0][order], (fix * (gap0 > 0))[order]
    for rest, sign, share in ((bodies[0], -1.0, upper_share), (bodies[1], 1.0, 1.0 - upper_share)):
        new[rest, 1] += sign * share * np.interp(cur[rest, 0], x, carried, left=0.0, right=0.0)


@lru_cache(maxsize=1)
def _lip_bodies() -> tuple[np.ndarray, np.ndarray]:
    """The upper and the lower lip's vertices (each (n,) indices) that are in no lip pair: they move with the pairs'
    correction in _keep_apart."""
    topo = topology()
    return tuple(np.setdiff1d(topo.groups[f"lips_{side}"], topo.pairs["lip"]) for side in ("upper", "lower"))


def deform(face: FaceAnalysis, target: AUVector, start: np.ndarray | None = None,
           cfg: DeformConfig = DeformConfig()) -> Deformation:
    """The deformation that takes ``face`` to the AUs ``target`` (normalised 0..1): basis motion scaled by the
    render gains (the removal gain where an AU the photo shows is taken away), folds repaired, lids and lips kept
    apart, carried into the photo by the head pose.

    ``start`` (n_channels,) replaces the measured AUs the edit starts from (calibration asks for a known change of
    one AU, whatever the estimator reads)."""
    b = basis()
    topo = topology()
    delta = channel_deltas(face, target, b, start, cfg)
    cur = face.canonical
    gain = edit_gains(delta, b, cfg)
    new = cur + basis_motion(face, delta, gain, b, topo, cfg)
    lift = _lips_apart(cur, new, topo.pairs["lip"], cfg.lips_apart_ipd) * np.tensordot(delta * gain, b.apart, axes=1)
    new += lift - _parting_shared(lift, delta, gain, b, topo, cfg.parting)
    closing = _closure_fraction(face, target, b, start)
    # No folded triangles: corners lagging behind a fold are carried along with their neighbours.
    new = cur + unfold(cur, new - cur, lagging_corners, max_iter=cfg.unfold_rounds, patience=cfg.unfold_patience)
    # a request that opens the mouth less than it is closes the gap
    shut = _lip_closure(face, target, b, start, cfg.opening)
    lips = _lip_bodies()

    def keep_apart() -> None:
        _keep_apart(cur, new, topo.pairs["lip"], shut, cfg.lip_upper_share, lips)
        for eye in ("eye_R", "eye_L"):
            _keep_apart(cur, new, topo.pairs[eye], closing.get(eye), cfg.lid_upper_share)

    # What smoothing left folded is squeezed thin instead, and so is what keeping lips and lids apart folds (twice
    # over); the no-crossing rule has the last word.
    for _ in range(2):
        keep_apart()
        motion = new - cur
        held = hold_orientation(cur, motion, min_share=cfg.squeeze_floor)
        if np.array_equal(held, motion):
            break  # nothing squeezed: the lips and lids are apart already
        new = cur + held
    else:
        keep_apart()
    disp = face.pose.vectors_to_image(new - cur)[:, :2]
    look = np.clip(delta, 0.0, 1.0) * gain_vector(b.channels, "appearance")
    return Deformation(delta, look, new, disp, face.landmarks[:, :2] + disp)
