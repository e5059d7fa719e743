"""The stimulus builder on real faces: what it writes, that it writes the same bytes every time, that it resumes after
an interruption to exactly the files of an uninterrupted run, and that the study page takes its output."""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image
from skimage import data

from aufx.au import AUVector
from aufx.face.analysis import analyze_faces
from aufx.model.presets import preset_vector
from aufx.resources import code_digest
from aufx.study import MANIFEST_COLUMNS, StudyError, export_study, load_study, read_manifest
from aufx.study.conditions import load_conditions, parse_conditions
from aufx.study.sheet import sheet_size
from aufx.study.stimuli import build_stimuli, main
from aufx.study.stimulus_config import SheetLayout, StimulusConfig, Template

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = """\
intensities: [0, 0.5, 1.0]
conditions:
  - {name: happy, preset: happy}
  - {name: smile, aus: "AU12:0.8"}
  - {name: surprise, preset: surprise}
"""
EXPECTED = {"happy": lambda i: preset_vector("happy", i), "smile": lambda i: AUVector({"AU12": 0.8 * i}),
            "surprise": lambda i: preset_vector("surprise", i)}
SIZE = 256


class Interrupted(Exception):
    pass


# Fixtures ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """faces/ with the two test faces and one photo without a face, and conditions.yaml."""
    root = tmp_path_factory.mktemp("inputs")
    faces = root / "faces"
    faces.mkdir()
    Image.fromarray(data.astronaut()).save(faces / "astronaut.png")
    Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).save(faces / "grace_hopper.jpg")
    ramp = np.linspace(0, 255, 160 * 160 * 3).reshape(160, 160, 3).astype(np.uint8)
    Image.fromarray(ramp).save(faces / "noface.png")
    (root / "conditions.yaml").write_text(CONDITIONS)
    return root


def config(inputs: Path, out: Path, **options) -> StimulusConfig:
    options = {"size": SIZE, "make_zip": True, **options}
    return StimulusConfig(inputs / "faces", load_conditions(inputs / "conditions.yaml"), out, **options)


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "stimuli"
    return build_stimuli(config(inputs, out))


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_folder(a: Path, b: Path) -> None:
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    assert [name for name in fa if fa[name] != fb[name]] == []


# What a build writes -------------------------------------------------------------------------------------------------
def test_every_combination_is_rendered_and_the_faceless_photo_is_reported(built):
    images = sorted((built.out / "images").iterdir())
    assert len(images) == 2 * 3 * 3 == built.rendered and built.total == 27
    assert list(built.failed) == ["noface"] and "no face found" in built.failed["noface"]
    assert "skipped identity noface" in built.report()
    assert not list(built.out.rglob("*.part"))
    assert {p.name for p in built.out.iterdir()} == {"images", "manifest.csv", "build.json", "contact_sheet.png",
                                                     "stimuli.zip"}


def test_manifest_rows_match_the_plan_and_the_files(built):
    df = read_manifest(built.out / "manifest.csv")
    assert tuple(df.columns) == MANIFEST_COLUMNS
    assert sorted(zip(df.identity, df.condition, df.intensity)) == sorted(
        (i, c, x) for i in ("astronaut", "grace_hopper") for c in EXPECTED for x in (0.0, 0.5, 1.0))
    for row in df.itertuples():
        assert AUVector.from_text(row.target_aus) == EXPECTED[row.condition](row.intensity), row.file
        assert hashlib.sha256((built.out / "images" / row.file).read_bytes()).hexdigest() == row.sha256
        assert row.engine == "warp" and row.seed == "0" and row.aufx_version and row.aufx_code == code_digest()
        params = json.loads(row.params)
        assert params["frame"] == {"crop": "standard", "size": SIZE, "mask": "oval", "background": "gray"}
        assert params["engine"]["field"] and params["source"]["file"].startswith(row.identity)
        if isinstance(params["identity"], dict):  # an identity backend loaded: a real distance, never 0
            assert 0.0 < float(row.identity_distance) < 1.0
        else:
            assert row.identity_distance == "" and params["identity"].startswith("unavailable: ")
        with Image.open(built.out / "images" / row.file) as img:
            assert img.size == (SIZE, SIZE) and img.mode == "RGB"


