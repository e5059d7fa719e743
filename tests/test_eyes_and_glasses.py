"""Closing lids carry the person's own lid skin with a lash line; spectacle frames stay where they were."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from matplotlib.path import Path

from aufx.model.deform import deform
from aufx.model.gains import gains_overridden, render_gains
from aufx.engines.interiors import InteriorConfig, poly_mask, polyline_distance
from aufx.engines.photometry import luminance
from aufx.engines.rigid import RigidConfig, detect_frames
from aufx.engines.warp import WarpConfig, WarpEngine
from aufx.face.analysis import FaceAnalysis
from aufx.face.topology import topology
from aufx.pipeline import Editor
from aufx.request import EditRequest


def draw_frames(img: np.ndarray, face: FaceAnalysis, colour=(25, 22, 20)) -> tuple[np.ndarray, np.ndarray]:
    """Spectacles drawn on a photo: two elliptic rims about the eyes and a bridge; (image, frame mask)."""
    ipd = face.pose.scale
    lm = face.landmarks[:, :2]
    t = max(2, int(round(0.06 * ipd)))
    mask = np.zeros(img.shape[:2], np.uint8)
    cs = [lm[topology().loop(e)].mean(0) for e in ("eye_R", "eye_L")]
    ang = float(np.degrees(np.arctan2(*(cs[1] - cs[0])[::-1])))
    for c in cs:
        cv2.ellipse(mask, tuple(np.round(c * 16).astype(int)), (int(0.42 * ipd * 16), int(0.3 * ipd * 16)), ang,
                    0, 360, 255, t, cv2.LINE_AA, shift=4)
    a, b = cs[0] + [0.42 * ipd, -0.12 * ipd], cs[1] - [0.42 * ipd, 0.12 * ipd]
    cv2.line(mask, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), 255, t, cv2.LINE_AA)
    alpha = (mask.astype(np.float32) / 255)[..., None]
    out = np.clip(img * (1 - alpha) + np.float32(colour) * alpha + 0.5, 0, 255).astype(np.uint8)
    return out, cv2.erode((mask > 128).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


@pytest.mark.parametrize("face_name", ["astronaut", "grace"])
def test_drawn_glasses_do_not_bend_when_the_brows_rise(request, face_name):
    photo = request.getfixturevalue(face_name)
    bare = Editor(photo, cache=None)
    img, frame = draw_frames(photo, bare.face())
    ed = Editor(img, cache=None)
    assert detect_frames(img, ed.face()) is not None
    face = ed.face()
    target = EditRequest(au_text="AU01:1.0,AU02:1.0").target(ed.measured())
    d = deform(face, target)
    out = WarpEngine().render(img, face, target, d).astype(np.float32)
    bent = WarpEngine(WarpConfig(rigid=RigidConfig(enabled=False))).render(img, face, target, d).astype(np.float32)
    diff = np.abs(out - img).max(axis=2)[frame]
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 12, (diff.mean(), np.percentile(diff, 99))
    # the test can fail: without the rigid layer the same frame moves, and the brows do move under it
    assert np.abs(bent - img).max(axis=2)[frame].mean() > 4 * max(diff.mean(), 0.5)
    brows = list(topology().groups["brow_R"]) + list(topology().groups["brow_L"])
    assert np.abs(d.target_landmarks[brows] - face.landmarks[brows, :2]).max() > 0.04 * face.pose.scale


def test_frames_found_on_real_glasses_and_not_on_a_bare_face(grace_editor, astronaut_editor):
    assert detect_frames(grace_editor.image, grace_editor.face()) is not None
    assert detect_frames(astronaut_editor.image, astronaut_editor.face()) is None
    # Grace Hopper's own dark upper rims stay put when her brows rise
    fr = detect_frames(grace_editor.image, grace_editor.face())
    face = grace_editor.face()
    out = grace_editor.edit(EditRequest(au_text="AU01:1.0,AU02:1.0").target(grace_editor.measured()), measure_output=False).image
    x0, y0, x1, y1 = fr.box
    kept = fr.alpha[..., 0] > 0.9
    assert kept.sum() > 0.05 * face.pose.scale ** 2
    assert np.abs(out[y0:y1, x0:x1].astype(int) - grace_editor.image[y0:y1, x0:x1]).max(axis=2)[kept].mean() < 1.0


def test_a_translucent_bridge_stays_straight_when_the_brows_rise(grace_editor):
    """Grace Hopper's bridge is orange plastic on orange skin, not in the not-skin map: only a blob of it was kept,
    and the rest bent up with the glabella into a V under "surprise". The bar between its two edges is now kept
    whole. Its pixels (orange: blue under half the red, over the middle half between the inner eye corners, up to
    0.15 IPD above their line; the ends curve down into the rims) changed by 8.9 levels on average before, 0.0 now."""
    face, img = grace_editor.face(), grace_editor.image
    ipd = face.pose.scale
    inner = face.landmarks[list(topology().groups["eye_inner_corners"]), :2]
    lo, hi = np.sort(inner[:, 0])
    gy, gx = np.mgrid[:img.shape[0], :img.shape[1]]
    rgb = img.astype(np.float32)
    bar = ((np.abs(gx - (lo + hi) / 2) < 0.25 * (hi - lo)) & (gy < inner[:, 1].mean())
           & (gy > inner[:, 1].mean() - 0.15 * ipd) & (rgb[..., 2] < 0.5 * rgb[..., 0]))
    assert bar.sum() > 0.02 * ipd ** 2  # a bar about 0.1 IPD tall across the middle 0.3 IPD
    target = EditRequest(preset="surprise").target(grace_editor.measured())
    d = deform(face, target)

    def change(cfg: RigidConfig) -> float:
        out = WarpEngine(WarpConfig(rigid=cfg)).render(img, face, target, d)
        return float(np.abs(out.astype(int) - img.astype(int)).max(axis=2)[bar].mean())

    kept, bent = change(RigidConfig()), change(RigidConfig(bar_edge=np.inf))
    assert kept < 1.0 and bent > 5.0, (kept, bent)  # the test can fail: without the bar the bridge bends


@pytest.mark.parametrize("scale", [1.5, 2.0])
def test_no_stripe_of_lens_is_held_with_the_frame(grace, scale):
    """The frame is what is not skin-coloured along each rim; below Grace Hopper's right eye her lens shows lit skin
    that is not skin-coloured either, and a ray's run from the rim went on into it: a stripe of lens joined the
    frame and stayed put while AU06 + AU12 raised her cheek, a notch in her lower rim. Inwards a run is now no longer
    than the rim is wide around it. Unmoved pixels in the band 0.08-0.3 IPD under that eye: 21 / 29 before (her
    photo at 1.5x / 2x), 5 / 4 now."""
    image = cv2.resize(grace, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    ed = Editor(image, name=f"grace_{scale}x_lens")
    face = ed.face()
    out = ed.edit(EditRequest(au_text="AU06:1.0,AU12:1.0").target(ed.measured()), measure_output=False).image
    ipd = face.pose.scale
    lower = face.landmarks[list(topology().groups["eye_R_lower"]), :2]
    band = np.zeros(image.shape[:2], np.uint8)
    poly = np.vstack([lower + [0, 0.08 * ipd], (lower + [0, 0.3 * ipd])[::-1]])
    cv2.fillPoly(band, [np.round(poly).astype(np.int32)], 1)
    unmoved = (np.abs(out.astype(int) - image.astype(int)).max(axis=2) == 0) & (band > 0)
    assert band.sum() > 1000 and unmoved.sum() <= 10, unmoved.sum()


def closed_lid_mask(shape: tuple[int, int], d, face: FaceAnalysis, eye: str) -> np.ndarray:
    """(h, w) bool: an edit's closed upper lid of ``eye``, from its ring down to twice the lash line's width above
    its new margin (the lid skin, not the lash line), shrunk by a pixel."""
    topo = topology()
    down = face.pose.image_axes()[1]
    lash_px = InteriorConfig().lash_width_ipd * face.pose.scale
    ring = d.target_landmarks[list(topo.groups[f"{eye}_lid_ring"])]
    above_lashes = d.target_landmarks[list(topo.groups[f"{eye}_upper"])] - down * 2.0 * lash_px
    inner = np.zeros(shape, np.uint8)
    cv2.fillPoly(inner, [np.round(np.vstack([ring, above_lashes[::-1]])).astype(np.int32)], 1)
    return cv2.erode(inner, np.ones((3, 3), np.uint8)).astype(bool)


def lid_samples(editor: Editor, text: str):
    """For the right eye: lash-line luma, lid luma, lid RGB pixels, and the photo's iris luma, cheek RGB, lid RGB."""
    face = editor.face()
    target = EditRequest(au_text=text).target(editor.measured())
    d = deform(face, target)
    out = editor.edit(target, measure_output=False).image
    topo = topology()
    margin = list(topo.groups["eye_R_upper"])
    ring = list(topo.groups["eye_R_lid_ring"])
    ipd = face.pose.scale
    lash_px = InteriorConfig().lash_width_ipd * ipd
    down = face.pose.rotation[:2, 1] / np.linalg.norm(face.pose.rotation[:2, 1])
    y = luminance(out)
    mid = [3, 4, 5]  # the middle of the lid
    lash = [y[tuple(np.round(d.target_landmarks[margin[i]] + down * 0.25 * lash_px).astype(int)[::-1])] for i in mid]
    shrunk = closed_lid_mask(y.shape, d, face, "eye_R")
    cheeks = np.zeros(y.shape, np.uint8)
    for i in topo.groups["skin_patches"][:2]:  # both cheeks
        cv2.circle(cheeks, tuple(np.round(face.landmarks[i, :2]).astype(int)), int(0.1 * ipd), 1, -1)
    own = np.zeros(y.shape, np.uint8)  # the photo's own visible lid skin, above its lashes
    cv2.fillPoly(own, [np.round(np.vstack([face.landmarks[ring, :2], (face.landmarks[margin, :2] - down * 2.0 * lash_px)
                                           [::-1]])).astype(np.int32)], 1)
    fr = detect_frames(editor.image, face)
    if fr is not None:  # judge the lid skin, not the spectacle frame kept over it
        x0, y0, x1, y1 = fr.box
        on_frame = np.zeros(y.shape, bool)
        on_frame[y0:y1, x0:x1] = fr.alpha[..., 0] > 0.1
        shrunk &= ~on_frame
        own &= ~on_frame
    iris = face.landmarks[topo.groups["iris_R"][0], :2]
    r = 0.3 * np.linalg.norm(face.landmarks[topo.groups["iris_R"][1], :2] - iris)
    yi = luminance(editor.image)
    iris_luma = float(np.median(yi[int(iris[1] - r):int(iris[1] + r) + 1, int(iris[0] - r):int(iris[0] + r) + 1]))
    return (float(np.mean(lash)), float(np.median(y[shrunk])), out[shrunk].astype(np.float32), iris_luma,
            editor.image[cheeks.astype(bool)].astype(np.float32), editor.image[own.astype(bool)].astype(np.float32))


