"""ARKit face-tracking recordings (JSONL, one frame per line) to AU tracks and back.

A line is ``{"timestamp": 0.0333, "blendshapes": [52 floats in 0..1]}`` in Apple's blendshape order. The mapping to
AUs is the approximate table in ``aufx/presets/arkit_au_map.json`` (data, not code, so that researchers can read and
adjust it). Files are checked line by line and errors name the line, because recordings are long and hand-edited.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from aufx.au import PRESETS_DIR, channels, resolve_key
from aufx.io.tracks import AUTrack, channel_index

MAP_FILE = PRESETS_DIR / "arkit_au_map.json"
_RANGE_TOL = 1e-6  # float noise in exported values; anything further outside [0, 1] is an error


class ARKitFormatError(ValueError):
    """A malformed ARKit JSONL file; the message names the file and line."""


@dataclass(frozen=True)
class ARKitMap:
    names: tuple[str, ...]                              # the 52 blendshapes in Apple's order
    ramps: tuple[tuple[int, int, float, float], ...]    # (blendshape index, channel index, lo, hi)
    export_merge: tuple[tuple[int, int], ...]           # (source channel, destination channel) before export


@lru_cache(maxsize=1)
def arkit_map() -> ARKitMap:
    """The table in aufx/presets/arkit_au_map.json, checked once (52 unique names, known channels, lo < hi)."""
    data = json.loads(MAP_FILE.read_text(encoding="utf-8"))
    names = tuple(e["name"] for e in data["blendshapes"])
    if len(names) != 52 or len(set(names)) != 52:
        raise ValueError(f"{MAP_FILE.name}: expected 52 unique blendshape names, got {len(set(names))}")
    index = channel_index()

    def channel(key: str) -> int:
        chs = resolve_key(key)
        if len(chs) != 1:
            raise ValueError(f"{MAP_FILE.name}: {key!r} names both sides; use L/R channel keys")
        return index[chs[0]]

    ramps = []
    for b, entry in enumerate(data["blendshapes"]):
        for key, (lo, hi) in entry["aus"].items():
            if not 0 <= lo < hi <= 1:
                raise ValueError(f"{MAP_FILE.name}: {entry['name']} -> {key}: ramp needs 0 <= lo < hi <= 1")
            ramps.append((b, channel(key), float(lo), float(hi)))
    merge = tuple((channel(src), channel(dst)) for src, dst in data["export_merge"].items())
    return ARKitMap(names, tuple(ramps), merge)


def blendshape_names() -> tuple[str, ...]:
    return arkit_map().names


def _mirror(values: np.ndarray) -> np.ndarray:
    """Swap the subject's left and right channels (L12 <-> R12) of (..., channels) values."""
    index = channel_index()
    swap = {"L": "R", "R": "L"}
    perm = [index[swap[c[0]] + c[1:]] if c[0] in swap else i for i, c in enumerate(channels())]
    return values[..., perm]


def blendshapes_to_au(blendshapes: np.ndarray, mirror: bool = False) -> np.ndarray:
    """(..., 52) blendshape weights -> (..., channels) AU intensities, through the table's ramps."""
    bs = np.asarray(blendshapes, dtype=float)
    if bs.shape[-1] != 52:
        raise ValueError(f"expected 52 blendshape values in the last axis, got shape {bs.shape}")
    total = np.zeros(bs.shape[:-1] + (len(channels()),))
    count = np.zeros(len(channels()))
    for b, ch, lo, hi in arkit_map().ramps:
        total[..., ch] += np.clip((bs[..., b] - lo) / (hi - lo), 0.0, 1.0)
        count[ch] += 1
    au = total / np.maximum(count, 1)
    return _mirror(au) if mirror else au


def au_to_blendshapes(au: np.ndarray, mirror: bool = False) -> np.ndarray:
    """(..., channels) AU intensities -> (..., 52) blendshape weights: the direct per-entry inverse of the table."""
    au = np.asarray(au, dtype=float)
    if au.shape[-1] != len(channels()):
        raise ValueError(f"expected {len(channels())} AU channels in the last axis, got shape {au.shape}")
    au = _mirror(au) if mirror else au.copy()
    table = arkit_map()
    for src, dst in table.export_merge:
        au[..., dst] = np.maximum(au[..., dst], au[..., src])
    bs = np.zeros(au.shape[:-1] + (52,))
    for b, ch, lo, hi in table.ramps:
        bs[..., b] = np.maximum(bs[..., b], np.where(au[..., ch] > 0, lo + au[..., ch] * (hi - lo), 0.0))
    return bs


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ARKitTrack:
    times: np.ndarray        # (T,) seconds as recorded (ARKit's clock; need not start at 0)
    blendshapes: np.ndarray  # (T, 52) weights in 0..1, Apple's order

    @property
    def fps(self) -> float:
        """Recording rate from the median frame interval (robust to a few dropped frames)."""
        return float(1.0 / np.median(np.diff(self.times))) if len(self.times) > 1 else math.nan

    def to_au_track(self, mirror: bool = False) -> AUTrack:
        return AUTrack(self.times, blendshapes_to_au(self.blendshapes, mirror))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_arkit_jsonl(path: str | Path) -> ARKitTrack:
    """Read and check a recording: valid JSON per line, 52 values in [0, 1], strictly increasing timestamps."""
    path = Path(path)
    names = blendshape_names()
    times: list[float] = []
    rows: list[list[float]] = []
    prev_line = 0
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ARKitFormatError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(obj, dict) or "timestamp" not in obj or "blendshapes" not in obj:
                raise ARKitFormatError(f"{where}: expected an object with 'timestamp' and 'blendshapes'")
            t, values = obj["timestamp"], obj["blendshapes"]
            if not _number(t):
                raise ARKitFormatError(f"{where}: timestamp {t!r} is not a finite number")
            if times and t <= times[-1]:
                raise ARKitFormatError(f"{where}: timestamp {t} does not come after {times[-1]} (line {prev_line}); "
                                       "timestamps must increase")
            if not isinstance(values, list) or len(values) != 52:
                got = len(values) if isinstance(values, list) else type(values).__name__
                raise ARKitFormatError(f"{where}: 'blendshapes' must be a list of 52 values in ARKit order "
                                       f"({names[0]} ... {names[-1]}), got {got}")
            for i, v in enumerate(values):
                if not _number(v) or not -_RANGE_TOL <= v <= 1 + _RANGE_TOL:
                    raise ARKitFormatError(f"{where}: blendshape {i} ({names[i]}) = {v!r} is not a number in [0, 1]")
            times.append(float(t))
            rows.append(values)
            prev_line = n
    if not times:
        raise ARKitFormatError(f"{path}: no frames")
    return ARKitTrack(np.array(times), np.clip(np.array(rows, dtype=float), 0.0, 1.0))


def write_arkit_jsonl(path: str | Path, track: AUTrack, mirror: bool = False) -> Path:
    """Export an AU track as ARKit JSONL (one line per frame, the track's own times) via the inverse table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bs = au_to_blendshapes(track.values, mirror)
    lines = (json.dumps({"timestamp": round(float(t), 6), "blendshapes": [round(float(v), 6) for v in row]})
             for t, row in zip(track.times, bs))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
