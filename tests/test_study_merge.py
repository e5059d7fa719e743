"""Merging response CSVs with the manifest: summary numbers on known answers, and loud errors for responses that do
not belong to the manifest. (The page's real CSV output is merged in test_study_page.py.)"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aufx.model.presets import EMOTIONS
from aufx.study import StudyError, merge_responses, read_manifest, read_responses, summarize
from aufx.study.merge import main
from study_fixtures import make_stimuli

IDENT_COLUMNS = ["participant", "task", "trial", "file", "identity", "condition", "intensity", "engine", "response",
                 "correct", "rt_ms"]


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory) -> Path:
    return make_stimuli(tmp_path_factory.mktemp("stimuli")) / "manifest.csv"


def write_responses(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=IDENT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def answers(manifest_path: Path, participant: str, answer) -> list[dict]:
    """One identification response per manifest row, answered by ``answer(condition, intensity)``."""
    rows = []
    for n, r in enumerate(read_manifest(manifest_path).itertuples(), 1):
        response = answer(r.condition, r.intensity)
        truth = r.condition if r.condition in EMOTIONS else None
        rows.append({"participant": participant, "task": "identification", "trial": n, "file": r.file,
                     "identity": r.identity, "condition": r.condition, "intensity": r.intensity,
                     "engine": r.engine, "response": response, "correct": "" if truth is None else
                     int(response == truth), "rt_ms": 500 + n})
    return rows


def test_summary_on_known_answers(manifest_path, tmp_path):
    # P1 is always right except on weak (0.5) sad faces, which they call neutral; P2 answers "fear" to everything.
    p1 = write_responses(tmp_path / "p1.csv", answers(
        manifest_path, "P1", lambda c, i: "neutral" if (c, i) == ("sad", 0.5) else c if c in EMOTIONS else "happy"))
    p2 = write_responses(tmp_path / "p2.csv", answers(manifest_path, "P2", lambda c, i: "fear"))
    analysis = merge_responses(read_manifest(manifest_path), read_responses([p1, p2]))
    assert len(analysis) == 28 and set(analysis["source"]) == {"p1.csv", "p2.csv"}
    assert analysis.loc[analysis["condition"] == "smirk", "correct"].isna().all()

    tables = summarize(analysis)
    by_ci = tables["accuracy_by_condition_intensity"].set_index(["condition", "intensity"])
    assert by_ci.at[("sad", 0.5), "accuracy"] == 0.0 and by_ci.at[("sad", 1.0), "accuracy"] == 0.5
    assert by_ci.at[("happy", 1.0), "n"] == 8 and by_ci.at[("happy", 1.0), "accuracy"] == 0.5
    by_p = tables["accuracy_by_participant"].set_index("participant")
    assert by_p.at["P1", "accuracy"] == pytest.approx(10 / 12) and by_p.at["P2", "accuracy"] == 0.0
    confusion = tables["confusion"].set_index("condition")
    assert list(confusion.index) == ["neutral", "happy", "sad", "smirk"]
    assert confusion.at["sad", "neutral"] == 2 and confusion.at["sad", "fear"] == 4
    assert confusion.at["smirk", "happy"] == 2 and confusion.at["smirk", "fear"] == 2
    assert confusion["fear"].sum() == 14 and confusion.to_numpy().sum() == 28


def test_unknown_files_are_reported_not_dropped(manifest_path, tmp_path):
    rows = answers(manifest_path, "P1", lambda c, i: "happy")
    rows[2]["file"] = "astronaut_joy_1.0_warp.png"
    rows[5]["file"] = "old/hopper.png"
    path = write_responses(tmp_path / "p1.csv", rows)
    with pytest.raises(StudyError) as err:
        merge_responses(read_manifest(manifest_path), read_responses([path]))
    message = str(err.value)
    assert "2 response row(s)" in message
    assert "p1.csv line 4: file 'astronaut_joy_1.0_warp.png' is not in the manifest" in message
    assert "p1.csv line 7: file 'old/hopper.png' is not in the manifest" in message


@pytest.mark.parametrize("edit, expected", [
    (lambda rows: rows[0].update(condition="sad"), "line 2: condition 'sad' but the manifest says 'neutral'"),
    (lambda rows: rows[1].update(intensity="0.7"), "line 3: intensity '0.7' but the manifest says 0.5"),
    (lambda rows: rows[1].update(response="joy"), "line 3: response 'joy' is not one of neutral, happy"),
    (lambda rows: rows[1].update(correct="0"), "line 3: the page scored correct='0', the manifest gives '1'"),
    (lambda rows: rows[3].update(trial="1"), "participant 'P1' trial 1 appears more than once"),
    (lambda rows: rows[3].update(rt_ms="fast"), "line 5: rt_ms 'fast' is not a number"),
])
def test_responses_that_contradict_the_manifest_are_errors(manifest_path, tmp_path, edit, expected):
    rows = answers(manifest_path, "P1", lambda c, i: "happy")
    edit(rows)
    path = write_responses(tmp_path / "p1.csv", rows)
    with pytest.raises(StudyError, match="do not match the manifest") as err:
        merge_responses(read_manifest(manifest_path), read_responses([path]))
    assert expected in str(err.value)


def test_response_files_that_cannot_be_merged(manifest_path, tmp_path):
    ident = write_responses(tmp_path / "ident.csv", answers(manifest_path, "P1", lambda c, i: "happy"))
    pair = tmp_path / "pair.csv"
    pd.DataFrame([{"participant": "P2", "task": "pairwise", "trial": 1, "compare": "intensity",
                   "file_left": "a.png", "file_right": "b.png", "response": "left", "rt_ms": 1}]).to_csv(pair)
    with pytest.raises(StudyError, match="mix tasks"):
        read_responses([ident, pair])
    with pytest.raises(StudyError, match="twice"):
        merge_responses(read_manifest(manifest_path), read_responses([ident, ident]))
    broken = tmp_path / "broken.csv"
    pd.read_csv(ident).drop(columns=["rt_ms"]).to_csv(broken, index=False)
    with pytest.raises(StudyError, match="broken.csv: missing column.*rt_ms"):
        read_responses([broken])


def test_cli_writes_analysis_summary_and_tables(manifest_path, tmp_path, capsys):
    p1 = write_responses(tmp_path / "p1.csv", answers(manifest_path, "P1", lambda c, i: c if c != "smirk" else "sad"))
    out = tmp_path / "out" / "analysis.csv"
    code = main(["--manifest", str(manifest_path), "--responses", str(p1), "--out", str(out),
                 "--summary", str(tmp_path / "summary.json"), "--tables", str(tmp_path / "tables")])
    assert code == 0 and "14 responses from 1 participant(s)" in capsys.readouterr().out
    analysis = pd.read_csv(out)
    assert len(analysis) == 14 and {"target_aus", "sha256", "correct", "rt_ms"} <= set(analysis.columns)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["participants"] == ["P1"] and summary["n_responses"] == 14
    assert {r["condition"]: r["accuracy"] for r in summary["tables"]["accuracy_by_condition"]} == {
        "happy": 1.0, "neutral": 1.0, "sad": 1.0}
    confusion = pd.read_csv(tmp_path / "tables" / "confusion.csv", index_col="condition")
    assert list(confusion.columns) == list(EMOTIONS) and confusion.at["smirk", "sad"] == 2

    rows = answers(manifest_path, "P1", lambda c, i: "happy")
    rows[0]["file"] = "missing.png"
    bad = write_responses(tmp_path / "bad.csv", rows)
    assert main(["--manifest", str(manifest_path), "--responses", str(bad), "--out", str(out)]) == 2
    assert "bad.csv line 2: file 'missing.png' is not in the manifest" in capsys.readouterr().err


def test_runs_as_a_module(manifest_path, tmp_path):
    p1 = write_responses(tmp_path / "p1.csv", answers(manifest_path, "P1", lambda c, i: "neutral"))
    done = subprocess.run([sys.executable, "-W", "error", "-m", "aufx.study.merge", "--manifest", str(manifest_path),
                           "--responses", str(p1), "--out", str(tmp_path / "a.csv")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.csv").is_file()
