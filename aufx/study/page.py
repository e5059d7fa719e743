"""Export a stimulus folder as a self-contained study page: static HTML/JS/CSS, the images, and the study data.

The folder opens from disk (file://) in any current browser with no server and no network, so it runs on a lab
machine as it is, and can be archived next to the responses as the exact study that was shown.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from aufx import __version__
from aufx.io.digest import sha256_file
from aufx.study.design import (TASKS, build_pairs, categories, expected_category, expects_higher,
                               select_conditions)
from aufx.study.manifest import DESIGN_COLUMNS, StudyError, read_manifest

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = ("index.html", "study.css", "plan.js", "study.js")
DATA_JS = "study_data.js"   # what the page loads: browsers refuse fetch() of a JSON file from file://
DATA_JSON = "study.json"    # the same data for Python and for the archive
IMAGES = "images"
# Formats every current browser displays; TIFF, for one, is not among them.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")

DEFAULT_QUESTIONS = {
    "identification": "Which emotion does this face show?",
    "intensity": "Which face looks more {condition}?",
    "engine": "Which face looks more natural?",
    "condition": "Which face looks more natural?",
}
DEFAULT_INSTRUCTIONS = {
    "identification": ("You will see one face at a time. Choose the emotion it shows with the buttons or the number "
                       "keys 1 to 8. Answer as quickly and accurately as you can; there is no time limit."),
    "pairwise": ("You will see two faces side by side. Choose the face that fits the question with the buttons, the "
                 "arrow keys or the keys F (left) and J (right). Go with your first impression; there is no time "
                 "limit."),
}


def export_study(stimuli_dir: str | Path, out_dir: str | Path, task: str = "identification", *, seed: int = 0,
                 question: str | None = None, conditions: Sequence[str] | None = None, repeats: int = 1,
                 pair_by: str = "intensity", block_by: str | None = None, title: str = "Face perception study",
                 instructions: str | None = None, iti_ms: int = 500, overwrite: bool = False) -> Path:
    """Write the study folder for ``stimuli_dir`` (manifest.csv + images/) into ``out_dir``; return its index.html.

    task: "identification" (one face, 8 emotion buttons) or "pairwise" (two faces that differ only in ``pair_by``:
    "intensity", "engine" or "condition"). question: the prompt; in pairwise studies "{condition}" is replaced by the
    pair's condition. conditions: manifest conditions to include (all when None). repeats: how often each trial is
    shown; repeated pairwise trials swap sides. block_by: a design column ("identity", "engine", ...) whose values
    form blocks, ordered per participant by a balanced Latin square. seed: with the participant code it fixes the
    trial order. iti_ms: blank interval with a fixation cross between trials. overwrite: replace a study previously
    exported to ``out_dir`` (any other non-empty folder is refused).
    """
    stimuli_dir, out_dir = Path(stimuli_dir), Path(out_dir)
    _check_options(task, repeats, pair_by, block_by, iti_ms, seed)
    rows = select_conditions(read_manifest(stimuli_dir / "manifest.csv"), conditions)
    trials, used, blocks = _trials(rows, task, question, pair_by, block_by)
    sources = [_checked_image(stimuli_dir, rows.loc[i]) for i in used]  # all checked before out_dir is touched
    _prepare(out_dir, overwrite)
    items = []
    for i, (source, src) in zip(used, sources):
        shutil.copyfile(source, out_dir / src)
        items.append({"file": rows.at[i, "file"], "src": src, **{c: rows.at[i, c] for c in DESIGN_COLUMNS}})
    study = {
        "format": 1, "aufx_version": __version__, "task": task, "title": title,
        "question": question or DEFAULT_QUESTIONS["identification" if task == "identification" else pair_by],
        "instructions": instructions or DEFAULT_INSTRUCTIONS[task], "seed": seed, "repeats": repeats,
        "iti_ms": iti_ms, "pair_by": pair_by if task == "pairwise" else None, "block_by": block_by,
        "blocks": [str(b) for b in blocks], "categories": categories() if task == "identification" else None,
        "items": items, "trials": trials,
    }
    text = json.dumps(study, indent=1)
    (out_dir / DATA_JSON).write_text(text + "\n", encoding="utf-8")
    (out_dir / DATA_JS).write_text(f"window.AUFX_STUDY = {text};\n", encoding="utf-8")
    for name in STATIC_FILES:
        shutil.copyfile(STATIC_DIR / name, out_dir / name)
    return out_dir / "index.html"


def load_study(study_dir: str | Path) -> dict:
    """The study data of an exported folder (items, trials, options), as the page reads it."""
    return json.loads((Path(study_dir) / DATA_JSON).read_text(encoding="utf-8"))


def _check_options(task: str, repeats: int, pair_by: str, block_by: str | None, iti_ms: int, seed: int) -> None:
    if task not in TASKS:
        raise StudyError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise StudyError(f"repeats must be a whole number >= 1, got {repeats!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise StudyError(f"seed must be a whole number, got {seed!r}")
    if not isinstance(iti_ms, int) or iti_ms < 0:
        raise StudyError(f"iti_ms must be a whole number of milliseconds >= 0, got {iti_ms!r}")
    if block_by is not None and block_by not in DESIGN_COLUMNS:
        raise StudyError(f"block_by must be one of {', '.join(DESIGN_COLUMNS)} or None, got {block_by!r}")
    if task == "pairwise" and block_by == pair_by:
        raise StudyError(f"block_by={block_by!r} cannot be the column that differs within a pair (pair_by)")


def _trials(rows: pd.DataFrame, task: str, question: str | None, pair_by: str,
            block_by: str | None) -> tuple[list[dict], list, list]:
    """The trial set: [{items, expected, block[, question]}] with items as positions in ``used`` (the manifest rows
    shown, in manifest order), and the block labels."""
    if task == "identification":
        trials = [{"items": [i], "expected": expected_category(rows.at[i, "condition"])} for i in rows.index]
    else:
        template = question or DEFAULT_QUESTIONS[pair_by]
        trials = [{"items": [a, b], "expected": b if expects_higher(pair_by) else None,
                   "question": _render(template, rows.loc[a])} for a, b in build_pairs(rows, pair_by)]
    used = sorted({i for t in trials for i in t["items"]})
    position = {label: n for n, label in enumerate(used)}
    blocks = sorted(rows.loc[used, block_by].unique().tolist()) if block_by else ["all"]
    for t in trials:
        t["block"] = blocks.index(rows.at[t["items"][0], block_by]) if block_by else 0
        if task == "pairwise" and t["expected"] is not None:
            t["expected"] = position[t["expected"]]
        t["items"] = [position[i] for i in t["items"]]
    return trials, used, blocks


def _render(template: str, row: pd.Series) -> str:
    try:
        return template.format(condition=row["condition"])
    except (KeyError, IndexError, ValueError) as exc:
        raise StudyError(f"question {template!r}: the only placeholder is {{condition}} ({exc})") from None


def _prepare(out_dir: Path, overwrite: bool) -> None:
    """Make ``out_dir`` ready; only a folder that holds a previous export may be overwritten."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (overwrite and (out_dir / DATA_JSON).is_file()):
            why = "pass overwrite=True to replace it" if (out_dir / DATA_JSON).is_file() else \
                "it is not a study folder; choose an empty or new folder"
            raise StudyError(f"{out_dir} is not empty: {why}")
        shutil.rmtree(out_dir / IMAGES, ignore_errors=True)
    (out_dir / IMAGES).mkdir(parents=True, exist_ok=True)


def _checked_image(stimuli_dir: Path, row: pd.Series) -> tuple[Path, str]:
    """The image file of a manifest row and its name in the study folder, derived from its content so that file
    names do not reveal the condition to participants; checked against the manifest's sha256 when one is given."""
    name = row["file"]
    source = (stimuli_dir / "images" / name).resolve()
    if not source.is_relative_to((stimuli_dir / "images").resolve()):
        raise StudyError(f"manifest file {name!r} points outside {stimuli_dir / 'images'}")
    if not source.is_file():
        raise StudyError(f"manifest lists {name!r} but {source} does not exist")
    suffix = source.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise StudyError(f"{name!r}: browsers cannot show {suffix or 'suffix-less'} images; "
                         f"use one of {', '.join(IMAGE_SUFFIXES)}")
    digest = sha256_file(source)
    expected = str(row.get("sha256", "")).strip().lower()
    if expected and expected != digest:
        raise StudyError(f"{name!r} changed since the manifest was written (sha256 {digest[:12]}… != "
                         f"{expected[:12]}…); rebuild the stimuli or restore the file")
    return source, f"{IMAGES}/{digest[:20]}{suffix}"
