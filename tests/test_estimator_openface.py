"""The built-in estimator on OpenFace's scale: the shipped regressor loads, reads the two test faces as OpenFace
printed them (committed CSVs), keeps the mesh estimate where OpenFace has no AU, and measures edited outputs on the
output face. Its agreement on held-out faces and its speed are benchmarks (eval/bench_estimator.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from skimage.feature import hog

from aufx.au import get_au
from aufx.model.regressor import AU_NAMES, WEIGHTS, RegressorError, agreement, load_regressor
from aufx.model.regressor_features import FEATURES, appearance, mirrored, shape
from aufx.face.align import CROP_KEY, aligned_grey, has_appearance
from aufx.model.basis import basis
from aufx.model.estimate import estimate_after, estimate_aus, estimate_raw, mesh_raw, openface_like
from aufx.face.analysis import FaceAnalysis
from aufx.openface_runner import reading_from_csv
from aufx.pipeline import match_face
from aufx.request import EditRequest
from eval.bench_estimator import FIXTURES

OPENFACE_LACKS = ("AU16", "AU24", "AU27", "AU43")


def fresh(face: FaceAnalysis) -> FaceAnalysis:
    """The same landmarks without the aligned crop (an analysis made without its image)."""
    return FaceAnalysis(face.landmarks, face.pose, face.image_size)


def openface_numbers(name: str) -> np.ndarray:
    return np.array([reading_from_csv(FIXTURES / f"{name}.csv").aus.au(a) for a in AU_NAMES])


def test_the_mirror_image_swaps_sides_and_keeps_the_face_aligned(astronaut_editor):
    face = astronaut_editor.face()
    flipped, crop = mirrored(face.canonical, face.cache[CROP_KEY])
    np.testing.assert_allclose(mirrored(flipped)[0], face.canonical, atol=1e-12)  # twice = the face itself
    # the right lip corner of the mirror image is where the left one was, with x negated; the inner lip midline
    # (13 upper, 14 lower) stays on its own lip
    assert flipped[61, 0] == pytest.approx(-face.canonical[291, 0]) and flipped[61, 1] == face.canonical[291, 1]
    assert flipped[13, 1] == face.canonical[13, 1] and flipped[14, 1] == face.canonical[14, 1]
    assert crop.shape == face.cache[CROP_KEY].shape and (crop[:, 0] == face.cache[CROP_KEY][:, -1]).all()


def test_hog_is_skimages(astronaut_editor):
    """The vectorised HOG is skimage.feature.hog's descriptor, number for number, on a real aligned face."""
    crop = aligned_grey(astronaut_editor.image, astronaut_editor.face().landmarks)
    assert crop.shape == (FEATURES.crop_px, FEATURES.crop_px) and crop.dtype == np.uint8
    ours = appearance(crop)
    theirs = hog(crop, orientations=FEATURES.orientations, pixels_per_cell=(FEATURES.cell_px,) * 2,
                 cells_per_block=(2, 2), block_norm="L2-Hys")
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_reads_the_test_faces_as_openface_printed_them(astronaut_editor, grace_editor):
    """Both faces are in the fit's data (aufx/assets/au_estimator.md), so this guards the shipped weights and the
    feature path, not generalisation: it fails if features, alignment or weights drift."""
    ours = np.array([[estimate_aus(ed.face()).au(a) for a in AU_NAMES] for ed in (astronaut_editor, grace_editor)])
    truth = np.stack([openface_numbers("astronaut"), openface_numbers("grace_hopper")])
    fit = agreement(ours, truth)
    assert fit["r"] >= 0.7 and fit["mae"] <= 0.1, fit
    # the cases that once disagreed: Grace Hopper's AU07 (OpenFace 0.39, the mesh estimator read 0.75), the smile
    grace = dict(zip(AU_NAMES, ours[1]))
    assert abs(grace["AU07"] - truth[1][AU_NAMES.index("AU07")]) < 0.1
    assert abs(ours[0][AU_NAMES.index("AU12")] - truth[0][AU_NAMES.index("AU12")]) < 0.1


def test_estimates_are_deterministic_and_cached(grace_editor):
    face = grace_editor.face()
    assert has_appearance(face)
    a = estimate_raw(face)
    again = fresh(face)
    again.cache[CROP_KEY] = face.cache[CROP_KEY]
    np.testing.assert_array_equal(estimate_raw(again), a)
    assert a.shape == (len(basis().channels),) and np.isfinite(a).all()


def test_openface_aus_from_the_regressor_the_rest_from_the_mesh(grace_editor):
    face = grace_editor.face()
    raw, mesh, reading = estimate_raw(face), mesh_raw(face), openface_like(face)
    b = basis()
    for au in OPENFACE_LACKS:
        for ch in get_au(au).channels():
            assert raw[b.index(ch)] == mesh[b.index(ch)]
    for value, au in zip(reading, AU_NAMES):
        idx = [b.index(c) for c in get_au(au).channels()]
        assert raw[idx].mean() == pytest.approx(value, abs=1e-9)  # one OpenFace value ...
        split, mesh_split = np.diff(raw[idx]), np.diff(mesh[idx])  # ... the mesh's L/R split, kept on the scale
        assert np.all(np.abs(split) <= np.abs(mesh_split) + 1e-9) and np.all(split * mesh_split >= 0)
        if 0.0 <= value <= 1.0:
            assert raw[idx].min() >= -1e-9 and raw[idx].max() <= 1.0 + 1e-9


def test_without_the_image_the_mesh_only_model_reads(grace_editor):
    face = fresh(grace_editor.face())
    assert not has_appearance(face)
    reg = load_regressor()
    views = np.stack([shape(face.canonical), shape(mirrored(face.canonical)[0])])
    np.testing.assert_allclose(openface_like(face), reg.shape(views).mean(0), atol=1e-6)
    fit = agreement(openface_like(face)[None], openface_numbers("grace_hopper")[None])
    assert fit["mae"] <= 0.1, fit


def test_an_edited_output_is_read_on_the_output_face(grace_editor):
    m = grace_editor.measured()
    res = grace_editor.edit(EditRequest(au_text="AU12:0.8,AU26:0.5").target(m), measure_output=False)
    after = match_face(res.image, grace_editor.face())
    out = estimate_after(grace_editor.face(), after)
    reading = np.clip(openface_like(after), 0.0, 1.0)
    for value, au in zip(reading, AU_NAMES):
        assert out.au(au) == pytest.approx(value, abs=1e-9), au  # the L/R split never changes an AU's value
    assert out.au("AU12") > m.au("AU12") + 0.1  # the smile is seen on the output


def test_a_weights_file_for_other_aus_is_refused(tmp_path):
    tensors = load_file(str(WEIGHTS))
    stale = tmp_path / "stale.safetensors"
    save_file(tensors, str(stale), metadata={"format": "aufx-openface-regressor", "aus": json.dumps(["AU01"]),
                                             "features": "{}"})
    with pytest.raises(RegressorError, match="refit"):
        load_regressor(stale)