@pytest.mark.parametrize("face_name,text", [("astronaut_editor", "AU43:1.0"), ("grace_editor", "AU43:1.0"),
                                            ("astronaut_editor", "AU45:1.0")])
def test_closed_lid_is_skin_with_a_lash_line(request, face_name, text):
    lash, lid, lid_rgb, iris, cheek, own_lid = lid_samples(request.getfixturevalue(face_name), text)
    assert lash < 0.45 * lid, (lash, lid)  # a dark lash line at the new margin (a smeared lid reaches ~0.5-0.6)
    # the lid is the person's own lid skin (its hue), skin-coloured (the cheeks' hue), not eyeball; no darker than
    # the photo's visible lid band (crease shadow and lashes included) and no lighter than the cheeks: a closed lid
    # comes forward out of the socket's shadow (the astronaut's: L* 175 in the band, 192 closed, cheeks 203)
    to_lab = lambda rgb: np.median(cv2.cvtColor(rgb[None].astype(np.uint8), cv2.COLOR_RGB2LAB)[0].astype(float), 0)
    lid_lab, own_lab, cheek_lab = to_lab(lid_rgb), to_lab(own_lid), to_lab(cheek)
    assert np.linalg.norm((lid_lab - own_lab)[1:]) < 8, (lid_lab, own_lab)
    assert own_lab[0] - 16 < lid_lab[0] < cheek_lab[0] + 5, (lid_lab, own_lab, cheek_lab)
    assert np.linalg.norm((lid_lab - cheek_lab)[1:]) < 15
    assert np.percentile(luminance(lid_rgb[None].astype(np.uint8))[0], 5) > iris + 0.3 * (lid - iris)


