"""The stimulus manifest written by the stimulus builder: its columns, and the checks every reader of it needs.

Both the study page (which shows the images) and the merge (which joins responses back) start from this table, so a
broken manifest fails here, once, with a message that names the line.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

MANIFEST_COLUMNS = ("file", "identity", "condition", "intensity", "engine", "target_aus", "measured_aus",
                    "identity_distance", "seed", "params", "aufx_version", "aufx_code", "sha256")
# The design columns a study needs; the other columns are carried into the analysis table untouched.
DESIGN_COLUMNS = ("identity", "condition", "intensity", "engine")
REQUIRED_COLUMNS = ("file",) + DESIGN_COLUMNS


class StudyError(ValueError):
    """A stimulus folder, study option or response file that cannot be used; the message says where and why."""


def _line(index: int) -> int:
    """CSV line of a data row (line 1 is the header)."""
    return index + 2


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read ``manifest.csv`` as text (so identities like "NA" or "001" survive), with ``intensity`` as float."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"no manifest at {path}: a stimulus folder holds manifest.csv and images/")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path.name}: not a readable CSV file ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise StudyError(f"{path.name}: missing column(s) {', '.join(missing)}; "
                         f"a manifest has the columns {','.join(MANIFEST_COLUMNS)}")
    if df.empty:
        raise StudyError(f"{path.name}: the manifest lists no images")
    empty_file = df.index[df["file"].str.strip() == ""]
    if len(empty_file):
        raise StudyError(f"{path.name} line {_line(empty_file[0])}: empty 'file'")
    dup = df["file"][df["file"].duplicated()]
    if len(dup):
        raise StudyError(f"{path.name}: file(s) listed more than once: {', '.join(sorted(set(dup)))}")
    df["intensity"] = [_intensity(path.name, i, raw) for i, raw in zip(df.index, df["intensity"])]
    return df


def _intensity(name: str, index: int, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise StudyError(f"{name} line {_line(index)}: intensity must be a number in [0, 1], got {raw!r}")
    return value