def test_measured_smile_grows_with_intensity(built):
    df = read_manifest(built.out / "manifest.csv")
    for identity, rows in df[df.condition == "smile"].groupby("identity"):
        au12 = [AUVector.from_text(m).au("AU12") for m in rows.sort_values("intensity").measured_aus]
        # non-decreasing, and clearly up over the range: MediaPipe damps what it re-detects (README, Known limits)
        assert au12[0] <= au12[1] <= au12[2] and au12[2] - au12[0] > 0.05, (identity, au12)


def test_identities_share_eye_position_and_scale(built):
    t = Template()
    for identity in ("astronaut", "grace_hopper"):
        with Image.open(built.out / "images" / f"{identity}_happy_0.00_warp.png") as img:
            face = analyze_faces(np.asarray(img))[0]
        irises = face.landmarks[[468, 473], :2]
        mid, ipd = irises.mean(0) / SIZE, np.linalg.norm(irises[1] - irises[0]) / SIZE
        assert np.allclose(mid, (t.eye_x, t.eye_y), atol=0.02), (identity, mid)
        assert abs(ipd - t.ipd) < 0.1 * t.ipd, (identity, ipd)


def test_contact_sheet_has_a_cell_per_identity_and_column(built):
    layout = SheetLayout()
    with Image.open(built.sheet) as sheet:
        assert sheet.size == sheet_size(2, 9, layout) == (layout.label_width + 9 * layout.cell,
                                                          layout.header_height + 2 * layout.cell)


def test_study_page_exports_the_real_output(built, tmp_path):
    index = export_study(built.out, tmp_path / "study", seed=3)
    assert index.is_file()
    study = load_study(tmp_path / "study")
    assert len(study["items"]) == 18 and len(study["trials"]) == 18


# Reproducibility -----------------------------------------------------------------------------------------------------
def test_the_same_inputs_give_the_same_bytes(built, inputs, tmp_path):
    again = build_stimuli(config(inputs, tmp_path / "stimuli"))
    assert_same_folder(built.out, again.out)


def test_resume_after_an_interruption_matches_a_clean_run(built, inputs, tmp_path):
    k = random.Random(os.getpid()).randint(2, 15)

    def stop_after_k(done, total):
        if done == k:
            raise Interrupted

    out = tmp_path / "stimuli"
    with pytest.raises(Interrupted):
        build_stimuli(config(inputs, out), progress=stop_after_k)
    assert len(list((out / "images").iterdir())) == k == len(read_manifest(out / "manifest.csv")), k
    # what a hard kill can leave besides: a temp file, a file without a row, an altered file, a row cut short
    (out / "images" / "grace_hopper_smile_0.50_warp.png.part").write_bytes(b"\x89PNG")
    Image.new("RGB", (SIZE, SIZE)).save(out / "images" / "grace_hopper_surprise_1.00_warp.png")
    first = sorted((out / "images").glob("astronaut_*"))[0]
    first.write_bytes(first.read_bytes()[:-10])
    with open(out / "manifest.csv", "a") as f:
        f.write("astronaut_surprise_1.00_warp.png,astronaut,surpr")
    resumed = build_stimuli(config(inputs, out))
    assert (resumed.reused, resumed.rendered, resumed.dropped) == (k - 1, 18 - (k - 1), 1), k
    assert_same_folder(built.out, out)


def test_resuming_with_other_code_refuses_to_mix_two_engines(built, inputs, tmp_path, monkeypatch):
    """A build resumed after AUFX's code changed (a new release, an edited preset file) would put two engines'
    stimuli in one set under one version string: it stops and says so, and the folder is left as it was."""
    out = tmp_path / "stimuli"
    shutil.copytree(built.out, out)
    before = files(out)
    monkeypatch.setattr("aufx.study.stimulus_config.code_digest", lambda: "0" * 12)
    with pytest.raises(StudyError, match=r"other settings \(aufx_code differ\)"):
        build_stimuli(config(inputs, out))
    assert files(out) == before


