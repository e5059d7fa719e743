"""The Evaluate and Study tabs driven through gradio_client, as a script would: /evaluate on edits made by the CLI
(folders on the server, and the same set uploaded), /metric_status, then /build_stimuli -> /export_study ->
/merge_responses in one session on two real faces."""
from __future__ import annotations

import csv
import io
import json
import shutil
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app_fixtures import astronaut, grace_hopper
from aufx.au import AUVector, parse_au_text
from aufx.cli import main as aufx_cli
from aufx.study.sheet import sheet_size
from aufx.study.stimulus_config import SheetLayout
from aufx.evaluation import backends
from aufx.evaluation.config import METRICS
from aufx.evaluation.instruments import AUFX_ESTIMATOR, OPENFACE_RUN, label

CONDITIONS_YAML = """base: neutral
engines: [warp]
conditions:
  - {name: happy, preset: happy}
  - {name: sad, preset: sad}
"""
REPORT = "aufx_evaluation"


def client(app, folder: Path) -> Client:
    return Client(app.url, verbose=False, analytics_enabled=False, download_files=str(folder))


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("faces")
    return [astronaut(folder), Path(shutil.copy(grace_hopper(), folder / "grace_hopper.jpg"))]


@pytest.fixture(scope="module")
def edits(faces, tmp_path_factory) -> Path:
    """`python -m aufx edit` outputs with their sidecars: the astronaut made happy, Grace Hopper sad."""
    gens = tmp_path_factory.mktemp("gens")
    for face, preset in zip(faces, ("happy", "sad")):
        out = gens / f"{face.stem}__{preset}.png"
        assert aufx_cli(["edit", "--input", str(face), "--preset", preset, "--output", str(out)]) == 0
    return gens


def _report(path: str) -> tuple[set[str], dict]:
    with zipfile.ZipFile(path) as zf:
        return set(zf.namelist()), json.loads(zf.read(f"{REPORT}/metrics.json"))


def _row(table: dict) -> dict[str, str]:
    assert len(table["data"]) == 1
    return dict(zip(table["headers"], table["data"][0]))


# Evaluate ------------------------------------------------------------------------------------------------------------
def test_evaluate_shows_the_numbers_it_wrote(app, faces, edits, tmp_path):
    table, gallery, report, status = client(app, tmp_path).predict(
        str(faces[0].parent), None, str(edits), None, "", "", list(METRICS), api_name="/evaluate")
    names, result = _report(report)
    s = result["summary"]
    assert s["n_images"] == 2 and result["unpaired"] == [] and "2 image pairs scored" in status
    assert {r["target_from"] for r in result["per_image"]} == {"sidecar"}
    assert sorted(r["intended"] for r in result["per_image"]) == ["happy", "sad"]

    row = _row(table)
    au = f"({label(result['instruments']['au'])})"  # the AUFX estimator, self-referential, unless OPENFACE_BIN is set
    assert result["instruments"]["au"]["instrument"] in status
    assert list(row)[:3] == [f"AU MAE ↓ {au}", f"AU RMSE ↓ {au}", "Identity cos ↑ (dlib ResNet descriptor)"]
    order = [next(i for i, h in enumerate(row) if h.startswith(p)) for p in ("AU", "Identity", "LPIPS", "PSNR",
                                                                             "SSIM", "Emotion acc")]
    assert order == sorted(order)
    assert row[f"AU MAE ↓ {au}"] == f"{s['au']['mae']:.3f}" and row[f"AU RMSE ↓ {au}"] == f"{s['au']['rmse']:.3f}"
    assert row["Identity cos ↑ (dlib ResNet descriptor)"] == (f"{s['identity']['cosine']['mean']:.3f} ± "
                                                             f"{s['identity']['cosine']['std']:.3f}")
    assert s["identity"]["cosine"]["mean"] > 0.9  # expression edits keep the person
    for key, name in (("psnr", "PSNR"), ("ssim", "SSIM")):
        assert row[f"{name} ↑"] == f"{s[key]['image']['mean']:.3f} ± {s[key]['image']['std']:.3f}"
        assert row[f"{name} face ↑"] == f"{s[key]['face']['mean']:.3f} ± {s[key]['face']['std']:.3f}"
    assert row["Emotion acc ↑ (FER2013 mini-Xception)"] == f"{s['emotion']['fer']['accuracy']:.3f}"
    lpips = result["metrics"]["lpips"]
    if lpips["status"] == "ok":
        assert row["LPIPS ↓"] == f"{s['lpips']['mean']:.3f} ± {s['lpips']['std']:.3f}"
    else:  # reported with its reason, never as a number
        assert row["LPIPS ↓"] == "n/a" and f"lpips: unavailable ({lpips['reason']})" in status

    assert {f"{REPORT}/metrics.json", f"{REPORT}/report.html"} <= names
    pngs = sorted(n for n in names if n.endswith(".png"))
    captions = [g["caption"] for g in gallery]
    assert captions == ["Per-AU error", "Target vs measured, per AU", "Identity",
                        "Emotion confusion (FER2013 mini-Xception)"]
    assert len(pngs) == 4 and all(Image.open(g["image"]).size[0] > 200 for g in gallery)


