"""OpenFace as a measurement backend: parsing real FeatureExtraction CSVs, one call per batch, the content cache,
AUFX's face order for several faces, and clear errors. Tests of the binary itself run where OPENFACE_BIN is set."""
from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from aufx.face.analysis import analyze_faces
from aufx.io.digest import array_digest
from aufx.openface_runner import (LANDMARK_MODEL, SOURCE, OpenFace, OpenFaceError, face_crop, openface_binary,
                                  reading_from_csv)

DATA = Path(__file__).parent / "data" / "openface"
HAVE_OPENFACE = bool(os.environ.get("OPENFACE_BIN"))
needs_openface = pytest.mark.skipif(not HAVE_OPENFACE, reason="OPENFACE_BIN is not set: build OpenFace 2.x (README "
                                    "'Measuring with OpenFace') and point OPENFACE_BIN to its FeatureExtraction")


def iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return (np.random.default_rng(0).random((300, 300, 3)) * 255).astype(np.uint8)  # as no_face.csv was made


@pytest.fixture(scope="module")
def two_faces(astronaut, grace):
    image = np.concatenate([astronaut, grace[:512]], axis=1)
    return image, analyze_faces(image)


def fake_openface(tmp_path: Path, answers: dict[str, str], exit_code: int = 0, other: str | None = None) -> Path:
    """A stand-in FeatureExtraction (a real executable beside OpenFace's folder layout): for each -f image it
    writes the committed CSV of that image's content (``answers``: content digest -> fixture name; ``other``: the
    fixture for any other image) and logs the call."""
    folder = tmp_path / "openface"
    (folder / "AU_predictors").mkdir(parents=True)
    (folder / LANDMARK_MODEL).parent.mkdir(parents=True)
    (folder / LANDMARK_MODEL).write_text("")
    (folder / "answers.json").write_text(json.dumps({k: str(DATA / v) for k, v in answers.items()}))
    fallback = str(DATA / other) if other else None
    script = folder / "FeatureExtraction"
    script.write_text(f"""#!{sys.executable}
import json, shutil, sys
from pathlib import Path
import cv2
sys.path.insert(0, {str(Path(__file__).parents[1])!r})
from aufx.io.digest import array_digest
here = Path(__file__).parent
answers = json.loads((here / "answers.json").read_text())
args = sys.argv[1:]
out = Path(args[args.index("-out_dir") + 1])
out.mkdir(parents=True, exist_ok=True)
images = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
with open(here / "calls.log", "a") as log:
    log.write(" ".join(args) + "\\n")
if {exit_code}:
    print("Could not open the landmark model")
    sys.exit({exit_code})
for name in images:
    rgb = cv2.cvtColor(cv2.imread(name), cv2.COLOR_BGR2RGB)
    shutil.copy(answers.get(array_digest(rgb), {fallback!r}), out / (Path(name).stem + ".csv"))
print("Closed successfully")
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def calls(binary: Path) -> list[str]:
    log = binary.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_reads_real_csvs(astronaut_editor):
    astro = reading_from_csv(DATA / "astronaut.csv")
    assert astro.success and astro.confidence == 0.92
    assert astro.raw["AU12_r"] == 3.19 and astro.raw["AU12_c"] == 1.0 and astro.raw["AU28_c"] == 0.0
    assert astro.aus["L12"] == astro.aus["R12"] == pytest.approx(3.19 / 5)  # bilateral: both sides
    assert astro.aus["AU26"] == 0.0 and astro.aus["L06"] == pytest.approx(1.90 / 5)
    assert iou(astro.box, astronaut_editor.faces[0].box) > 0.6  # OpenFace's 68 landmarks vs AUFX's mesh
    grace = reading_from_csv(DATA / "grace_hopper.csv")
    per_au = grace.aus.per_au()
    assert per_au["AU07"] == pytest.approx(0.388) and per_au["AU23"] == pytest.approx(0.158)
    assert per_au["AU24"] == 0.0  # not an OpenFace AU: never reported
    assert reading_from_csv(DATA / "no_face.csv") is None  # success 0


def test_one_call_for_a_batch_then_cached(tmp_path, monkeypatch, astronaut, grace, noise):
    answers = {array_digest(astronaut): "astronaut.csv", array_digest(grace): "grace_hopper.csv",
               array_digest(noise): "no_face.csv"}
    binary = fake_openface(tmp_path, answers)
    of = OpenFace(binary)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    grace_png = tmp_path / "grace.png"
    import cv2

    cv2.imwrite(str(grace_png), cv2.cvtColor(grace, cv2.COLOR_RGB2BGR))  # paths work as well as arrays
    first = of.read([astronaut, grace_png, noise, astronaut])
    assert len(calls(binary)) == 1 == of.calls and calls(binary)[0].count("-f ") == 3  # duplicates sent once
    assert first[0] == first[3] == reading_from_csv(DATA / "astronaut.csv")
    assert first[1] == reading_from_csv(DATA / "grace_hopper.csv") and first[2] is None
    again = of.read([grace, noise, astronaut])
    assert of.calls == 1 and again == [first[1], None, first[0]]  # the cache answers, no-face results included
    assert not list(scratch.iterdir())  # the images and CSVs were removed


def test_cache_size_and_batches(tmp_path, monkeypatch, astronaut, grace, noise):
    import aufx.openface_runner as runner

    binary = fake_openface(tmp_path, {array_digest(astronaut): "astronaut.csv",
                                      array_digest(grace): "grace_hopper.csv", array_digest(noise): "no_face.csv"})
    monkeypatch.setattr(runner, "BATCH_SIZE", 2)
    of = OpenFace(binary, cache_size=1)
    assert of.read([astronaut, grace, noise])[2] is None and of.calls == 2  # 3 images, 2 per call
    of.read([noise])
    assert of.calls == 2  # the newest stays cached
    of.read([astronaut])
    assert of.calls == 3  # the oldest was dropped


def test_several_faces_keep_aufx_order(tmp_path, two_faces):
    image, faces = two_faces
    assert len(faces) == 2 and faces[0].box[0] >= 512  # AUFX: Grace Hopper (larger, on the right) first
    boxes = [f.box for f in faces]
    crops = [face_crop(image, b, [o for o in boxes if o != b])[0] for b in boxes]
    binary = fake_openface(tmp_path, {array_digest(c): f"two_faces_{i}.csv" for i, c in enumerate(crops)})
    of = OpenFace(binary)
    readings = of.read_faces(image, faces)
    assert of.calls == 1 == len(calls(binary))
    assert [r.aus for r in readings] == [reading_from_csv(DATA / f"two_faces_{i}.csv").aus for i in range(2)]
    assert readings[0].aus.au("AU07") > 0.3 and readings[1].aus.au("AU12") > 0.5  # Grace's squint, the smile
    for reading, face in zip(readings, faces):
        assert iou(reading.box, face.box) > 0.6  # crop boxes mapped back into the photo


def test_missing_or_broken_binary(tmp_path, monkeypatch, astronaut):
    monkeypatch.delenv("OPENFACE_BIN", raising=False)
    with pytest.raises(OpenFaceError, match="OPENFACE_BIN.*noncommercial|noncommercial.*OPENFACE_BIN"):
        openface_binary()
    with pytest.raises(OpenFaceError, match="not found at"):
        OpenFace(tmp_path / "nowhere" / "FeatureExtraction")
    lonely = tmp_path / "lonely" / "FeatureExtraction"
    lonely.parent.mkdir()
    lonely.write_text("#!/bin/sh\n")
    lonely.chmod(0o755)
    with pytest.raises(OpenFaceError, match="models are missing"):
        OpenFace(lonely.parent)  # the folder is accepted too
    failing = fake_openface(tmp_path, {}, exit_code=3)
    monkeypatch.setenv("OPENFACE_BIN", str(failing))
    with pytest.raises(OpenFaceError, match="exit code 3.*Could not open the landmark model"):
        OpenFace().read([astronaut])


@needs_openface
def test_binary_prints_the_committed_numbers(astronaut, grace, noise):
    of = OpenFace()
    readings = of.read([astronaut, grace, noise])
    assert of.calls == 1 and readings[2] is None
    for reading, name in zip(readings, ("astronaut", "grace_hopper")):
        fixture = reading_from_csv(DATA / f"{name}.csv")
        assert reading.raw == pytest.approx(fixture.raw, abs=0.011) and reading.box == fixture.box
    assert SOURCE == "OpenFace 2.x static"


@needs_openface
def test_binary_reads_each_face_of_a_group(two_faces):
    image, faces = two_faces
    of = OpenFace()
    readings = of.read_faces(image, faces)
    assert of.calls == 1
    alone = [reading_from_csv(DATA / f) for f in ("grace_hopper.csv", "astronaut.csv")]
    for reading, single, face in zip(readings, alone, faces):
        assert iou(reading.box, face.box) > 0.6
        diffs = [abs(reading.aus.au(a) - single.aus.au(a)) for a in ("AU05", "AU06", "AU07", "AU10", "AU12", "AU25")]
        assert max(diffs) < 0.1, diffs  # a crop reads like the face photographed alone


def test_cli_estimate_with_openface(tmp_path, monkeypatch, capsys, two_faces):
    from aufx.cli import main

    image, faces = two_faces
    boxes = [f.box for f in faces]
    crops = [face_crop(image, b, [o for o in boxes if o != b])[0] for b in boxes]
    binary = fake_openface(tmp_path, {array_digest(c): f"two_faces_{i}.csv" for i, c in enumerate(crops)})
    photo = tmp_path / "two.png"
    import cv2

    cv2.imwrite(str(photo), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert main(["estimate", "-i", str(photo), "--estimator", "openface", "--openface_bin", str(binary)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["face"] for r in rows] == [0, 1] and {r["source"] for r in rows} == {SOURCE}
    for i, row in enumerate(rows):
        assert row["box"] == list(boxes[i])  # AUFX's face, OpenFace's numbers
        assert row["aus"] == reading_from_csv(DATA / f"two_faces_{i}.csv").aus.per_au(tuple(row["aus"]))
        assert len(row["aus"]) == 17 and "AU24" not in row["aus"]  # only what OpenFace measures
    monkeypatch.delenv("OPENFACE_BIN", raising=False)
    assert main(["estimate", "-i", str(photo), "--estimator", "openface"]) == 2
    assert "OPENFACE_BIN" in capsys.readouterr().err


def test_evaluate_reads_outputs_with_openface(tmp_path, monkeypatch, astronaut, grace):
    import cv2

    from aufx.evaluation.config import EvalConfig
    from aufx.evaluation.evaluate import evaluate

    gens = tmp_path / "gens"
    gens.mkdir()
    for name, rgb, target in (("astronaut", astronaut, {"AU12": 0.8}), ("grace", grace, {"AU07": 0.2})):
        cv2.imwrite(str(tmp_path / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(gens / f"{name}__edit.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        (gens / f"{name}__edit.png.json").write_text(json.dumps({"input": str(tmp_path / f"{name}.png"),
                                                                 "target_aus": target}))
    binary = fake_openface(tmp_path, {array_digest(astronaut): "astronaut.csv",
                                      array_digest(grace): "grace_hopper.csv"})
    config = EvalConfig(gens=gens, report=tmp_path / "m.json", metrics=("au", "psnr"), au_backend="openface",
                        openface_bin=binary, write_html=False)
    result = evaluate(config)
    assert len(calls(binary)) == 1  # both outputs in one FeatureExtraction call
    assert result["metrics"]["au"] == {"status": "ok", "measured_by": SOURCE}
    per = {Path(r["gen"]).name: r for r in result["per_image"]}
    astro = per["astronaut__edit.png"]
    assert astro["measured_from"] == SOURCE and len(astro["au"]["abs_error"]) == 17
    assert astro["au"]["abs_error"]["AU12"] == pytest.approx(0.8 - 3.19 / 5, abs=1e-4)
    assert per["grace__edit.png"]["au"]["abs_error"]["AU07"] == pytest.approx(1.94 / 5 - 0.2, abs=1e-4)
    monkeypatch.delenv("OPENFACE_BIN", raising=False)
    result = evaluate(EvalConfig(gens=gens, report=tmp_path / "m2.json", metrics=("au", "psnr"),
                                 au_backend="openface", write_html=False))
    assert result["metrics"]["au"]["status"] == "unavailable" and "OPENFACE_BIN" in result["metrics"]["au"]["reason"]
    assert all(r["psnr"]["image"] == "inf" for r in result["per_image"])  # the other metrics still run


def test_app_session_measures_with_openface(tmp_path, astronaut_editor):
    from aufx.openface_runner import AUFX_SOURCE
    from aufx.ui.config import AppConfig
    from aufx.ui.session import EditSession, Measurement

    image, face = astronaut_editor.image, astronaut_editor.faces[0]
    crop = face_crop(image, face.box)[0]
    binary = fake_openface(tmp_path, {array_digest(crop): "astronaut.csv"}, other="grace_hopper.csv")
    session = EditSession.open(image, "astronaut.png", AppConfig(), Measurement("openface", str(binary)))
    estimated = astronaut_editor.measured(0)
    start = session.measured
    assert start.au("AU12") == pytest.approx(3.19 / 5) and start["L16"] == estimated["L16"]  # AU16: not OpenFace's
    assert session.target == start and session.measured_by().startswith(SOURCE)
    result = session.render(measure=True)
    assert np.array_equal(result.image, image) and len(calls(binary)) == 1  # untouched: no edit, output cached
    session.move_sliders({"L12": 0.9, "R12": 0.9})
    result = session.render(measure=True)
    assert len(calls(binary)) == 2 and result.measured_output.au("AU07") == pytest.approx(1.94 / 5)  # OpenFace's
    assert session.engine_aus()["L12"] == pytest.approx(min(1.0, estimated["L12"] + 0.9 - 3.19 / 5))
    assert result.target == session.target and result.measured_input == start
    meta = session.metadata(result)
    assert meta["measured_by"] == session.measured_by() and meta["target_aus"]["AU12"] == 0.9
    session.set_measurement(Measurement("aufx"))  # the change made on OpenFace's scale is kept
    assert session.measured == estimated and session.target["L12"] == pytest.approx(
        min(1.0, estimated["L12"] + 0.9 - 3.19 / 5))
    missing = EditSession.open(image, "astronaut.png", AppConfig(), Measurement("openface", str(tmp_path / "no")))
    assert "not found" in missing.measure_note and missing.measured == estimated
    assert missing.measured_by() == AUFX_SOURCE
    session.close()
    missing.close()


def test_app_measure_with_openface(app, photo, tmp_path):
    from gradio_client import Client, handle_file

    from app_fixtures import ANALYZE_SLIDERS_AT, sliders

    binary = fake_openface(tmp_path, {}, other="astronaut.csv")
    c = Client(app.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path))
    chosen = c.predict("openface", str(binary), api_name="/set_measurement")
    assert SOURCE in chosen[-1]  # the status names the instrument before a photo is loaded
    analyzed = c.predict(handle_file(str(photo)), api_name="/analyze")
    assert sliders(analyzed, ANALYZE_SLIDERS_AT)["AU12"] == pytest.approx(3.19 / 5, abs=0.006)  # OpenFace's start
    assert f"AUs: {SOURCE}" in analyzed[-1] and len(calls(binary)) == 1
    back = c.predict("aufx", str(binary), api_name="/set_measurement")
    assert "AUs: AUFX estimator" in back[-1]


def test_stimulus_manifest_measured_by_openface(tmp_path, monkeypatch, astronaut):
    import cv2

    from aufx.study import StudyError, read_manifest
    from aufx.study.conditions import parse_conditions
    from aufx.study.stimuli import build_stimuli
    from aufx.study.stimulus_config import StimulusConfig

    faces = tmp_path / "faces"
    faces.mkdir()
    cv2.imwrite(str(faces / "astronaut.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    conditions = parse_conditions({"intensities": [0, 1], "conditions": [{"name": "smile", "aus": "AU12:0.9"}]})
    binary = fake_openface(tmp_path, {}, other="grace_hopper.csv")  # every output reads as Grace Hopper's face
    config = StimulusConfig(faces, conditions, tmp_path / "stimuli", size=128, measure_with="openface",
                            openface_bin=binary, identity_backend=None)
    build_stimuli(config)
    rows = read_manifest(tmp_path / "stimuli" / "manifest.csv")
    assert len(rows) == 2 and len(calls(binary)) == 1  # both stimuli in one FeatureExtraction call
    grace = reading_from_csv(DATA / "grace_hopper.csv").aus.to_text()
    assert list(rows["measured_aus"]) == [grace, grace]
    assert all(json.loads(p)["measured_by"] == SOURCE for p in rows["params"])
    monkeypatch.delenv("OPENFACE_BIN", raising=False)
    with pytest.raises(StudyError, match="OPENFACE_BIN"):
        build_stimuli(StimulusConfig(faces, conditions, tmp_path / "other", measure_with="openface"))
    assert not (tmp_path / "other" / "manifest.csv").exists()
