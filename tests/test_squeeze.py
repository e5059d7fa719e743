"""Skin the warp squeezes hard folds under (aufx/engines/squeeze.py): a brow taken far down onto its lid."""
from __future__ import annotations

import cv2
import numpy as np

from aufx.au import AUVector
from aufx.engines.photometry import luminance
from aufx.engines.squeeze import SqueezeConfig
from aufx.engines.field import map_scales
from aufx.engines.warp import WarpConfig, WarpEngine
from aufx.face.topology import topology
from aufx.model.basis import basis
from aufx.model.deform import deform
from aufx.model.estimate import estimate_raw
from aufx.pipeline import Editor
from aufx.request import EditRequest

UNSQUEEZED = WarpEngine(WarpConfig(squeeze=SqueezeConfig(enabled=False)))


def _brows_taken_down(editor):
    """An edit to AU04 0.8 from brows raised to 1.0 (as a photo of raised brows would be read, and as a preset
    taking them away does on of_sample6, a man whose brows are raised at rest): the skin between brow and lid
    squeezed up to 7x. Returns (face, target, deformation)."""
    face = editor.face()
    b = basis()
    start = estimate_raw(face).copy()
    for ch in b.channels:
        if ch[1:] in ("01", "02"):
            start[b.index(ch)] = 1.0
    target = AUVector.clipped({"AU04": 0.8})
    return face, target, deform(face, target, start)


def test_a_brow_taken_down_onto_its_lid_folds_into_shadow_not_a_staircase(astronaut):
    """Warped as it is, the squeezed band between brow and lid is a thin line of lit brow-bone skin under a brow
    edge cut into steps (of_sample6's "anger"). With the fold it lies in the brow's shadow and is resampled as
    smoothly as the squeeze averages: on the astronaut at 2x, 15 levels darker and a quarter less fine detail
    (mean |Laplacian|) than the plain warp. (That the band keeps the photo's grain is
    test_shaded_skin_keeps_the_photos_grain's: AU04 at 1.0 squeezes the skin over her lids.)"""
    img = cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # room for the band
    editor = Editor(img, cache=None)
    face, target, d = _brows_taken_down(editor)
    engine = WarpEngine()
    folded, plain = engine.render(img, face, target, d), UNSQUEEZED.render(img, face, target, d)
    x0, y0, x1, y1 = engine.prepare(face).roi
    _, squeeze = map_scales(*engine.prepare(face).backward_maps(d.displacement_px), 1)
    band = np.zeros(img.shape[:2], bool)
    band[y0:y1, x0:x1] = squeeze >= SqueezeConfig().from_squeeze
    features = np.zeros(img.shape[:2], np.uint8)  # the skin 0.1 IPD or more from the eyes and lips (their layers')
    for name in ("lips_outer", "eye_R", "eye_L"):
        cv2.fillPoly(features, [np.round(d.target_landmarks[topology().loop(name)]).astype(np.int32)], 1)
    band &= cv2.distanceTransform(1 - features, cv2.DIST_L2, 5) > 0.1 * face.pose.scale
    assert band.sum() > 0.01 * face.pose.scale ** 2, "the edit must squeeze some skin hard"
    y_fold, y_plain = (luminance(o).astype(np.float32) for o in (folded, plain))
    assert y_fold[band].mean() < y_plain[band].mean() - 8, (y_fold[band].mean(), y_plain[band].mean())
    fine_fold, fine_plain = (np.abs(cv2.Laplacian(y, cv2.CV_32F, ksize=1))[band].mean() for y in (y_fold, y_plain))
    assert fine_fold < 0.85 * fine_plain, (fine_fold, fine_plain)


def test_an_edit_that_squeezes_no_skin_hard_is_left_as_the_warp_made_it(grace_editor):
    """A smile bunches the cheek beside its corners up to 2-2.8x: below the fold's threshold nothing changes."""
    face = grace_editor.face()
    target = EditRequest(au_text="AU12:0.4").target(grace_editor.measured())
    d = deform(face, target)
    _, squeeze = map_scales(*WarpEngine().prepare(face).backward_maps(d.displacement_px), 1)
    assert squeeze.max() < SqueezeConfig().from_squeeze
    assert np.array_equal(WarpEngine().render(grace_editor.image, face, target, d),
                          UNSQUEEZED.render(grace_editor.image, face, target, d))