def test_resume_after_the_process_is_killed(built, inputs, tmp_path):
    out = tmp_path / "stimuli"
    cmd = [sys.executable, "-m", "aufx", "stimuli", "--identities", str(inputs / "faces"), "--conditions",
           str(inputs / "conditions.yaml"), "--out", str(out), "--size", str(SIZE), "--zip"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest, deadline = out / "manifest.csv", time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and manifest.read_text().count("\n") >= 4:  # header + 3 rows
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main(cmd[4:]) == 1  # resumes; exit 1: an identity was skipped
    assert_same_folder(built.out, out)


# Errors --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("conditions: []", "non-empty list"),
    ("conditions: [{name: a, preset: happy}]\ncolour: red", "unknown key(s) colour"),
    ("conditions: [{name: a, aus: 'AU12:1.5'}]", "condition 'a': 'AU12:1.5'"),
    ("conditions: [{name: a, aus: 'AU99:0.5'}]", "unknown AU 'AU99'"),
    ("conditions: [{name: a, preset: joy}]", "unknown preset 'joy'"),
    ("conditions: [{name: a}]", "condition 'a': give a preset"),
    ("conditions: [{name: a b, preset: happy}]", "condition name 'a b': use letters"),
    ("conditions: [{name: a, preset: happy, colour: red}]", "condition 'a': unknown key(s) colour"),
    ("conditions: [{name: a, preset: happy}]\nintensities: 0.5", "must be lists"),
    ("conditions: [{name: a, preset: happy}, {name: a, preset: sad}]", "more than once: a"),
    ("conditions: [{name: a, preset: happy}]\nintensities: [0, 2]", "not allowed: [2]"),
    ("conditions: [{name: a, preset: happy}]\nintensities: [0.501, 0.502]", "first two decimals"),
    ("conditions: [{name: a, preset: happy}]\nengines: [gan]", "engines must be a list of distinct engines"),
    ("conditions: [{name: a, preset: happy}]\nbase: zero", "base must be"),
])
def test_conditions_errors_name_the_problem(text, message, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(StudyError) as exc:
        load_conditions(path)
    assert message in str(exc.value)


def test_conditions_file_errors(tmp_path):
    with pytest.raises(StudyError, match="cannot read"):
        load_conditions(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("conditions:\n  - {name: a\n")
    with pytest.raises(StudyError, match=r"bad.yaml line \d+: not valid YAML"):
        load_conditions(tmp_path / "bad.yaml")


def test_measured_base_moves_only_the_condition_aus_from_the_photo():
    from aufx.study.conditions import target_for

    cset = parse_conditions({"conditions": [{"name": "s", "aus": {"AU12": 1.0}}], "base": "measured"})
    measured = AUVector({"AU12": 0.2, "AU04": 0.3})
    assert target_for(measured, cset.conditions[0], 0.0, cset.base) == measured
    half = target_for(measured, cset.conditions[0], 0.5, cset.base).as_dict()
    assert half == pytest.approx(AUVector({"AU12": 0.6, "AU04": 0.3}).as_dict())


def test_identity_distance_without_a_backend_gives_a_reason_not_a_number():
    from aufx.study.identity_distance import IdentityMeter

    assert not IdentityMeter(None).available and IdentityMeter(None).reason == "not requested"
    missing = IdentityMeter("no_such_backend")
    assert not missing.available and "no_such_backend" in missing.reason


def test_folder_and_option_errors(built, inputs, tmp_path):
    with pytest.raises(StudyError, match="use --mask none with --background keep"):
        config(inputs, tmp_path / "x", background="keep")
    with pytest.raises(StudyError, match="background must be"):
        config(inputs, tmp_path / "x", background="#12345")
    with pytest.raises(StudyError, match=r"other settings \(size differ\)"):
        build_stimuli(config(inputs, built.out, size=SIZE + 2))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(StudyError, match="not a stimulus folder"):
        build_stimuli(config(inputs, tmp_path / "foreign"))
    assert main(["--identities", str(inputs / "faces"), "--conditions", str(tmp_path / "none.yaml"), "--out",
                 str(tmp_path / "y")]) == 2
