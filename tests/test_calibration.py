"""Estimator calibration end to end on data with known AUs: warp edits of the two test faces, written as real-format
OpenFace CSVs, paired into an annotation CSV, fitted with `python -m aufx.training.fit_estimator`, used by the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aufx.au import AUVector
from aufx.model.calibration import Calibration, CalibrationError, feature_names, features, own_feature
from aufx.cli import main as aufx_main
from aufx.model.estimate import estimate_calibrated, estimate_raw
from aufx.face.analysis import analyze_faces
from aufx.io.images import load_image, save_image
from aufx.io.openface import OPENFACE_AUS, write_openface_csv
from aufx.training.annotations import main as annotate
from aufx.training.fit_estimator import FitConfig, main as fit_main, split
from aufx.training.ridge import fit_ridge, loo_mse

N_IMAGES = 120  # 24 held out: with 16, AU26's r on one seed read 0.83-0.91 between renders that differ little
RENDERED = ("AU12", "AU26", "AU45")  # lip corners, jaw and lids: the AUs the warp engine renders most clearly


def random_aus(rng: np.random.Generator) -> dict[str, float]:
    """Every image varies the well-rendered AUs over 0..1; each other OpenFace AU is on in 10 % of images."""
    aus = {au: float(rng.uniform(0.3, 0.8)) if rng.random() < 0.1 else 0.0 for au in OPENFACE_AUS}
    aus.update({au: float(rng.uniform(0.0, 1.0)) for au in RENDERED})
    return aus


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, astronaut_editor, grace_editor):
    """80 edited faces with OpenFace CSVs (values x 5, as OpenFace writes them), annotations, and a fit."""
    root = tmp_path_factory.mktemp("calib")
    img_dir, of_dir = root / "Train", root / "OpenFace_AU_Train"
    rng = np.random.default_rng(0)
    truth = {}
    for k in range(N_IMAGES):
        editor = (astronaut_editor, grace_editor)[k % 2]
        aus = random_aus(rng)
        name = f"{editor.name}_{k:03d}"
        save_image(img_dir / f"{name}.jpg", editor.edit(AUVector(aus), measure_output=False).image)
        write_openface_csv(of_dir / f"{name}.csv", [{f"{au}_r": 5 * v for au, v in aus.items()}], kind="image")
        truth[name] = aus
    annotations = root / "annotations_train.csv"
    assert annotate(["--img_dir", str(img_dir), "--openface_dir", str(of_dir), "--out_csv", str(annotations)]) == 0
    out = root / "results" / "estimator.json"
    assert fit_main(["--annotations", str(annotations), "--img_root", str(root), "--out", str(out)]) == 0
    return {"root": root, "img_dir": img_dir, "json": out, "truth": truth, "annotations": annotations}


def test_fit_writes_a_readable_calibration(fitted):
    data = json.loads(fitted["json"].read_text())
    assert data["format"] == "aufx-estimator-calibration" and data["features"] == list(feature_names())
    assert data["split"] == {"by": "image", "holdout": 0.2, "seed": 0, "n_train": 96, "n_test": 24}
    assert data["data"]["images_used"] == N_IMAGES and data["data"]["images_skipped"] == 0
    assert set(data["aus"]) == set(OPENFACE_AUS)
    m = data["aus"]["AU12"]
    assert set(m) == {"intercept", "coefficients", "alpha", "n_train", "heldout"}
    assert set(m["coefficients"]) == set(feature_names()) and m["n_train"] == 96 and m["alpha"] > 0
    assert set(m["heldout"]) == {"n", "pearson_r", "mae", "pearson_r_raw", "mae_raw"}


def test_calibration_beats_the_raw_estimator_on_held_out_faces(fitted):
    cal = Calibration.load(fitted["json"])
    held = {au: m.heldout for au, m in cal.models.items()}
    # On 8 held-out faces r was a noisy number (over six seeds AU45 read 0.79-0.93 once and 0.40 once; one seed
    # 0.70 or 0.59 for two shapes of the lower lip's fields); on 16, AU26 read 0.83-0.91 on this seed for renders
    # that differ little (its mean over five other seeds: 0.96-0.97); on these 24 AU12 0.94, AU26 0.93-0.94, AU45 0.86.
    for au, r_min in zip(RENDERED, (0.6, 0.85, 0.6)):
        assert held[au]["pearson_r"] > r_min, (au, held[au])
        # the raw estimator reads damped re-detections (README: 30-60 %) and a jaw drop as lips apart (AU25)
        assert held[au]["mae"] < held[au]["mae_raw"], (au, held[au])
    assert np.mean([h["mae"] for h in held.values()]) < 0.6 * np.mean([h["mae_raw"] for h in held.values()])


def test_the_saved_model_reproduces_its_held_out_numbers(fitted):
    """Recompute the held-out MAE from the images and the JSON alone: the file is the model that was evaluated."""
    cal = Calibration.load(fitted["json"])
    table = pd.read_csv(fitted["annotations"])
    _, test = split(list(table["image_path"]), FitConfig(fitted["annotations"]))
    measured = [estimate_calibrated(analyze_faces(load_image(table["image_path"][i]))[0], cal) for i in test]
    for au in RENDERED:
        errors = [abs(m.au(au) - table[au][i]) for m, i in zip(measured, test)]
        assert np.mean(errors) == pytest.approx(cal.models[au].heldout["mae"], abs=1e-4)


def test_estimate_and_edit_report_calibrated_aus(fitted, capsys, tmp_path):
    img = fitted["img_dir"] / "grace_hopper_001.jpg"
    assert aufx_main(["estimate", "-i", str(img), "--estimator", str(fitted["json"])]) == 0
    face_json = json.loads(capsys.readouterr().out)[0]
    face = analyze_faces(load_image(img))[0]
    expected = Calibration.load(fitted["json"]).predict(estimate_raw(face))
    assert face_json["estimator"] == str(fitted["json"]) and set(face_json["calibrated_aus"]) == set(OPENFACE_AUS)
    for au in OPENFACE_AUS:
        assert face_json["aus"][au] == pytest.approx(expected[au], abs=1e-3)

    out = tmp_path / "open.png"
    assert aufx_main(["edit", "-i", str(img), "--au", "AU26:0.9", "-o", str(out),
                      "--estimator", str(fitted["json"])]) == 0
    cal = json.loads((tmp_path / "open.png.json").read_text())["calibrated"]
    assert cal["measured_output"]["AU26"] > cal["measured_input"]["AU26"] + 0.2


def test_a_calibration_from_other_features_is_refused(fitted, tmp_path, capsys):
    data = json.loads(fitted["json"].read_text())
    data["features"] = data["features"][:-1]
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="refit it"):
        Calibration.load(stale)
    assert aufx_main(["estimate", "-i", str(fitted["img_dir"] / "astronaut_000.jpg"), "--estimator",
                      str(stale)]) == 2
    assert "stale.json" in capsys.readouterr().err


def test_fit_errors_name_the_problem(tmp_path, capsys):
    bad = tmp_path / "raw_values.csv"
    bad.write_text("image_path,AU12\nx.jpg,3.5\n")
    assert fit_main(["--annotations", str(bad)]) == 2
    assert "line 2: AU12 = '3.5'" in capsys.readouterr().err
    assert fit_main(["--annotations", str(tmp_path / "missing.csv")]) == 2


def test_features_and_ridge():
    names = feature_names()
    assert len(names) == len(set(names)) and "raw_AU45" not in names  # AU45 = AU43: one feature, not two
    assert names[own_feature("AU45")] == "raw_AU43" and names[own_feature("AU12")] == "raw_AU12"
    raw = np.zeros(36)
    raw[[16, 17]] = 0.2, 0.6  # L12, R12
    assert features(raw)[own_feature("AU12")] == pytest.approx(0.4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = 0.3 + x @ [1.0, -2.0, 0.0] + rng.normal(scale=0.05, size=60)
    fit = fit_ridge(x, y)
    np.testing.assert_allclose(fit.coef, [1.0, -2.0, 0.0], atol=0.05)
    assert fit.intercept == pytest.approx(0.3, abs=0.03) and fit.alpha <= 1.0
    assert loo_mse(x, y, 1e3) > loo_mse(x, y, fit.alpha)
    assert fit_ridge(x, np.full(60, 0.2)).alpha == 1e3  # nothing to explain: the flattest model


def test_video_split_keeps_frames_of_one_video_together(tmp_path):
    paths = [f"clip{v}_{f:06d}.jpg" for v in range(5) for f in range(4)]
    train, test = split(paths, FitConfig(tmp_path / "a.csv", split_by="video"))
    clips = lambda idx: {paths[i].split("_")[0] for i in idx}  # noqa: E731
    assert len(test) == 4 and not clips(train) & clips(test)
