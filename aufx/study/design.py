"""Which trials a study contains and what counts as a correct answer; shared by the page export and the merge.

Only the trial *set* is decided here. The order each participant sees is drawn in the browser (static/plan.js) from
the study seed and the participant code, so that any code typed on the day gets its own reproducible order.
"""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

import pandas as pd

from aufx.model.presets import EMOTIONS, emotion_presets
from aufx.study.manifest import DESIGN_COLUMNS, StudyError

TASKS = ("identification", "pairwise")
PAIR_BY = ("intensity", "engine", "condition")


def categories() -> list[dict[str, str]]:
    """The 8 AffectNet response categories in button order (keys 1-8)."""
    presets = emotion_presets()
    return [{"key": k, "label": presets[k]["label"]} for k in EMOTIONS]


def expected_category(condition: str) -> str | None:
    """The correct identification answer: the condition itself when it is one of the 8 categories, else none
    (a user-defined condition such as "AU12 only" has no right answer, only a response distribution)."""
    key = condition.strip().lower()
    return key if key in EMOTIONS else None


def expects_higher(pair_by: str) -> bool:
    """Whether a pairwise choice has a right answer: for intensity pairs ("which looks more happy?") it is the more
    intense face; engine or condition pairs ("which looks more natural?") are preferences."""
    return pair_by == "intensity"


def select_conditions(manifest: pd.DataFrame, conditions: Sequence[str] | None) -> pd.DataFrame:
    """Rows of the chosen conditions (all when None); a condition the manifest lacks is an error, not an empty
    study."""
    if conditions is None:
        return manifest
    present = set(manifest["condition"])
    unknown = [c for c in conditions if c not in present]
    if unknown:
        raise StudyError(f"condition(s) {', '.join(map(repr, unknown))} not in the manifest; "
                         f"it has: {', '.join(sorted(present))}")
    return manifest[manifest["condition"].isin(conditions)]


def build_pairs(rows: pd.DataFrame, pair_by: str) -> list[tuple[int, int]]:
    """Pairs of row labels that differ only in ``pair_by``: same identity and the other design columns equal.

    Each pair is ordered by ascending ``pair_by`` (for intensity: weaker first); which side is shown left is decided
    per participant in the page.
    """
    if pair_by not in PAIR_BY:
        raise StudyError(f"pair_by must be one of {', '.join(PAIR_BY)}, got {pair_by!r}")
    keys = [c for c in DESIGN_COLUMNS if c != pair_by]
    pairs = []
    for _, group in rows.groupby(keys, sort=True):
        group = group.sort_values(pair_by, kind="stable")
        for a, b in combinations(group.index, 2):
            if group.at[a, pair_by] != group.at[b, pair_by]:
                pairs.append((a, b))
    if not pairs:
        raise StudyError(f"no pairs: no two stimuli share {', '.join(keys)} and differ in {pair_by}")
    return pairs
