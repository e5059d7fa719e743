"""eval.openface_evidence without OpenFace (CI never runs it): model files written in OpenFace's binary and text
formats are read back exactly, a reading splits into cells and geometry that sum to the model's prediction, a
change in one HOG cell is drawn on that cell, and a missing OpenFace or a wrong model file is a clear error."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from aufx.openface_runner import LANDMARK_MODEL, OpenFaceError
from eval import openface_evidence as ev

ROWS, COLS, CH, N_PARAMS = 12, 12, 31, 34
DIM = ROWS * COLS * CH + 204 + N_PARAMS


def _mat(a: np.ndarray) -> bytes:
    a = np.atleast_2d(np.asarray(a, np.float64))
    return struct.pack("<iii", a.shape[0], a.shape[1], 6) + a.tobytes()


def _svr(mean: np.ndarray, w: np.ndarray, bias: float, kind: int = 0) -> bytes:
    return struct.pack("<i", kind) + _mat(mean[None]) + _mat(w[:, None]) + struct.pack("<d", bias)


def _text_mat(a: np.ndarray) -> str:
    return f"{a.shape[0]}\n{a.shape[1]}\n6\n" + "\n".join(" ".join(f"{v:.6f}" for v in row) for row in a) + "\n"


@pytest.fixture
def install(tmp_path):
    """An OpenFace build's layout with two static AU models (AU06, AU12) and a face model, in OpenFace's formats."""
    rng = np.random.default_rng(0)
    exe = tmp_path / "bin" / "FeatureExtraction"
    (tmp_path / "bin" / "model").mkdir(parents=True)
    (tmp_path / "bin" / LANDMARK_MODEL).write_text("")
    exe.write_text("")
    exe.chmod(0o755)
    models = tmp_path / "bin" / ev.MODELS
    (models / "svr_combined").mkdir(parents=True)
    mean = rng.normal(size=DIM)
    truth = {}
    for au in ("AU06", "AU12"):
        w, b = rng.normal(size=DIM) * 0.01, float(rng.normal())
        (models / f"svr_combined/{au}_static.dat").write_bytes(_svr(mean, w, b))
        truth[au] = (w, b)
    (models / ev.STATIC_LIST).write_text("svm_combined/AU_6_static.dat AU06\nsvr_combined/AU06_static.dat AU06\n"
                                         "svr_combined/AU12_static.dat AU12\n")
    raw = rng.normal(size=(204, N_PARAMS))
    raw[:, 0] = 0.0
    raw[68 + 17:68 + 27, 0] = 1.0  # the first component raises the brows only (y of landmarks 17-26)
    components = np.linalg.qr(raw)[0]  # orthonormal, as OpenFace's face model
    (models / ev.PDM).write_text("# mean shape\n" + _text_mat(rng.normal(size=(204, 1))) + "# components\n"
                                 + _text_mat(components) + "# eigenvalues\n" + _text_mat(np.ones((1, N_PARAMS))))
    return exe, mean, truth, components


def _features(rng, hog=None) -> ev.Features:
    return ev.Features(True, {}, rng.random((ROWS, COLS, CH)) if hog is None else hog, rng.normal(size=N_PARAMS),
                       np.full((112, 112, 3), 128, np.uint8))


def test_static_models_read_back_what_openface_writes(install):
    exe, mean, truth, components = install
    models = ev.load_static_models(exe)
    assert models.aus == ("AU06", "AU12")  # presence (svm) models are not intensity models
    np.testing.assert_array_equal(models.mean, mean)
    for au, (w, b) in truth.items():
        np.testing.assert_array_equal(models.weight(au), w)
        assert models.bias[models.aus.index(au)] == b
    np.testing.assert_allclose(models.components, components, atol=1e-6)


def test_a_reading_splits_into_cells_and_geometry_that_sum_to_the_prediction(install):
    exe, mean, truth, _ = install
    models = ev.load_static_models(exe)
    rng = np.random.default_rng(1)
    f = _features(rng)
    for au, (w, b) in truth.items():
        e = ev.evidence(models, f, au)
        assert e.prediction == pytest.approx(float((f.vector(models) - mean) @ w + b))
        assert e.cells.shape == (ROWS, COLS)
        assert e.appearance == pytest.approx(e.cells.sum())
        assert e.prediction == pytest.approx(e.appearance + e.geometry + b)


def test_a_change_in_one_cell_is_drawn_on_that_cell(install):
    """Raising the HOG of cell (9, 4) (low on the left of OpenFace's aligned face) changes that cell's term
    only, and the overlay tints that cell of the face red (or blue if the weights make the reading fall)."""
    exe, *_ = install
    models = ev.load_static_models(exe)
    rng = np.random.default_rng(2)
    before = _features(rng)
    hog = before.hog.copy()
    hog[9, 4] += 0.5
    after = ev.Features(True, {}, hog, before.params, before.aligned)
    d = ev.evidence(models, after, "AU12").minus(ev.evidence(models, before, "AU12"))
    assert d.geometry == pytest.approx(0.0)
    changed = np.argwhere(np.abs(d.cells) > 1e-12)
    assert changed.tolist() == [[9, 4]]
    img = ev.overlay(after.aligned, d.cells, scale=abs(d.cells[9, 4]), zoom=2).astype(int)
    cell = img[(9 + 1) * 16 + 8, (4 + 1) * 16 + 8]  # one cell in from the edge, 16 px per cell at zoom 2
    channel = 0 if d.cells[9, 4] > 0 else 2
    assert cell[channel] == 255 and cell[2 - channel] == 128
    assert (img[8, 8] == 128).all()  # an untouched cell keeps the face's colour


def test_geometry_splits_by_landmark_region(install):
    """Moving the face model's shape along its components: the geometry term's change splits over the 5 landmark
    regions exactly, and a change of the component that moves only the brows lands in "brows" only."""
    exe, *_ = install
    models = ev.load_static_models(exe)
    rng = np.random.default_rng(3)
    before = _features(rng)
    after = ev.Features(True, {}, before.hog, before.params + rng.normal(size=N_PARAMS), before.aligned)
    for au in models.aus:
        d = ev.evidence(models, after, au).minus(ev.evidence(models, before, au))
        parts = ev.geometry_by_region(models, before, after, au)
        assert set(parts) == {"jaw", "brows", "nose", "eyes", "mouth"}
        assert sum(parts.values()) == pytest.approx(d.geometry, abs=1e-5)  # the file holds 6 decimals
    params = before.params.copy()
    params[0] += 2.0
    raised = ev.Features(True, {}, before.hog, params, before.aligned)
    parts = ev.geometry_by_region(models, before, raised, "AU12")
    assert abs(parts["brows"]) > 1e-3
    assert all(abs(v) < 1e-5 for k, v in parts.items() if k != "brows"), parts


def test_a_split_row_adds_up_and_a_poor_fit_is_not_usable(install):
    """The split's appearance halves (upper and lower face) add up to the appearance term, its regions to the
    geometry term, its parts and the bias to the model's output; a fit below confidence 0.8 is not usable."""
    exe, *_ = install
    models = ev.load_static_models(exe)
    rng = np.random.default_rng(4)
    before, after = _features(rng), _features(rng)
    row = ev.split(models, before, after, "AU06")
    assert row["app_upper"] + row["app_lower"] == pytest.approx(row["appearance"])
    assert sum(row[f"geo_{k}"] for k in ev.REGIONS) == pytest.approx(row["geometry"], abs=1e-5)
    assert row["model_after"] - row["model_before"] == pytest.approx(row["appearance"] + row["geometry"])
    assert after.usable
    assert not ev.Features(True, {}, after.hog, after.params, after.aligned, confidence=0.58).usable


def test_the_command_asks_for_one_of_its_two_forms(tmp_path, capsys):
    for argv in ([], ["--faces", str(tmp_path), "--before", str(tmp_path / "a.png")]):
        with pytest.raises(SystemExit) as stop:
            ev.main(["--out", str(tmp_path), *argv])
        assert stop.value.code == 2
    assert "give --before and --after, or --faces" in capsys.readouterr().err


def test_a_model_that_is_not_a_static_svr_is_a_clear_error(install, tmp_path):
    exe, mean, truth, _ = install
    path = exe.parent / ev.MODELS / "svr_combined/AU12_static.dat"
    path.write_bytes(_svr(mean, truth["AU12"][0], 0.0, kind=1))
    with pytest.raises(OpenFaceError, match="AU12_static.dat: not a static linear SVR"):
        ev.load_static_models(exe)


def test_without_openface_the_tool_says_how_to_get_it(tmp_path, monkeypatch, grace):
    from aufx.io.images import save_image

    monkeypatch.delenv("OPENFACE_BIN", raising=False)
    save_image(tmp_path / "a.png", grace)
    with pytest.raises(SystemExit, match="OpenFace is not configured"):
        ev.main(["--before", str(tmp_path / "a.png"), "--after", str(tmp_path / "a.png"), "--out", str(tmp_path)])


@pytest.mark.skipif(not os.environ.get("OPENFACE_BIN"), reason="OPENFACE_BIN is not set: build OpenFace 2.x (README "
                    "'Measuring with OpenFace') to run eval.openface_evidence with it")
def test_the_split_reproduces_openface_s_own_readings(grace, grace_editor):
    """With a real OpenFace build: on Grace Hopper and her jaw drop (AU26 0.8) the models read beside the binary,
    applied to the features FeatureExtraction wrote, give back the readings it printed wherever they are not clipped
    at 0 (within 0.1 of 5; the geometry uses the printed shape parameters, OpenFace refits its own), and the jaw drop
    raises AU26 mostly through the cells below the nose."""
    from aufx.request import EditRequest

    ed = grace_editor
    opened = ed.edit(EditRequest(au_text="AU26:0.8").target(ed.measured()), measure_output=False).image
    models = ev.load_static_models()
    before, after = ev.extract([grace, opened])
    assert before.success and after.success
    assert sum(ev.geometry_by_region(models, before, after, "AU26").values()) == pytest.approx(
        ev.evidence(models, after, "AU26").geometry - ev.evidence(models, before, "AU26").geometry, abs=1e-6)
    for f in (before, after):
        for au in models.aus:
            if f.readings[au] > 0.05:
                assert ev.evidence(models, f, au).prediction == pytest.approx(f.readings[au], abs=0.1), au
    d = ev.evidence(models, after, "AU26").minus(ev.evidence(models, before, "AU26"))
    assert d.prediction > 0.5
    lower = d.cells[d.cells.shape[0] // 2:].sum()
    assert lower > abs(d.cells[:d.cells.shape[0] // 2].sum())


@pytest.mark.skipif(not os.environ.get("OPENFACE_BIN"), reason="OPENFACE_BIN is not set: build OpenFace 2.x (README "
                    "'Measuring with OpenFace') to run eval.openface_evidence with it")
def test_a_survey_edits_each_face_and_splits_each_au(grace, tmp_path):
    """--faces on a folder with Grace Hopper, two AUs: one row each; her jaw drop raises OpenFace's AU26 output,
    most of it in the lower half of the face."""
    from aufx.io.images import save_image

    save_image(tmp_path / "grace.png", grace)
    table = ev.survey(tmp_path, 0.8, aus=("AU26", "AU12"))
    assert sorted(table.au) == ["AU12", "AU26"] and set(table.face) == {"grace"}
    jaw = table.set_index("au").loc["AU26"]
    assert jaw.model_after - jaw.model_before > 0.5 and jaw.app_lower > abs(jaw.app_upper)
