"""AU keyframe animations (JSON) -> one AU vector per output frame.

    {"fps": 30, "easing": "smoothstep",
     "keyframes": [{"t": 0.0, "aus": {"AU12": 0.0}},
                   {"t": 1.0, "aus": {"AU12": 0.8, "R14": 0.2}}]}

Each keyframe is a complete expression: AUs it does not name are 0 (as in presets and AUVector), so a keyframe reads
the same on its own as in context. ``aus`` may also be the text form ``"AU12:0.8,R14:0.2"``. Between keyframes values
are interpolated linearly, or with smoothstep easing (zero speed at each keyframe, so onsets and offsets look less
mechanical). Frames run from t = 0 to the last keyframe; before the first keyframe its expression is held.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from aufx.au import AUVector
from aufx.io.tracks import AUTrack, vector_to_array

EASINGS = ("linear", "smoothstep")


class KeyframeError(ValueError):
    """A malformed keyframe file; the message names the file and the keyframe."""


def _ease(u: np.ndarray, easing: str) -> np.ndarray:
    return u * u * (3.0 - 2.0 * u) if easing == "smoothstep" else u


def keyframes_to_track(data: Mapping[str, Any], easing: str | None = None, source: str = "keyframes") -> AUTrack:
    """Interpolate parsed keyframe JSON into an AU track at its fps; ``easing`` overrides the file's."""
    if not isinstance(data, Mapping):
        raise KeyframeError(f"{source}: expected an object with 'fps' and 'keyframes'")
    fps = data.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
        raise KeyframeError(f"{source}: 'fps' must be a positive number, got {fps!r}")
    easing = easing or data.get("easing", "linear")
    if easing not in EASINGS:
        raise KeyframeError(f"{source}: unknown easing {easing!r}; choose one of {', '.join(EASINGS)}")
    keys = data.get("keyframes")
    if not isinstance(keys, list) or not keys:
        raise KeyframeError(f"{source}: 'keyframes' must be a non-empty list of {{\"t\": ..., \"aus\": ...}}")

    times, values = [], []
    for i, key in enumerate(keys):
        where = f"{source}: keyframe {i}"
        if not isinstance(key, Mapping) or "t" not in key or "aus" not in key:
            raise KeyframeError(f"{where}: expected {{\"t\": seconds, \"aus\": {{\"AU12\": 0.8}}}}, got {key!r}")
        t = key["t"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t < 0:
            raise KeyframeError(f"{where}: 't' must be a number of seconds >= 0, got {t!r}")
        if times and t <= times[-1]:
            raise KeyframeError(f"{where}: t={t} does not come after t={times[-1]}; keyframes must be in time order")
        try:
            aus = key["aus"]
            vector = AUVector.from_text(aus) if isinstance(aus, str) else AUVector(aus)
        except (ValueError, TypeError, AttributeError) as exc:  # AUError is a ValueError
            raise KeyframeError(f"{where} (t={t}): {exc}") from None
        times.append(float(t))
        values.append(vector_to_array(vector))

    key_t, key_v = np.array(times), np.array(values)
    frame_t = np.arange(int(np.floor(key_t[-1] * fps + 1e-6)) + 1) / fps
    if len(key_t) == 1:
        return AUTrack(frame_t, np.repeat(key_v, len(frame_t), axis=0), fps)
    seg = np.clip(np.searchsorted(key_t, frame_t, side="right") - 1, 0, len(key_t) - 2)
    u = np.clip((frame_t - key_t[seg]) / (key_t[seg + 1] - key_t[seg]), 0.0, 1.0)
    w = _ease(u, easing)[:, None]
    return AUTrack(frame_t, key_v[seg] + (key_v[seg + 1] - key_v[seg]) * w, fps)


def read_keyframes(path: str | Path, easing: str | None = None) -> AUTrack:
    """Read a keyframe JSON file (see the module docstring) into an AU track at its fps."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyframeError(f"{path}: not a readable JSON file ({exc})") from None
    return keyframes_to_track(data, easing, source=str(path))