def draw_upturned_lashes(img: np.ndarray, face: FaceAnalysis) -> np.ndarray:
    """Dark lashes drawn curling up from both upper lid margins over the lids, as long lashes and mascara do."""
    topo = topology()
    lm, ipd = face.landmarks[:, :2], face.pose.scale
    up = -face.pose.image_axes()[1]
    out = img.copy()
    for eye in ("eye_R", "eye_L"):
        m = lm[list(topo.groups[f"{eye}_upper"])]
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(m, axis=0), axis=1))])
        for s in np.arange(0.1, 0.9, 0.07) * arc[-1]:
            p = np.array([np.interp(s, arc, m[:, 0]), np.interp(s, arc, m[:, 1])])
            q = p + up * 0.09 * ipd + [np.sign(p[0] - m[:, 0].mean()) * 0.03 * ipd, 0.0]
            cv2.line(out, tuple(np.round(p * 16).astype(int)), tuple(np.round(q * 16).astype(int)), (35, 28, 25), 1,
                     cv2.LINE_AA, shift=4)
    return out


def test_a_closing_lid_does_not_carry_the_lashes_over_it(astronaut):
    """Lashes that curl up over the lid lie in the band a closing lid is sampled from; stretched down over the eye
    they drew the closed lid as dark streaks (28% of its pixels darker than 0.75 of its median before they were
    told apart from lid skin; of_sample5's and of_sample3's long lashes, of_sample1's hooded lids)."""
    big = cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # room for the lashes
    img = draw_upturned_lashes(big, Editor(big, cache=None).face())
    ed = Editor(img, cache=None)
    face = ed.face()
    target = EditRequest(au_text="AU45:1.0").target(ed.measured())
    d = deform(face, target)
    out = ed.edit(target, measure_output=False).image
    y = luminance(out)
    lid = np.concatenate([y[closed_lid_mask(y.shape, d, face, eye)] for eye in ("eye_R", "eye_L")])
    assert len(lid) > 0.05 * face.pose.scale ** 2
    assert np.mean(lid < 0.75 * np.median(lid)) < 0.03, np.mean(lid < 0.75 * np.median(lid))
    assert np.percentile(lid, 5) > 0.65 * np.median(lid)


def test_a_closed_lid_meets_the_skin_above_it_without_a_rim(astronaut):
    """A shut lid is lifted towards the brow bone's lightness; lifted up to its top edge, where it continues the
    photo's own skin under the lid ring, it drew a light rim round the lid (the astronaut at 2x: the lid's top
    +2 to +4 luma above the skin just over the ring, then falling). Mean luminance across the lid from 0.1 of its
    height above the ring down to 0.2 below it must fall, not rise (-7 now)."""
    big = cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    ed = Editor(big, cache=None)
    target = EditRequest(au_text="AU45:1.0").target(ed.measured())
    d = deform(ed.face(), target)
    y = luminance(ed.edit(target, measure_output=False).image).astype(np.float32)
    groups = topology().groups
    s = np.linspace(0.0, 1.0, 20)
    for eye in ("eye_R", "eye_L"):
        ring, margin = (d.target_landmarks[list(groups[f"{eye}_{part}"])][2:-2] for part in ("lid_ring", "upper"))
        ring, margin = (np.stack([np.interp(s, np.linspace(0, 1, len(c)), c[:, i]) for i in (0, 1)], 1)
                        for c in (ring, margin))

        def across(t: float) -> float:
            pts = (ring + t * (margin - ring)).astype(np.float32)
            return float(cv2.remap(y, pts[:, 0][None], pts[:, 1][None], cv2.INTER_LINEAR).mean())

        above = across(-0.1)
        assert max(across(t) for t in np.linspace(-0.05, 0.2, 6)) <= above, eye


