"""Command line: merge study-page response CSVs with the stimulus manifest and write the analysis files.

    python -m aufx.study.merge --manifest stimuli/manifest.csv --responses p01.csv p02.csv --out analysis.csv \
        [--summary summary.json] [--tables tables/]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from aufx.study.analysis import summarize, to_json
from aufx.study.manifest import StudyError, read_manifest
from aufx.study.responses import merge_responses, read_responses


def write_outputs(analysis: pd.DataFrame, tables: dict[str, pd.DataFrame], out: Path, summary: Path | None,
                  tables_dir: Path | None) -> None:
    """The analysis CSV, plus the summary as JSON and/or one CSV per table when asked for."""
    out.parent.mkdir(parents=True, exist_ok=True)
    analysis.to_csv(out, index=False)
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps(to_json(analysis, tables), indent=2) + "\n")
    if tables_dir is not None:
        tables_dir.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            table.to_csv(tables_dir / f"{name}.csv", index=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aufx.study.merge",
                                     description="Merge study-page response CSVs with the stimulus manifest.")
    parser.add_argument("--manifest", required=True, type=Path, help="manifest.csv of the stimulus folder")
    parser.add_argument("--responses", required=True, nargs="+", type=Path, help="response CSVs from the study page")
    parser.add_argument("--out", required=True, type=Path, help="analysis CSV: one row per response")
    parser.add_argument("--summary", type=Path, help="JSON with accuracies, confusion matrix and counts")
    parser.add_argument("--tables", type=Path, help="folder for the summary tables as CSV files")
    args = parser.parse_args(argv)
    try:
        analysis = merge_responses(read_manifest(args.manifest), read_responses(args.responses))
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tables = summarize(analysis)
    write_outputs(analysis, tables, args.out, args.summary, args.tables)
    participants = analysis["participant"].nunique()
    print(f"{len(analysis)} responses from {participants} participant(s) -> {args.out}")
    for name, table in tables.items():
        print(f"\n{name}:\n" + (table.to_string(index=False) if len(table) else "(no trials with a right answer)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
