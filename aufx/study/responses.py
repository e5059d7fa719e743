"""Read response CSVs from the study page and join them with the stimulus manifest: one analysis row per response.

Responses that do not fit the manifest (unknown files, changed conditions, the same trial twice) stop the merge with
a list of every such row: dropping them quietly would bias the accuracies without anyone noticing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from aufx.model.presets import EMOTIONS
from aufx.study.design import PAIR_BY, TASKS, expected_category, expects_higher
from aufx.study.manifest import DESIGN_COLUMNS, StudyError

RESPONSE_COLUMNS = {
    "identification": ("participant", "task", "trial", "file", "response", "rt_ms"),
    "pairwise": ("participant", "task", "trial", "compare", "file_left", "file_right", "response", "rt_ms"),
}
MAX_LISTED = 20


def read_responses(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate response CSVs (all of one task), with ``source`` naming the file each row came from."""
    frames = []
    for path in map(Path, paths):
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise StudyError(f"no response file at {path}") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise StudyError(f"{path.name}: not a readable CSV file ({exc})") from None
        tasks = sorted(set(df.get("task", pd.Series(dtype=str))))
        if len(tasks) != 1 or tasks[0] not in TASKS:
            raise StudyError(f"{path.name}: expected one 'task' column with {' or '.join(TASKS)} in every row, "
                             f"found {tasks or 'no rows/column'}")
        missing = [c for c in RESPONSE_COLUMNS[tasks[0]] if c not in df.columns]
        if missing:
            raise StudyError(f"{path.name}: missing column(s) {', '.join(missing)} for a {tasks[0]} response file")
        df.insert(0, "source", path.name)
        df["source_line"] = df.index + 2
        frames.append(df)
    if not frames:
        raise StudyError("no response files given")
    responses = pd.concat(frames, ignore_index=True)
    tasks = sorted(set(responses["task"]))
    if len(tasks) > 1:
        raise StudyError(f"the response files mix tasks ({', '.join(tasks)}); merge each task separately")
    return responses


def merge_responses(manifest: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """One row per response with the manifest columns (pairwise: suffixed _left/_right) and ``correct`` re-scored
    from the manifest; raises StudyError listing every response row that does not match the manifest."""
    task = responses["task"].iloc[0]
    _raise_if(_check_responses(manifest, responses, task))
    derived = list(_carried(task)) + ["correct", "chosen_file", "source_line"]
    own = responses.drop(columns=derived, errors="ignore")
    own = own.astype({c: t for c, t in (("trial", int), ("repeat", int), ("rt_ms", float)) if c in own.columns})
    if task == "identification":
        merged = own.merge(manifest, on="file", how="left", validate="many_to_one", suffixes=("_response", ""))
        expected = merged["condition"].map(expected_category)
        merged["correct"] = _score(merged["response"] == expected, expected.notna())
    else:
        left = manifest.add_suffix("_left")
        right = manifest.add_suffix("_right")
        merged = own.merge(left, on="file_left", how="left").merge(right, on="file_right", how="left")
        chose_left = merged["response"] == "left"
        merged["chosen_file"] = np.where(chose_left, merged["file_left"], merged["file_right"])
        higher = np.where(chose_left, merged["intensity_left"] > merged["intensity_right"],
                          merged["intensity_right"] > merged["intensity_left"])
        merged["correct"] = _score(pd.Series(higher, index=merged.index), merged["compare"].map(expects_higher))
    if "correct" in responses.columns:
        _raise_if(_check_scores(responses, merged["correct"]))
    columns = list(merged.columns)
    columns.insert(columns.index("response") + 1, columns.pop(columns.index("correct")))
    return merged[columns]


def _raise_if(problems: list[str]) -> None:
    if problems:
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise StudyError(f"{len(problems)} response row(s) do not match the manifest:\n  " +
                         "\n  ".join(problems[:MAX_LISTED]) + more)


def _check_scores(responses: pd.DataFrame, correct: pd.Series) -> list[str]:
    """The page scored each trial from the study data; a different score from the manifest means the responses
    belong to another version of the stimulus set."""
    rescored = correct.astype("string").fillna("").to_numpy()
    differs = responses["correct"].to_numpy() != rescored
    rows = responses[differs]
    return [f"{src} line {line}: the page scored correct={got!r}, the manifest gives {want!r}"
            for src, line, got, want in zip(rows["source"], rows["source_line"], rows["correct"], rescored[differs])]


def _score(hit: pd.Series, scored: pd.Series) -> pd.Series:
    """1/0 where the trial has a right answer, missing where it has none."""
    return hit.astype("Int64").where(scored.astype(bool), pd.NA)


def _carried(task: str) -> dict[str, tuple[str, str]]:
    """Response columns copied from the manifest by the page -> (file column, manifest column) they must match."""
    if task == "identification":
        return {c: ("file", c) for c in DESIGN_COLUMNS}
    carried = {"identity": ("file_left", "identity")}
    for side in ("left", "right"):
        carried.update({f"{c}_{side}": (f"file_{side}", c) for c in DESIGN_COLUMNS if c != "identity"})
    return carried


def _check_responses(manifest: pd.DataFrame, responses: pd.DataFrame, task: str) -> list[str]:
    """Every reason a response row cannot be merged, as "file line N: why"."""
    problems = []
    by_file = manifest.set_index("file")
    where = responses["source"] + " line " + responses["source_line"].astype(str) + ": "
    file_columns = ["file"] if task == "identification" else ["file_left", "file_right"]
    known = pd.Series(True, index=responses.index)
    for col in file_columns:
        unknown = ~responses[col].isin(by_file.index)
        known &= ~unknown
        problems += list(where[unknown] + f"{col} " + responses.loc[unknown, col].map(repr) + " is not in the manifest")
    valid = ("left", "right") if task == "pairwise" else EMOTIONS
    bad = ~responses["response"].isin(valid)
    problems += list(where[bad] + "response " + responses.loc[bad, "response"].map(repr) +
                     f" is not one of {', '.join(valid)}")
    if task == "pairwise":
        bad = ~responses["compare"].isin(PAIR_BY)
        problems += list(where[bad] + "compare " + responses.loc[bad, "compare"].map(repr) +
                         f" is not one of {', '.join(PAIR_BY)}")
    for col in ("trial", "repeat"):
        if col in responses.columns:
            bad = ~responses[col].str.fullmatch(r"\d+")
            problems += list(where[bad] + f"{col} " + responses.loc[bad, col].map(repr) + " is not a whole number")
    bad = pd.to_numeric(responses["rt_ms"], errors="coerce").isna()
    problems += list(where[bad] + "rt_ms " + responses.loc[bad, "rt_ms"].map(repr) + " is not a number")
    dup = responses.duplicated(["participant", "trial"], keep=False)
    problems += list(where[dup] + "participant " + responses.loc[dup, "participant"].map(repr) + " trial " +
                     responses.loc[dup, "trial"] + " appears more than once (the same file given twice?)")
    for col, (file_col, manifest_col) in _carried(task).items():
        if col not in responses.columns:
            continue
        rows = responses[known]
        truth = by_file.loc[rows[file_col], manifest_col].to_numpy()
        if manifest_col == "intensity":
            differs = ~np.isclose(pd.to_numeric(rows[col], errors="coerce").to_numpy(), truth.astype(float))
        else:
            differs = rows[col].to_numpy() != truth
        problems += [f"{w}{col} {got!r} but the manifest says {want!r} for {f}"
                     for w, got, want, f in zip(where[known][differs], rows[col][differs], truth[differs].tolist(),
                                                rows[file_col][differs])]
    return problems