def _lid_border_step(luma: np.ndarray, d, face: FaceAnalysis, eye: str) -> float:
    """Mean |luma step| across the border of ``eye``'s closed upper lid (the target's lid ring and upper margin)
    above the margin: the lid's mean luma just inside against the skin's just outside, each over about 0.03 IPD."""
    groups = topology().groups
    ring, margin = (d.target_landmarks[list(groups[f"{eye}_{part}"])] for part in ("lid_ring", "upper"))
    if np.linalg.norm(ring[0] - margin[0]) > np.linalg.norm(ring[0] - margin[-1]):
        margin = margin[::-1]
    k = max(2, int(round(0.03 * face.pose.scale)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2)
    lid = np.zeros(luma.shape, np.uint8)
    cv2.fillPoly(lid, [np.round(np.vstack([ring, margin[::-1]])).astype(np.int32)], 1)
    inside = cv2.erode(lid, disc) > 0
    outside = (cv2.dilate(lid, disc) > 0) & (lid == 0) & (np.arange(luma.shape[0])[:, None] < margin[:, 1].min())

    def near(where: np.ndarray) -> np.ndarray:
        w = where.astype(np.float32)
        return cv2.GaussianBlur(luma * w, (0, 0), k) / np.maximum(cv2.GaussianBlur(w, (0, 0), k), 1e-3)

    return float(np.abs(near(outside) - near(inside))[outside].mean())


def test_a_closed_lid_meets_the_skin_beside_it_without_a_step(astronaut_editor):
    """A closed lid is painted from the colour of its own band, which lies in the socket's shadow: on the astronaut
    it was an outlined darker oval, like eyeshadow, 24-31 luma levels off the skin around it across its border
    (of_image_sequence_001 12-21, of_sample6 9-14). Its colour is now taken to the skin's along its top and ends and
    carried smoothly inside (12-17 here; the photo's open eye, lashes and all, 61-90)."""
    ed = astronaut_editor
    face = ed.face()
    target = EditRequest(au_text="AU45:1.0").target(ed.measured())
    d = deform(face, target)
    luma = luminance(ed.edit(target, measure_output=False).image).astype(np.float32)
    steps = [_lid_border_step(luma, d, face, eye) for eye in ("eye_R", "eye_L")]
    assert np.mean(steps) < 18, steps


def test_a_squinting_lid_keeps_its_own_band(astronaut_editor):
    """Only a lid that closes turns its lashes down and shows skin where its band held them: a lid lowered a little
    (AU07 at 0.8 lowers it 0.02-0.19 of the eye's opening on the development faces) keeps its own band, crease
    shadow and lashes, as a squint does (cleaned, AU07's squint lost the look OpenFace reads: slope 0.32 -> 0.23)."""
    ed = astronaut_editor
    face = ed.face()
    never = WarpEngine(WarpConfig(interiors=InteriorConfig(lid_clean_closure=(9.0, 10.0))))
    for text, same in (("AU07:0.8", True), ("AU45:1.0", False)):
        target = EditRequest(au_text=text).target(ed.measured())
        d = deform(face, target)
        diff = np.abs(WarpEngine().render(ed.image, face, target, d).astype(int) - never.render(ed.image, face, target, d))
        assert (diff.max() == 0) == same, (text, diff.max())


def test_lids_and_frames_are_deterministic(grace):
    """Two fresh analyses of the same photo give bit-identical closed lids and kept frames."""
    outs = []
    for _ in range(2):
        ed = Editor(grace, cache=None)
        outs.append(ed.edit(EditRequest(au_text="AU43:1.0,AU01:1.0,AU02:1.0").target(ed.measured()), measure_output=False).image)
    assert np.array_equal(outs[0], outs[1])


def test_named_landmark_groups_lie_where_their_names_say():
    """The renderers' landmark groups (face_regions.json) on the canonical face (x right, y down, IPD units)."""
    topo = topology()
    g, xy = topo.groups, topo.canonical[:, :2]
    for eye in ("eye_R", "eye_L"):
        margin, ring = xy[list(g[f"{eye}_upper"])], xy[list(g[f"{eye}_lid_ring"])]
        order = np.argsort(margin[:, 0])  # every point of the skin ring lies above the lid margin
        assert (ring[:, 1] < np.interp(ring[:, 0], margin[order, 0], margin[order, 1]) - 0.03).all(), eye
        assert np.abs(ring[[0, -1], 0] - margin[[0, -1], 0]).max() < 0.15  # from corner to corner, like the margin
    assert list(g["eye_outer_corners"]) == [g["eye_R_upper"][0], g["eye_L_upper"][0]]
    assert list(g["eye_inner_corners"]) == [g["eye_R_upper"][-1], g["eye_L_upper"][-1]]
    mid = xy[list(g["eye_inner_corners"])].mean(0)
    brows = [xy[list(g["brow_R"])], xy[list(g["brow_L"])]]
    for end, brow in zip(xy[list(g["brow_inner_ends"])], brows):  # the brow point nearest the midline
        assert np.isclose(abs(end[0] - mid[0]), np.abs(brow[:, 0] - mid[0]).min(), atol=0.03)
    bridge = xy[g["nose_bridge"][0]]
    assert abs(bridge[0] - mid[0]) < 0.02 and 0 < bridge[1] - mid[1] < 0.25  # on the midline, just below the eyes
    oval = Path(xy[list(g["face_oval"])])
    for name in ("skin_patches", "edge_patches"):
        assert oval.contains_points(xy[list(g[name])]).all(), name
    for cfg in (InteriorConfig(), RigidConfig()):  # config dataclasses key the per-face caches
        assert hash(cfg) == hash(type(cfg)())


@pytest.mark.parametrize("editor_name", ["astronaut_editor", "grace_editor"])
def test_a_widening_eye_keeps_its_lid_margins(request, editor_name):
    """AU05 raises the upper lid: the lower lid margin, which stays, keeps the photo's pixels (mean change 2-4 grey
    levels; 22-38 when the rim was replaced by synthesized sclera and read as a pale outline), and the new upper
    margin carries the photo's lash line up with the lid (as dark as the photo's margin within 15 levels; it was
    a grey outline 28-46 brighter on the astronaut)."""
    ed = request.getfixturevalue(editor_name)
    face, m = ed.face(), ed.measured()
    target = EditRequest(au_text="AU05:0.8").target(m)
    d = deform(face, target)
    before = cv2.cvtColor(ed.image, cv2.COLOR_RGB2GRAY).astype(float)
    after = cv2.cvtColor(ed.edit(target, measure_output=False).image, cv2.COLOR_RGB2GRAY).astype(float)

    def along(points: np.ndarray) -> np.ndarray:
        mask = np.zeros(before.shape, np.uint8)
        cv2.polylines(mask, [np.round(points * 16).astype(np.int32)], False, 1, 1, cv2.LINE_8, shift=4)
        return mask > 0

    groups = topology().groups
    for eye in ("eye_R", "eye_L"):
        upper, lower = list(groups[f"{eye}_upper"]), list(groups[f"{eye}_lower"])
        raised = (face.landmarks[upper, 1] - d.target_landmarks[upper, 1]).max()
        assert raised > 0.02 * face.pose.scale, "AU05 must raise the upper lid"
        kept = along(face.landmarks[lower, :2])
        assert np.abs(after[kept] - before[kept]).mean() < 8
        new, old = along(d.target_landmarks[upper]), along(face.landmarks[upper, :2])
        assert abs(after[new].mean() - before[old].mean()) < 15


def test_a_raised_upper_lid_keeps_a_round_arch(astronaut_editor):
    """AU05 retracts the central upper lid as one piece: its three middle margin landmarks rise together (7.1% of
    the IPD at 0.8) and furthest, and the margin bends at most 35 degrees at any landmark (the photo's: 19-21). A
    single tapering handle peaked the arch at its middle landmark (38 degrees at this gain)."""
    ed = astronaut_editor
    face = ed.face()
    d = deform(face, EditRequest(au_text="AU05:0.8").target(ed.measured()))
    up_dir = -face.pose.image_axes()[1]
    for eye in ("eye_R", "eye_L"):
        upper = list(topology().groups[f"{eye}_upper"])
        lift = (d.target_landmarks[upper] - face.landmarks[upper, :2]) @ up_dir
        middle = lift[3:6]
        assert middle.min() > 0.95 * middle.max() and middle.max() >= lift.max() - 1e-9
        assert middle.min() > 0.05 * face.pose.scale
        seg = np.diff(d.target_landmarks[upper], axis=0)
        bend = np.degrees(np.abs(np.diff(np.unwrap(np.arctan2(seg[:, 1], seg[:, 0])))))
        assert bend.max() < 35


@pytest.mark.parametrize("editor_name", ["astronaut_editor", "grace_editor"])
def test_a_raised_upper_lid_margin_is_a_line_not_dashes(request, editor_name):
    """Where AU05 lifts the upper lid, the blend of the carried lash line into the revealed eyeball follows the
    margin exactly: luma sampled 1 px under the new margin varies along it as the photo's margin does (mean
    |second difference| 3.1-4.1 against the photo's 2.8-3.1 on the astronaut, 7.4-9.5 against 7.4-11.4 on Grace).
    Keyed on a rasterised 1-px line the blend stepped by whole pixels and drew dashes: 7.1 on the astronaut."""
    ed = request.getfixturevalue(editor_name)
    face = ed.face()
    target = EditRequest(au_text="AU05:0.8").target(ed.measured())
    d = deform(face, target)
    before = cv2.cvtColor(ed.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    after = cv2.cvtColor(ed.edit(target, measure_output=False).image, cv2.COLOR_RGB2GRAY).astype(np.float32)

    def roughness(grey: np.ndarray, margin: np.ndarray) -> float:
        pts = np.concatenate([np.linspace(a, b, 12, endpoint=False) for a, b in zip(margin[:-1], margin[1:])])
        pts = pts[len(pts) // 6:-len(pts) // 6] + [0.0, 1.0]  # the middle two thirds, 1 px under the margin
        line = cv2.remap(grey, pts[:, :1].astype(np.float32), pts[:, 1:].astype(np.float32), cv2.INTER_LINEAR)
        return float(np.abs(np.diff(line.ravel(), 2)).mean())

    for eye in ("eye_R", "eye_L"):
        upper = list(topology().groups[f"{eye}_upper"])
        assert roughness(after, d.target_landmarks[upper]) < 1.6 * roughness(before, face.landmarks[upper, :2])


def test_a_cheek_raise_narrows_the_eye_from_below(astronaut_editor, grace_editor):
    """AU06 at 1.0 pushes the lower lids up (the raised cheek), not the upper ones: 0.06-0.085 IPD from the
    astronaut's and Grace Hopper's measured AU06 (0.15-0.41), keeping 0.41-0.64 of each eye's opening (the
    calibration's bound, 0.35). The lower lid rose 0.0375 IPD at most before, and OpenFace read AU06 at a slope of
    0.03 (0.09 now)."""
    topo = topology()
    for ed in (astronaut_editor, grace_editor):
        face = ed.face()
        d = deform(face, EditRequest(au_text="AU06:1").target(ed.measured()))
        down = face.pose.image_axes()[1]
        for eye in ("eye_R", "eye_L"):
            lo, up = topo.groups[f"{eye}_lower"], topo.groups[f"{eye}_upper"]
            lo, up = lo[len(lo) // 2], up[len(up) // 2]
            rise = -float(d.displacement_px[lo] @ down) / face.pose.scale
            kept = float((d.target_landmarks[lo] - d.target_landmarks[up]) @ down) / float(
                (face.landmarks[lo, :2] - face.landmarks[up, :2]) @ down)
            assert rise > 0.05 and abs(float(d.displacement_px[up] @ down)) < 0.01 * face.pose.scale, (ed.name, eye)
            assert kept > 0.35, (ed.name, eye, kept)


def test_no_lid_is_painted_over_an_opaque_lens(astronaut):
    """Eyes behind opaque sunglasses are not redrawn: the astronaut with two black lenses drawn over her eyes, AU45
    at 1.0 painted lid skin over one lens (99th percentile of luma 170 there); now the lenses stay as dark as
    they were (the eye's brightest fifth is 0.1 x her skin's luma there, the 38 eyes of the development and sample
    photos 0.36-1.07)."""
    face = Editor(astronaut).face()
    lm, ipd = face.landmarks[:, :2], face.pose.scale
    shades = astronaut.copy()
    lenses = np.zeros(astronaut.shape[:2], np.uint8)
    for eye in ("eye_R", "eye_L"):
        c = lm[topology().loop(eye)].mean(axis=0)
        axes = (int(0.32 * ipd), int(0.22 * ipd))
        cv2.ellipse(shades, (int(c[0]), int(c[1])), axes, 0, 0, 360, (20, 20, 25), -1, cv2.LINE_AA)
        cv2.ellipse(lenses, (int(c[0]), int(c[1])), (axes[0] - 3, axes[1] - 3), 0, 0, 360, 1, -1)
    ed = Editor(shades)
    for text in ("AU45:1", "AU05:1"):
        out = ed.edit(EditRequest(au_text=text).target(ed.measured()), measure_output=False).image
        assert np.percentile(luminance(out)[lenses > 0], 99) < 60, text


def test_a_raised_lower_lid_covers_the_eyeball_with_lid(astronaut_editor):
    """AU07 raises the lower lid over the eyeball: what it now covers is the photo's lower lid moved up, not the
    pieces of iris the warp's inversion leaves there. Mean luminance of that strip against the lid skin below the
    photo's lower margin: 0.74 / 0.82 (right / left eye; 0.60 / 0.67 before the lid was painted)."""
    ed = astronaut_editor
    face, m = ed.face(), ed.measured()
    target = EditRequest(au_text="AU07:0.8").target(m)
    d = deform(face, target)
    before = cv2.cvtColor(ed.image, cv2.COLOR_RGB2GRAY).astype(float)
    after = cv2.cvtColor(ed.edit(target, measure_output=False).image, cv2.COLOR_RGB2GRAY).astype(float)
    topo = topology()
    for eye in ("eye_R", "eye_L"):
        loop, lower = topo.loop(eye), list(topo.groups[f"{eye}_lower"])
        covered = poly_mask(before.shape, face.landmarks[loop, :2]) - poly_mask(before.shape, d.target_landmarks[loop])
        covered = covered > 0.5
        assert covered.sum() >= 20, "AU07 must raise the lower lid over some of the eyeball"
        skin = np.zeros(before.shape, np.uint8)
        below = face.landmarks[lower, :2] + [0, 0.06 * face.pose.scale]
        cv2.polylines(skin, [np.round(below * 16).astype(np.int32)], False, 1, 2, cv2.LINE_8, shift=4)
        assert after[covered].mean() > 0.7 * before[skin > 0].mean(), eye


def test_a_lower_lid_raised_far_is_lid_texture_not_stripes(astronaut_editor):
    """The lid a raised lower margin covers the eyeball with is the photo moved up. It was read from the eye's box,
    which ends a few pixels below the margin, so a lid raised further than that repeated the box's bottom row:
    vertical stripes over the eye. Share of the covered pixels with no vertical step (under half a level) at AU07
    1.0 with its lids raised far (geometry 4.5): 0.39 / 0.35 (right / left eye) before, 0.00 / 0.02 now."""
    ed = astronaut_editor
    face = ed.face()
    with gains_overridden({"AU07": {**render_gains()["AU07"], "geometry": 4.5}}):
        target = EditRequest(au_text="AU07:1.0").target(ed.measured())
        d = deform(face, target)
        out = luminance(ed.edit(target, measure_output=False).image)
    step = np.abs(np.diff(out, axis=0))
    for eye in ("eye_R", "eye_L"):
        loop = topology().loop(eye)
        was, now = poly_mask(out.shape, face.landmarks[loop, :2]), poly_mask(out.shape, d.target_landmarks[loop])
        inside = (was - now > 0.5)[:-1] & (was - now > 0.5)[1:]
        assert inside.sum() > 40, eye
        assert (step[inside] < 0.5).mean() < 0.1, (eye, (step[inside] < 0.5).mean())


@pytest.mark.parametrize("text,least", [("AU45:0.8", 0.3), ("AU45:1.0", 0.3), ("AU43:0.5", 0.5)])
def test_a_closing_eye_leaves_no_pupil_below_its_lower_lid(astronaut_editor, text, least):
    """Where the lids meet, the warp's field folds, and its inversion took a few pixels just below the astronaut's
    new left lash line from her pupil: a black speck under the closed eye (darkest pixel 1-4 px below the new lower
    margin 0.13-0.15 of the band's median). The eyeball the warp brings outside the new opening is painted as the
    photo's lower lid, as a raised lower lid is (0.36-0.37 now; the lower lashes are the darkest there). A half-shut
    eye (AU43 at 0.5) raises the middle of the lower lid alone: its mean motion was too small to paint the lid, and
    the pupil showed below the slit (0.37; the lid now moves as its margin does at each place: 0.63)."""
    ed = astronaut_editor
    face = ed.face()
    target = EditRequest(au_text=text).target(ed.measured())
    d = deform(face, target)
    y = luminance(ed.edit(target, measure_output=False).image).astype(np.float32)
    for eye in ("eye_R", "eye_L"):
        lower = d.target_landmarks[list(topology().groups[f"{eye}_lower"])][1:-1]
        band = np.zeros(y.shape, np.uint8)
        for k in np.arange(1.0, 4.01, 0.5):
            cv2.polylines(band, [np.round((lower + [0, k]) * 16).astype(np.int32)], False, 1, 1, cv2.LINE_8, shift=4)
        v = y[band > 0]
        assert v.min() > least * np.median(v), (eye, v.min() / np.median(v))


def test_skin_under_real_frames_stays_while_the_brows_rise(grace_editor):
    """Grace Hopper's brows sit on her top rims. A brow that rises as one piece would drag the inpainted rim and the
    lenses' highlights up with it (brown blotches above the frame on the contact sheet); the field does not lift
    what lies under the top rims, so the warp samples the photo where it is there, while the brows above still
    rise."""
    face, img = grace_editor.face(), grace_editor.image
    fr = detect_frames(img, face)
    d = deform(face, EditRequest(au_text="AU01:1.0,AU02:1.0").target(grace_editor.measured()))
    x0, y0, x1, y1 = fr.box
    on = np.zeros(img.shape[:2], bool)
    on[y0:y1, x0:x1] = fr.alpha[..., 0] > 0.5
    groups = topology().groups  # the top rims: the frame above the eyes (the cheeks rise under the lower rims)
    eyes = face.landmarks[list(groups["eye_inner_corners"]) + list(groups["eye_outer_corners"]), :2].mean(axis=0)
    gy, gx = np.mgrid[:img.shape[0], :img.shape[1]]
    above = (np.stack([gx, gy], -1) - eyes) @ -face.pose.image_axes()[1]
    on &= above > RigidConfig().hold_above_ipd * face.pose.scale
    assert on.sum() > 0.05 * face.pose.scale ** 2

    def shift(cfg: WarpConfig) -> np.ndarray:
        engine = WarpEngine(cfg)
        wf = engine.prepare(face)
        rx0, ry0, rx1, ry1 = wf.roi
        mx, my = wf.backward_maps(d.displacement_px, engine.motion(img, face))
        gx, gy = np.meshgrid(np.arange(rx0, rx1), np.arange(ry0, ry1))
        return np.hypot(mx - gx, my - gy)[on[ry0:ry1, rx0:rx1]]

    held, free = shift(WarpConfig()), shift(WarpConfig(rigid=RigidConfig(hold_ipd=0.0)))
    assert np.percentile(held, 95) < 0.02 * face.pose.scale, np.percentile(held, 95) / face.pose.scale
    assert np.percentile(free, 95) > 3 * np.percentile(held, 95)  # the test can fail: without the hold they move
    brows = list(topology().groups["brow_R"]) + list(topology().groups["brow_L"])
    rise = -(d.target_landmarks[brows] - face.landmarks[brows, :2]) @ face.pose.image_axes()[1]
    assert rise.max() > 0.05 * face.pose.scale


def test_eyeball_a_lowered_lower_lid_reveals_is_sclera_not_skin(grace_editor):
    """Taking away the lid tightening the estimator reads on Grace Hopper (AU07 about 0.5) lowers her lower lids: what
    shows between the old and the new margin is eyeball, and its colour is nearly white (tint at most
    ``sclera_tint`` of its brightness). Her loose eye contour holds mostly lid and lash pixels, whose median was a
    saturated brown (R-B 88 levels) that filled the gap as a flat brown patch. Nor is it grey: with the tint capped
    at 0.12 the gap was a grey-blue line against the orange of her lenses and skin (median tint 0.12; now about 0.3).
    The lowered margin carries the photo's lash line (``lower_lash_share`` of the lash band, blended over as much
    again), lid, not eyeball."""
    ed = grace_editor
    face, m = ed.face(), ed.measured()
    target = EditRequest(au_text="L07:0,R07:0").target(m)
    with gains_overridden({"AU07": {**render_gains()["AU07"], "removal": 4.5}}):  # lids well down: a wide gap
        d = deform(face, target)
        out = ed.edit(target, measure_output=False).image.astype(float)
    found = 0
    for eye in ("eye_R", "eye_L"):
        loop = topology().loop(eye)
        new = (poly_mask(out.shape[:2], d.target_landmarks[loop]) > 0.99) & \
            (poly_mask(out.shape[:2], face.landmarks[loop, :2]) < 0.01)
        margin = polyline_distance(out.shape[:2], d.target_landmarks[list(topology().groups[f"{eye}_lower"])])
        cfg = InteriorConfig()
        rgb = out[new & (margin > 1.5 * cfg.lower_lash_share * cfg.lash_band_ipd * face.pose.scale)]
        found += len(rgb)
        if len(rgb):
            tint = np.median(np.ptp(rgb, axis=1) / np.maximum(rgb.mean(1), 1))
            assert 0.2 < tint < 1.5 * InteriorConfig().sclera_tint, tint
    assert found > 10, "the lower lids must come down"


def test_a_lowered_lower_lid_carries_its_lash_line(grace_editor):
    """A lower lid that drops (Grace Hopper's lid tightening taken away, lids well down) carries the photo's lower
    margin with it: the luma along the new margin differs from the photo's margin by 7 levels on average over both
    eyes. Synthesized sclera painted up to the new margin drew a pale line along it (15 levels brighter; on a dark
    face, a white line under the eye)."""
    ed = grace_editor
    face, m = ed.face(), ed.measured()
    target = EditRequest(au_text="L07:0,R07:0").target(m)
    with gains_overridden({"AU07": {**render_gains()["AU07"], "removal": 4.5}}):
        d = deform(face, target)
        after = luminance(ed.edit(target, measure_output=False).image)
    before = luminance(ed.image)

    def along(points: np.ndarray) -> np.ndarray:
        mask = np.zeros(before.shape, np.uint8)
        cv2.polylines(mask, [np.round(points * 16).astype(np.int32)], False, 1, 1, cv2.LINE_8, shift=4)
        return mask > 0

    differences = []
    for eye in ("eye_R", "eye_L"):
        lower = list(topology().groups[f"{eye}_lower"])
        drop = (d.target_landmarks[lower] - face.landmarks[lower, :2]) @ face.pose.image_axes()[1]
        assert drop.mean() > 2, "the lower lid must come down"
        new, old = along(d.target_landmarks[lower]), along(face.landmarks[lower, :2])
        differences.append(abs(after[new].mean() - before[old].mean()))
    assert np.mean(differences) < 10, differences


def test_a_lower_margin_that_stays_draws_no_pale_line(astronaut_editor):
    """"neutral" on the astronaut opens her smiling eyes a little and leaves the lower lids where they are. Her
    lower margins keep the photo's pixels: within 1 px of them luma rises at most 7 levels (95th percentile),
    where the soft edge of the eye mask blended synthesized sclera into them (26 and 14 levels: a pale line
    along the lower lid, out past the corner where MediaPipe's contour runs below the visible eye)."""
    ed = astronaut_editor
    face = ed.face()
    target = EditRequest(preset="neutral").target(ed.measured())
    before, after = luminance(ed.image), luminance(ed.edit(target, measure_output=False).image)
    for eye in ("eye_R", "eye_L"):
        lower = list(topology().groups[f"{eye}_lower"])
        near = polyline_distance(before.shape, face.landmarks[lower, :2]) < 1.0
        assert np.percentile((after - before)[near], 95) < 10


def test_a_widened_eye_is_no_sharper_than_a_soft_photo(astronaut):
    """The painted eyeball (sclera and iris continued where a raised lid uncovers them) had 1 px edges on every
    photo. On the astronaut's head enlarged 4x (a soft photo: its edges blur by 2.2 px) AU05 at 0.8 drew a
    hard-edged iris disc and a bright crescent above it: the eye's steepest edge 2.1x the photo's there. It is now
    blurred to the photo's sharpness (1.14x; the rest is the warp compressing the lid's own soft edge)."""
    from aufx.engines.photometry import gradient_magnitude

    head = astronaut[40:296, 120:376]
    soft = cv2.resize(head, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    ed = Editor(soft, name="astronaut_4x")
    face = ed.face()
    out = ed.edit(EditRequest(au_text="AU05:0.8").target(ed.measured()), measure_output=False).image
    for eye in ("eye_R", "eye_L"):
        pts = face.landmarks[list(topology().loop(eye)), :2]
        pad = int(0.15 * face.pose.scale)
        x0, y0 = np.maximum(pts.min(0).astype(int) - pad, 0)
        x1, y1 = pts.max(0).astype(int) + pad
        before = gradient_magnitude(luminance(soft[y0:y1, x0:x1])).max()
        after = gradient_magnitude(luminance(out[y0:y1, x0:x1])).max()
        assert after < 1.3 * before, (eye, before, after)
