"""The stimulus folder on disk, kept consistent through interruptions.

Invariants: an image appears under its final name only complete (written to a temp name, then renamed); its manifest
row is appended only after the rename; on start the manifest is reconciled with the files (rows whose file is
missing, altered or made from another source are dropped, images without a row and temp files are removed); so
a run killed at any point resumes without redoing finished images, and ends byte-identical to an uninterrupted run.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import cv2
import numpy as np

from aufx.io.digest import sha256_file
from aufx.io.files import TEMP, write_atomic
from aufx.io.images import png_bytes
from aufx.study.manifest import MANIFEST_COLUMNS, StudyError

MANIFEST = "manifest.csv"
IMAGES = "images"
RECIPE = "build.json"
# Fixed PNG settings, so the same pixels always give the same bytes; no time stamp and no text chunks (unlike
# `aufx edit`): a stimulus must not tell a curious participant its condition; the manifest holds the metadata.
# Level 1 + run-length + the "up" filter: the fastest setting measured (4 ms at 512^2), ~1.2x the size of the smallest.
PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP)


def encode_png(rgb: np.ndarray) -> bytes:
    """A stimulus (H, W, 3) uint8 RGB as PNG bytes, without metadata."""
    return png_bytes(rgb, params=PNG_PARAMS)


def csv_text(rows: list[dict], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class StimulusStore:
    def __init__(self, out: Path, recipe: dict):
        self.out, self.images, self.manifest = out, out / IMAGES, out / MANIFEST
        recipe = json.loads(json.dumps(recipe))  # tuples -> lists, as build.json reads back
        recipe_path = out / RECIPE
        if recipe_path.is_file():
            try:
                old = json.loads(recipe_path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                old = None
            if old != recipe and self._has_stimuli():  # a folder with nothing finished takes the new settings
                changed = sorted(k for k in set(recipe) | set(old or {}) if (old or {}).get(k) != recipe.get(k))
                raise StudyError(f"{out} was built with other settings ({', '.join(changed)} differ); resume with "
                                 "the same conditions and options, or choose a new --out folder")
        elif out.exists() and any(out.iterdir()):
            raise StudyError(f"{out} is not empty and holds no {RECIPE}: it is not a stimulus folder; choose an "
                             "empty or new folder")
        out.mkdir(parents=True, exist_ok=True)
        if not recipe_path.is_file() or not self._has_stimuli():  # first, so a folder with content has its recipe
            write_atomic(recipe_path, (json.dumps(recipe, indent=2, sort_keys=True) + "\n").encode())
        self.images.mkdir(exist_ok=True)

    def _has_stimuli(self) -> bool:
        return self.images.is_dir() and any(p.suffix == ".png" for p in self.images.iterdir())

    def reconcile(self, wanted: dict[str, str]) -> tuple[dict[str, dict], int]:
        """Keep the manifest rows that are finished: planned (``wanted``: file -> sha256 of its source photo), file
        present with the sha256 the row records. Returns those rows by file, and how many rows were dropped."""
        for tmp in list(self.out.glob("*" + TEMP)) + list(self.images.glob("*" + TEMP)):
            tmp.unlink()
        rows = self._read_rows()
        kept = {}
        for row in rows:
            name = row["file"]
            path = self.images / name
            if (wanted.get(name) is not None and name not in kept and path.is_file()
                    and _source_sha(row) == wanted[name] and sha256_file(path) == row["sha256"]):
                kept[name] = row
        for path in self.images.iterdir():
            if path.is_file() and path.name not in kept:
                path.unlink()
        write_atomic(self.manifest, csv_text(list(kept.values()), header=True).encode())
        return kept, len(rows) - len(kept)

    def _read_rows(self) -> list[dict]:
        """The manifest's complete rows; a line cut short by an interruption has too few fields and is skipped."""
        if not self.manifest.is_file():
            return []
        text = self.manifest.read_text(encoding="utf-8", errors="replace")
        lines = list(csv.reader(io.StringIO(text)))
        if not lines or tuple(lines[0]) != MANIFEST_COLUMNS:
            return []
        return [dict(zip(MANIFEST_COLUMNS, line)) for line in lines[1:] if len(line) == len(MANIFEST_COLUMNS)]

    def add(self, row: dict, rgb: np.ndarray) -> dict:
        """Write one stimulus, then its manifest row (with the file's sha256)."""
        data = encode_png(rgb)
        write_atomic(self.images / row["file"], data)
        row = {**row, "sha256": hashlib.sha256(data).hexdigest()}
        with open(self.manifest, "a", encoding="utf-8", newline="") as f:
            f.write(csv_text([row], header=False))
        return row

    def finish(self, rows: list[dict]) -> None:
        """Rewrite the manifest in plan order, whatever order an interrupted run appended its rows in."""
        write_atomic(self.manifest, csv_text(rows, header=True).encode())


def _source_sha(row: dict) -> str | None:
    try:
        return json.loads(row["params"])["source"]["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
