"""Read and write OpenFace 2.x CSVs: FeatureExtraction (one row per frame) and FaceLandmarkImg (one row per face).

Real files put a space after every comma (``frame, face_id, timestamp, ...``); intensities ``AUxx_r`` are on 0..5 and
presences ``AUxx_c`` are 0/1. AUFX uses normalised intensities, ``clip(AUxx_r, 0, 5) / 5``. Rows where tracking
failed (``success`` 0) or the landmark confidence is low carry meaningless AU values, so they are marked, excluded
and counted instead of silently ending up in research data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from aufx.au import AUVector, channels, get_au
from aufx.io.tracks import AUTrack, channel_index

# The 17 AUs OpenFace 2.x reports intensities for, in its column order; presence (_c) adds AU28 (lip suck).
OPENFACE_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15", "AU17",
                "AU20", "AU23", "AU25", "AU26", "AU45")
OPENFACE_PRESENCE_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15",
                         "AU17", "AU20", "AU23", "AU25", "AU26", "AU28", "AU45")
DEFAULT_MIN_CONFIDENCE = 0.8

# Leading columns and the printf precision OpenFace's RecorderCSV uses for each (sequence vs. image mode).
_ID_FORMATS = {
    "video": {"frame": "{:d}", "face_id": "{:d}", "timestamp": "{:.3f}", "confidence": "{:.2f}", "success": "{:d}"},
    "image": {"face": "{:d}", "confidence": "{:.3f}"},
}
_ID_COLUMNS = ("frame", "face_id", "timestamp", "face", "confidence", "success")

# Row status values in OpenFaceTable.rows["status"].
OK, FAILED, LOW_CONFIDENCE = "ok", "failed", "low_confidence"


class OpenFaceFormatError(ValueError):
    """A CSV that is not usable OpenFace output; the message names the file and what is missing."""


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class OpenFaceTable:
    path: Path
    kind: str                       # "video" (FeatureExtraction: 'frame' column) or "image" (FaceLandmarkImg: 'face')
    rows: pd.DataFrame              # every row: id columns, AUxx (normalised 0..1), AUxx_c (0/1), status
    aus: tuple[str, ...]            # AUs that have an AUxx_r column in the file
    presence_aus: tuple[str, ...]   # AUs that have an AUxx_c column in the file
    min_confidence: float

    @property
    def kept(self) -> pd.DataFrame:
        """Rows with valid AUs: success 1 and confidence >= min_confidence."""
        return self.rows[self.rows["status"] == OK]

    @property
    def n_failed(self) -> int:
        return int((self.rows["status"] == FAILED).sum())

    @property
    def n_low_confidence(self) -> int:
        """Rows that succeeded but fall below min_confidence (a failed row counts only as failed)."""
        return int((self.rows["status"] == LOW_CONFIDENCE).sum())

    @property
    def missing_aus(self) -> tuple[str, ...]:
        """OpenFace AUs without an intensity column in this file."""
        return tuple(a for a in OPENFACE_AUS if a not in self.aus)

    def au_vectors(self) -> list[AUVector]:
        """One AUVector per kept row; OpenFace measures both sides together, so both sides get its value."""
        return [AUVector(dict(zip(self.aus, vals))) for vals in self.kept[list(self.aus)].itertuples(index=False)]

    def to_au_track(self, face_id: int | None = None) -> AUTrack:
        """Kept frames of a FeatureExtraction CSV as an AU track on its timestamps (one face; pick it if several)."""
        if self.kind != "video" or "timestamp" not in self.rows:
            raise OpenFaceFormatError(f"{self.path}: only FeatureExtraction (video) CSVs with timestamps form a track")
        kept = self.kept
        if "face_id" in kept:
            ids = sorted(kept["face_id"].unique().tolist())
            if face_id is None and len(ids) > 1:
                raise OpenFaceFormatError(f"{self.path}: several faces (face_id {ids}); choose one with face_id=")
            if face_id is not None:
                kept = kept[kept["face_id"] == face_id]
        if kept.empty:
            raise OpenFaceFormatError(f"{self.path}: no valid frames for an AU track")
        values = np.zeros((len(kept), len(channels())))
        index = channel_index()
        for au in self.aus:
            for ch in get_au(au).channels():
                values[:, index[ch]] = kept[au].to_numpy()
        return AUTrack(kept["timestamp"].to_numpy(), values)


def read_openface_csv(path: str | Path, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> OpenFaceTable:
    """Parse an OpenFace CSV; raises OpenFaceFormatError naming the file for anything that is not OpenFace output."""
    path = Path(path)
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    try:
        raw = pd.read_csv(path, skipinitialspace=True, encoding="utf-8-sig")  # -sig: files re-saved by Excel
    except pd.errors.EmptyDataError:
        raise OpenFaceFormatError(f"{path}: empty file, not an OpenFace CSV") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise OpenFaceFormatError(f"{path}: not a readable CSV ({exc})") from None
    raw.columns = [str(c).strip() for c in raw.columns]

    aus = tuple(a for a in OPENFACE_AUS if f"{a}_r" in raw.columns)
    if not aus:
        raise OpenFaceFormatError(f"{path}: no AU intensity columns (AU01_r ... AU45_r); not OpenFace output, "
                                  "or OpenFace was run without -aus")
    if "frame" in raw.columns:
        kind = "video"
    elif "face" in raw.columns:
        kind = "image"
    else:
        raise OpenFaceFormatError(f"{path}: no 'frame' column (FeatureExtraction) or 'face' column "
                                  "(FaceLandmarkImg); not OpenFace output")
    if "confidence" not in raw.columns:
        raise OpenFaceFormatError(f"{path}: no 'confidence' column; not OpenFace output")

    presence = tuple(a for a in OPENFACE_PRESENCE_AUS if f"{a}_c" in raw.columns)
    ids = [c for c in _ID_COLUMNS if c in raw.columns]
    src = ids + [f"{a}_r" for a in aus] + [f"{a}_c" for a in presence]
    numbers = raw[src].apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise OpenFaceFormatError(f"{path}, line {row + 2}: column {src[col]!r} is not a number "
                                  f"({raw[src[col]].iloc[row]!r})")

    rows = numbers[ids].copy()
    for c in ("frame", "face_id", "face", "success"):
        if c in rows:
            rows[c] = rows[c].round().astype(int)
    for a in aus:
        rows[a] = numbers[f"{a}_r"].clip(0.0, 5.0) / 5.0
    for a in presence:
        rows[f"{a}_c"] = (numbers[f"{a}_c"] >= 0.5).astype(int)
    failed = rows["success"].to_numpy() == 0 if "success" in rows else np.zeros(len(rows), bool)
    low = ~failed & (rows["confidence"].to_numpy() < min_confidence)
    rows["status"] = np.select([failed, low], [FAILED, LOW_CONFIDENCE], OK)
    return OpenFaceTable(path, kind, rows, aus, presence, min_confidence)


def write_openface_csv(path: str | Path, rows: Iterable[Mapping[str, float]], kind: str = "video",
                       fps: float = 30.0) -> Path:
    """Write rows in OpenFace's own layout (``-aus`` output), e.g. to make realistic test data or export results.

    Each row maps OpenFace column names to values: ``AUxx_r`` on 0..5 (missing: 0), ``AUxx_c`` 0/1 (missing: 1 where
    ``AUxx_r >= 1``, a stand-in for OpenFace's separate presence classifier), and optionally the id columns — for
    "video" ``frame`` (default: 1-based row number), ``face_id`` (0), ``timestamp`` ((frame - 1) / fps),
    ``confidence`` (0.98), ``success`` (1); for "image" ``face`` (0-based row number) and ``confidence``.
    Unknown keys are errors, so a typo does not silently become a zero column.
    """
    if kind not in _ID_FORMATS:
        raise ValueError(f"kind must be 'video' or 'image', got {kind!r}")
    id_formats = _ID_FORMATS[kind]
    r_cols = [f"{a}_r" for a in OPENFACE_AUS]
    c_cols = [f"{a}_c" for a in OPENFACE_PRESENCE_AUS]
    known = set(id_formats) | set(r_cols) | set(c_cols)
    lines = [", ".join([*id_formats, *r_cols, *c_cols])]
    for i, row in enumerate(rows):
        unknown = sorted(set(row) - known)
        if unknown:
            raise ValueError(f"row {i}: unknown OpenFace {kind} column(s) {unknown}")
        frame = int(row.get("frame", i + 1))
        defaults = {"frame": frame, "face_id": 0, "timestamp": (frame - 1) / fps, "face": i,
                    "confidence": 0.98, "success": 1}
        ids = [fmt.format(type(defaults[c])(row.get(c, defaults[c]))) for c, fmt in id_formats.items()]
        r = [float(row.get(c, 0.0)) for c in r_cols]
        c = [float(row.get(f"{a}_c", float(row.get(f"{a}_r", 0.0)) >= 1.0)) for a in OPENFACE_PRESENCE_AUS]
        lines.append(", ".join(ids + [f"{v:.2f}" for v in r] + [f"{v:.1f}" for v in c]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
