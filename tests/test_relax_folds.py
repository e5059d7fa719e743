"""The photo's own folds eased where the edit takes their AU away (aufx/engines/relax.py), on real faces."""
from __future__ import annotations

import cv2
import numpy as np

from aufx.engines.photometry import gradient_magnitude, luminance
from aufx.engines.relax import RelaxConfig, relax_folds
from aufx.engines.shading import appearance, stroke_polyline
from aufx.engines.warp import WarpConfig, WarpEngine
from aufx.face.topology import topology
from aufx.model.deform import deform
from aufx.request import EditRequest

UNRELAXED = WarpEngine(WarpConfig(relax=RelaxConfig(enabled=False)))
RELAXED = WarpEngine()


def _nasolabial(shape, landmarks, ipd) -> np.ndarray:
    """(h, w) bool: a band 0.12 IPD wide along both nasolabial folds (AU12's first stroke) on ``landmarks``."""
    mask = np.zeros(shape, np.uint8)
    for ch in ("L12", "R12"):
        fold = appearance()[ch][0][0]
        cv2.polylines(mask, [np.round(stroke_polyline(fold.anchors, landmarks[:, :2])).astype(np.int32)], False, 1,
                      max(1, int(0.12 * ipd)))
    return mask > 0


def test_a_smile_taken_away_takes_its_folds_along_and_keeps_the_freckles(astronaut_editor):
    """The astronaut smiles; "neutral" takes AU12 0.6 away. Unrelaxed, the warp pulls her cheek down over her own
    smile folds and leaves them as sharp as in the photo (99th-percentile gradient of luma at the scale of folds,
    blurred 0.03 IPD so that freckles do not count, 18 along the folds, the photo's 17): a hard line beside a smooth
    cheek. Eased first, they soften to 13.5. The eased cheek off the folds keeps its freckles: its texture (luma less
    its 0.03-IPD blur) keeps 90% of the unrelaxed edit's contrast (86% when all shading coarser than 0.012 IPD was
    eased across the whole band, as far from the crease as the band reaches: an airbrushed cheek)."""
    ed = astronaut_editor
    face, ipd = ed.face(), ed.face().pose.scale
    target = EditRequest(preset="neutral").target(ed.measured())
    d = deform(face, target)

    def fold_gradient(image, band):
        return np.percentile(gradient_magnitude(cv2.GaussianBlur(luminance(image), (0, 0), 0.03 * ipd))[band], 99)

    def texture(image):
        y = luminance(image)
        return y - cv2.GaussianBlur(y, (0, 0), 0.03 * ipd)

    source = fold_gradient(ed.image, _nasolabial(ed.image.shape[:2], face.landmarks, ipd))
    band = _nasolabial(ed.image.shape[:2], d.target_landmarks, ipd)
    plain_img, eased_img = (e.render(ed.image, face, target, d) for e in (UNRELAXED, RELAXED))
    plain, eased = fold_gradient(plain_img, band), fold_gradient(eased_img, band)
    assert plain > 0.9 * source
    assert eased < 0.8 * plain, (eased, plain)
    changed = np.abs(eased_img.astype(int) - plain_img.astype(int)).max(axis=2) > 2
    off_fold = changed & ~cv2.dilate(band.astype(np.uint8), np.ones((int(0.15 * ipd),) * 2, np.uint8)).astype(bool)
    assert off_fold.sum() > 1000
    assert texture(eased_img)[off_fold].std() > 0.88 * texture(plain_img)[off_fold].std()


def test_easing_keeps_eyes_lips_texture_and_an_old_face_s_wrinkles(astronaut_editor, grace_editor):
    """What is eased is shading at the scale of folds, on skin: the eye openings and lips barely change (<= 4
    levels at their soft edge), the eased skin keeps its freckles and fine texture (high-pass luma std 4.8 of 6.0
    before), and an aged face eases in proportion to how smooth it is: Grace Hopper's wrinkles stay (mean change 2.7
    levels against 7.7 on the astronaut)."""
    means = {}
    for name, ed in (("astronaut", astronaut_editor), ("grace", grace_editor)):
        face = ed.face()
        d = deform(face, EditRequest(preset="neutral").target(ed.measured()))
        eased, (x0, y0) = relax_folds(ed.image, face, d, (0, 0) + ed.image.shape[1::-1])
        assert (x0, y0) == (0, 0) and eased is not ed.image
        out = eased
        change = np.abs(out.astype(int) - ed.image.astype(int)).max(axis=2)
        assert (change > 2).sum() > 1000  # both had folds eased
        means[name] = change[change > 0].mean()
        features = np.zeros(change.shape, np.uint8)
        topo = topology()
        for loop in (topo.loop("eye_R"), topo.loop("eye_L"), topo.loop("lips_outer")):
            cv2.fillPoly(features, [np.round(face.landmarks[list(loop), :2]).astype(np.int32)], 1)
        assert change[features > 0].max() <= 4
        if name == "astronaut":
            def high_pass(img):
                y = luminance(img)
                return y - cv2.GaussianBlur(y, (0, 0), 1.0)

            eased = change > 2
            assert high_pass(out)[eased].std() > 0.75 * high_pass(ed.image)[eased].std()
    assert means["grace"] < 0.5 * means["astronaut"], means


def test_nothing_is_eased_where_no_au_decreases(astronaut_editor):
    """An edit that only adds (AU04 on a face without it) leaves the photo as it is before the warp, uncopied; one
    that eases copies only the region the warp samples."""
    ed = astronaut_editor
    d = deform(ed.face(), EditRequest(au_text="AU04:0.8").target(ed.measured()))
    region = (100, 20, 350, 260)
    same, origin = relax_folds(ed.image, ed.face(), d, region)
    assert same is ed.image and origin == (0, 0)
    d = deform(ed.face(), EditRequest(preset="neutral").target(ed.measured()))
    eased, origin = relax_folds(ed.image, ed.face(), d, region)
    assert origin == (100, 20) and eased.shape == (240, 250, 3)
    assert not np.array_equal(eased, ed.image[20:260, 100:350])


def test_only_the_bands_an_edit_eases_are_built(astronaut):
    """A new photo (every Live frame is one) builds no band for an edit that only adds, and for one that takes the
    astronaut's smile away only AU12's two bands: building all 23 channels' bands cost 47 ms per photo at 512^2.
    The eased pixels are those the full build gives (the bands are independent per channel)."""
    from aufx.model.basis import basis
    from aufx.pipeline import Editor

    ed = Editor(astronaut, name="astronaut", cache=None)
    face = ed.face()
    d = deform(face, EditRequest(au_text="AU04:0.8").target(ed.measured()))
    relax_folds(ed.image, face, d, (0, 0) + ed.image.shape[1::-1])
    assert not [k for k in face.cache if k[0] == "relax_bands"]
    d = deform(face, EditRequest(au_text="AU12:0").target(ed.measured()))
    eased, _ = relax_folds(ed.image, face, d, (0, 0) + ed.image.shape[1::-1])
    (bands,) = [v for k, v in face.cache.items() if k[0] == "relax_bands"]
    b = basis()
    decreased = {ch for ch in b.channels if d.delta[b.index(ch)] < -1e-3}
    assert set(bands.built) == decreased == {"L12", "R12"} and len(bands.strokes) == 23, bands.built
    assert not np.array_equal(eased, ed.image)
    for ch in bands.strokes:  # every band built after all: the same eased photo
        bands.channel(ch, RelaxConfig())
    again, _ = relax_folds(ed.image, face, d, (0, 0) + ed.image.shape[1::-1])
    assert np.array_equal(again, eased)