def test_evaluate_uploaded_sets_pair_by_name(app, faces, edits, tmp_path):
    """Uploaded outputs whose sidecars name a source path this server lacks are paired with the uploaded
    references by file name; the numbers equal those of the same set read from folders."""
    moved = tmp_path / "outputs"
    shutil.copytree(edits, moved)
    for sidecar in moved.glob("*.json"):
        meta = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**meta, "input": f"/elsewhere/{Path(meta['input']).name}"}))
    archive = shutil.make_archive(str(tmp_path / "outputs"), "zip", tmp_path, "outputs")
    c = client(app, tmp_path / "downloads")
    metrics = ["psnr", "ssim"]
    uploaded = c.predict("", [handle_file(str(f)) for f in faces], "", [handle_file(archive)], "", "", metrics,
                         api_name="/evaluate")
    from_folders = c.predict(str(faces[0].parent), None, str(edits), None, "", "", metrics, api_name="/evaluate")
    _, result = _report(uploaded[2])
    assert result["summary"]["n_images"] == 2 and result["unpaired"] == []
    assert {Path(r["source"]).name for r in result["per_image"]} == {f.name for f in faces}
    assert _row(uploaded[0]) == _row(from_folders[0])
    with pytest.raises(AppError, match="give a folder path or an upload, not both"):
        c.predict("", None, str(edits), [handle_file(archive)], "", "", metrics, api_name="/evaluate")


def test_metric_status_gives_the_backends_reasons(app, tmp_path):
    table = client(app, tmp_path).predict(api_name="/metric_status")
    rows = {r[0]: dict(zip(table["headers"], r)) for r in table["data"]}
    assert set(rows) == {"au", "identity", "lpips", "psnr", "ssim", "emotion:fer"}
    for metric in ("identity", "lpips", "emotion:fer"):
        truth = backends.status(rows[metric]["backend"])
        assert rows[metric]["status"] == truth["status"]
        assert rows[metric]["note"] == truth.get("reason", "")
        assert rows[metric]["instrument"] == truth["instrument"]
    assert rows["au"]["instrument"] in (f"{AUFX_ESTIMATOR}, self-referential", OPENFACE_RUN)


# Study ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study(app, faces, tmp_path_factory):
    """One session that built 2 faces x 2 conditions x 2 intensities; the export and merge use its last build."""
    c = client(app, tmp_path_factory.mktemp("study"))
    job = c.submit(None, [handle_file(str(f)) for f in faces], CONDITIONS_YAML, "0.5, 1", "standard", 256, "oval",
                   "gray", 3, True, True, api_name="/build_stimuli")
    progress = set()
    while not job.done():  # the page's progress bar: (stimuli done, total) while the set renders
        progress.update((p.index, p.length, p.desc) for p in job.status().progress_data or [])
        time.sleep(0.02)
    return c, job.result(), progress


def test_build_stimuli(study):
    _, (sheet, manifest, archive, status), progress = study
    assert progress and all(total == 8 and desc == "Rendering stimuli" for _, total, desc in progress)
    rows = pd.DataFrame(manifest["data"], columns=manifest["headers"])
    cells = Counter(zip(rows["identity"], rows["condition"], rows["intensity"].astype(float)))
    assert len(rows) == 8 and set(cells.values()) == {1}
    assert {i for i, _, _ in cells} == {"astronaut", "grace_hopper"} and {c for _, c, _ in cells} == {"happy", "sad"}
    assert {v for _, _, v in cells} == {0.5, 1.0}
    smile = {(i, c, v): AUVector(parse_au_text(t)).au("AU12")  # measured on every output
             for i, c, v, t in zip(rows["identity"], rows["condition"], rows["intensity"].astype(float),
                                   rows["measured_aus"])}
    assert all(smile[(i, "happy", 1.0)] > smile[(i, "sad", 1.0)] for i in ("astronaut", "grace_hopper"))
    assert (rows["identity_distance"].astype(float) < 0.6).all()  # dlib: same person below 0.6
    assert "8 of 8 stimuli" in status

    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        images = [n for n in names if n.startswith("images/")]
        assert sorted(images) == sorted(f"images/{f}" for f in rows["file"])
        assert {"manifest.csv", "build.json", "contact_sheet.png"} <= set(names)
        assert Image.open(io.BytesIO(zf.read(images[0]))).size == (256, 256)
        zipped_sheet = np.asarray(Image.open(io.BytesIO(zf.read("contact_sheet.png"))).convert("RGB"))
    shown = np.asarray(Image.open(sheet).convert("RGB"))
    layout = SheetLayout()
    assert shown.shape == (*sheet_size(2, 4, layout)[::-1], 3) and np.array_equal(shown, zipped_sheet)
    cell = layout.cell
    for r in range(2):
        for col in range(4):
            y, x = layout.header_height + r * cell, layout.label_width + col * cell
            assert shown[y:y + cell, x:x + cell].std() > 20  # a face in every cell


