"""Summary tables of a merged study: accuracies, the confusion matrix, pairwise preferences and side bias.

Accuracies count only trials with a right answer (an emotion category shown, or an intensity pair); user-defined
conditions still appear in the confusion matrix, as response distributions.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from aufx.model.presets import EMOTIONS


def summarize(analysis: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tables by name, for a merged table of one task (see aufx.study.merge.merge_responses)."""
    if analysis["task"].iloc[0] == "identification":
        return {
            "accuracy_by_condition": accuracy(analysis, ["condition"]),
            "accuracy_by_condition_intensity": accuracy(analysis, ["condition", "intensity"]),
            "accuracy_by_participant": accuracy(analysis, ["participant"]),
            "confusion": confusion(analysis),
        }
    pairs = analysis.rename(columns={"condition_left": "condition"})
    return {
        "accuracy_by_condition": accuracy(pairs, ["condition"]),
        "accuracy_by_participant": accuracy(pairs, ["participant"]),
        "preference": preference(analysis),
        "side_bias": side_bias(analysis),
    }


def accuracy(analysis: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """n scored trials, n correct, accuracy and median response time per group."""
    scored = analysis[analysis["correct"].notna()]
    table = scored.groupby(by, sort=True).agg(n=("correct", "size"), n_correct=("correct", "sum"),
                                              median_rt_ms=("rt_ms", "median"))
    table["accuracy"] = table["n_correct"] / table["n"]
    return table[["n", "n_correct", "accuracy", "median_rt_ms"]].reset_index()


def confusion(analysis: pd.DataFrame) -> pd.DataFrame:
    """Counts of each response category (columns, all 8) per shown condition (rows: categories first)."""
    table = pd.crosstab(analysis["condition"], analysis["response"]).reindex(columns=list(EMOTIONS), fill_value=0)
    present = list(table.index)
    order = [c for c in EMOTIONS if c in present] + sorted(c for c in present if c not in EMOTIONS)
    table = table.loc[order]
    table.columns.name = None
    return table.reset_index()


def preference(analysis: pd.DataFrame) -> pd.DataFrame:
    """How often each value of the compared column (an engine, an intensity, ...) was chosen when shown."""
    rows = []
    for compare, group in analysis.groupby("compare", sort=True):
        left, right = group[f"{compare}_left"], group[f"{compare}_right"]
        chosen = pd.Series(np.where(group["response"] == "left", left, right), index=group.index)
        shown = pd.concat([left, right]).value_counts()
        wins = chosen.value_counts().reindex(shown.index, fill_value=0)
        for value in sorted(shown.index):
            rows.append({"compare": compare, "value": value, "shown": int(shown[value]), "chosen": int(wins[value]),
                         "choice_rate": wins[value] / shown[value]})
    return pd.DataFrame(rows, columns=["compare", "value", "shown", "chosen", "choice_rate"])


def side_bias(analysis: pd.DataFrame) -> pd.DataFrame:
    """Share of "left" answers per participant; far from 0.5 flags a participant who answered by position."""
    return (analysis.assign(left=analysis["response"] == "left").groupby("participant", sort=True)
            .agg(n=("left", "size"), left_rate=("left", "mean")).reset_index())


def to_json(analysis: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> dict:
    """The summary as plain JSON data (missing values as null)."""
    return {
        "task": analysis["task"].iloc[0],
        "n_responses": len(analysis),
        "participants": sorted(analysis["participant"].unique().tolist()),
        "tables": {name: json.loads(table.to_json(orient="records")) for name, table in tables.items()},
    }
