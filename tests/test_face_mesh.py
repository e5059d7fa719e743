"""Mesh geometry (aufx/face/mesh.py) on the real canonical mesh and on real faces: openings, adjacency, fold repair,
the face's axes in the photo."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path

from aufx.face import mesh
from aufx.face.pose import fit_pose
from aufx.face.topology import topology
from aufx.model.basis import basis
from aufx.model.deform import basis_motion, channel_deltas, edit_gains
from aufx.model.gains import gain_vector
from aufx.request import EditRequest


def _opened_mouth() -> np.ndarray:
    """The canonical face (478, 3) with the lips parted and the jaw dropped by the real basis."""
    b = basis()
    return topology().canonical + b.fields[b.index("AU25")] + b.fields[b.index("AU26")]


@pytest.mark.parametrize("name", ["lips_inner", "eye_R", "eye_L"])
def test_the_triangles_left_out_are_exactly_those_inside_the_opening(name):
    """With the mouth open (the eyes are open on the neutral face), the triangles that close an opening lie inside
    its contour and no wall triangle does: motion never leaks across the lip line or a lid margin."""
    topo = topology()
    pts = _opened_mouth() if name == "lips_inner" else topo.canonical
    inside = Path(pts[topo.loop(name), :2])
    spans = topo.triangles[mesh.opening_triangles()[name]]
    assert len(spans) >= 10
    assert inside.contains_points(pts[spans].mean(axis=1)[:, :2]).all()
    walls = mesh.wall_triangles()
    assert not inside.contains_points(pts[walls].mean(axis=1)[:, :2]).any()
    assert len(walls) == len(topo.triangles) - sum(int(s.sum()) for s in mesh.opening_triangles().values())


def test_no_mesh_edge_joins_the_two_lips():
    topo = topology()
    up = set(topo.groups["lips_inner_upper"]) - set(topo.groups["lips_inner_lower"])
    lo = set(topo.groups["lips_inner_lower"]) - set(topo.groups["lips_inner_upper"])
    adj, deg = mesh.adjacency()
    assert (adj != adj.T).nnz == 0 and adj.shape == (478, 478)
    for i in up:
        assert not set(adj[i].indices) & lo, i
    assert (deg[mesh.N_MESH:] == 1).all() and adj[mesh.N_MESH:].nnz == 0  # irises: no edges, safe to divide


def test_inside_an_opening_the_warp_follows_one_side():
    """Upper-lip corners of the mouth's triangles are ignored (the jaw carries the lower lip), lower-lid corners of
    the eyes'; every such triangle keeps at least one corner to follow."""
    topo = topology()
    ignore = mesh.ignored_corners()
    for name, ignored_side in (("lips_inner", "upper"), ("eye_R", "lower"), ("eye_L", "lower")):
        spans = mesh.opening_triangles()[name]
        other = "lower" if ignored_side == "upper" else "upper"
        only = set(topo.groups[f"{name}_{ignored_side}"]) - set(topo.groups[f"{name}_{other}"])
        tris = topo.triangles[spans]
        assert (ignore[spans] == np.isin(tris, list(only))).all()
        assert (~ignore[spans]).any(axis=1).all()
    assert not ignore[~np.any(list(mesh.opening_triangles().values()), axis=0)].any()


@pytest.mark.parametrize("who, request_text", [("astronaut_editor", "AU17:1"), ("grace_editor", "AU17:0.8"),
                                               ("grace_editor", "AU14:1")])
def test_fold_repair_opens_every_fold_of_a_real_edit(request, who, request_text):
    """The raw basis motion of these requests (at the edit's gains) turns triangles over on the real faces; the
    repair the deformation uses opens all of them, and moves only the vertices near a fold. (Combined lip AUs leave
    some to the squeezing that follows the repair in ``deform``, which ends with none: AU17 at 0.8 with AU23 at 1
    leaves 1 of 6 on the astronaut; AU15 and AU17 at 1 leave 9 on Grace Hopper, where the raw motion turned 8.)"""
    ed = request.getfixturevalue(who)
    face, b = ed.face(), basis()
    delta = channel_deltas(face, EditRequest(au_text=request_text).target(ed.measured()))
    motion = basis_motion(face, delta, edit_gains(delta, b), b, topology())
    cur = face.canonical
    assert mesh.folded_triangles(cur, cur + motion)[0] > 0
    fixed = mesh.unfold(cur, motion, mesh.lagging_corners, patience=4)
    assert mesh.folded_triangles(cur, cur + fixed)[0] == 0
    changed = np.flatnonzero(np.abs(fixed - motion).max(axis=1) > 0)
    assert 0 < len(changed) < 40
    assert np.abs(fixed).max() > 0.9 * np.abs(motion).max()  # the request's motion survives


@pytest.mark.parametrize("who, request_text, times", [("astronaut_editor", "AU05:1", 2.5),
                                                      ("grace_editor", "AU05:1", 3.0),
                                                      ("astronaut_editor", "AU26:1", 2.0)])
def test_folds_smoothing_gives_up_on_are_squeezed_thin_not_turned_over(request, who, request_text, times):
    """Upper lids retracted past their crease (AU05 at 2.5-3x its shipped motion) and a jaw dropped at 2x leave
    triangles turned over that smoothing does not open (it stops without progress); hold_orientation leaves every
    wall triangle at least 5% of its rest area the right way round, by moving a few vertices by a fraction of the
    motion, and the largest motion (the lid's, the jaw's) stays."""
    ed = request.getfixturevalue(who)
    face, b = ed.face(), basis()
    delta = channel_deltas(face, EditRequest(au_text=request_text).target(ed.measured()))
    motion = b.displacement(delta * gain_vector(b.channels, "geometry") * times)
    cur = face.canonical
    smoothed = mesh.unfold(cur, motion, mesh.lagging_corners, patience=4)
    assert mesh.folded_triangles(cur, cur + smoothed)[0] > 0
    held = mesh.hold_orientation(cur, smoothed)
    assert mesh.folded_triangles(cur, cur + held) == (0, 0)
    tris = mesh.wall_triangles()
    a0, a1 = mesh.signed_areas(cur, tris), mesh.signed_areas(cur + held, tris)
    real = np.abs(a0) > 1e-6
    assert (a1[real] / a0[real]).min() >= 0.05 - 1e-3
    moved = np.abs(held - smoothed).max(axis=1)
    assert 0 < np.count_nonzero(moved) < 40
    assert moved.max() < 0.5 * np.abs(motion).max()
    assert np.abs(held).max() > 0.95 * np.abs(smoothed).max()


def test_signed_areas_are_twice_the_triangle_area_with_its_orientation():
    pts = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    assert mesh.signed_areas(pts, np.array([[0, 1, 2], [0, 2, 1]])).tolist() == [6.0, -6.0]


def test_image_axes_turn_with_the_head(grace_editor):
    """Grace Hopper's landmarks turned by 30 degrees in the image: the face's down axis turns by 30 degrees."""
    lm = grace_editor.face().landmarks
    right0, down0 = fit_pose(lm).image_axes()
    assert abs(np.linalg.norm(down0) - 1) < 1e-12 and abs(right0 @ down0) < 0.1
    t = np.radians(30)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    centre = lm.mean(axis=0)
    _, down = fit_pose((lm - centre) @ rot.T + centre).image_axes()
    assert np.isclose(down @ (rot[:2, :2] @ down0), 1.0, atol=1e-6)