def test_export_study(study, tmp_path):
    c, (_, manifest, _, _), _ = study
    with zipfile.ZipFile(c.predict("identification", "intensity", 5, "", api_name="/export_study")[0]) as zf:
        names = set(zf.namelist())
        data = json.loads(zf.read("study/study.json"))
    assert {"study/index.html", "study/study_data.js", "study/study.js"} <= names
    assert len([n for n in names if n.startswith("study/images/")]) == 8
    assert data["task"] == "identification" and data["seed"] == 5 and len(data["trials"]) == 8

    pairwise, note = c.predict("pairwise", "intensity", 5, "Which face looks more {condition}?",
                               api_name="/export_study")
    with zipfile.ZipFile(pairwise) as zf:
        data = json.loads(zf.read("study/study.json"))
    assert len(data["trials"]) == 4 and "4 trials" in note  # one 0.5-vs-1 pair per identity and condition
    assert {t["question"] for t in data["trials"]} == {"Which face looks more happy?", "Which face looks more sad?"}


def _responses(path: Path, manifest: dict) -> Path:
    """One participant: every happy face called happy; of the sad faces one called sad, three neutral."""
    rows = pd.DataFrame(manifest["data"], columns=manifest["headers"])
    sad_seen = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["participant", "task", "trial", "file", "response", "rt_ms"])
        for trial, (file, condition) in enumerate(zip(rows["file"], rows["condition"]), 1):
            sad_seen += condition == "sad"
            response = "happy" if condition == "happy" else "sad" if sad_seen == 1 else "neutral"
            writer.writerow(["p01", "identification", trial, file, response, 900 + trial])
    return path


def test_merge_responses(study, tmp_path):
    c, (_, manifest, archive, _), _ = study
    responses = handle_file(str(_responses(tmp_path / "p01.csv", manifest)))
    accuracy, confusion, analysis, files, note = c.predict([responses], None, api_name="/merge_responses")
    acc = {r[0]: dict(zip(accuracy["headers"], r)) for r in accuracy["data"]}
    assert {k: (v["n"], v["n_correct"], v["accuracy"]) for k, v in acc.items()} == {"happy": (4, 4, 1.0),
                                                                                    "sad": (4, 1, 0.25)}
    matrix = {r[0]: dict(zip(confusion["headers"][1:], r[1:])) for r in confusion["data"]}
    assert matrix["happy"]["happy"] == 4 and matrix["sad"]["sad"] == 1 and matrix["sad"]["neutral"] == 3
    assert len(analysis["data"]) == 8 and "8 responses" in note and "of the last build" in note
    written = pd.read_csv(next(f for f in files if f.endswith("analysis.csv")))
    assert len(written) == 8 and written["correct"].sum() == 5

    with zipfile.ZipFile(archive) as zf:
        (tmp_path / "manifest.csv").write_bytes(zf.read("manifest.csv"))
    uploaded = c.predict([responses], handle_file(str(tmp_path / "manifest.csv")), api_name="/merge_responses")
    assert uploaded[0] == accuracy and "manifest uploaded" in uploaded[-1]

    (tmp_path / "stray.csv").write_text("participant,task,trial,file,response,rt_ms\n"
                                        "p02,identification,1,nobody_happy_1.00_warp.png,happy,800\n")
    with pytest.raises(AppError, match="'nobody_happy_1.00_warp.png' is not in the manifest"):
        c.predict([handle_file(str(tmp_path / "stray.csv"))], None, api_name="/merge_responses")


def test_study_steps_before_a_build_say_what_to_do(app, tmp_path):
    with pytest.raises(AppError, match="Build a stimulus set first"):
        client(app, tmp_path).predict("identification", "intensity", 0, "", api_name="/export_study")
