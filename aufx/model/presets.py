"""Emotion prototypes and user presets, stored as readable JSON (never pickles)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from aufx.au import PRESETS_DIR, AUError, AUVector

EMOTIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")


@lru_cache(maxsize=1)
def _emotion_data() -> dict[str, Any]:
    return json.loads((PRESETS_DIR / "emotions.json").read_text())["presets"]


def emotion_presets() -> dict[str, dict[str, Any]]:
    """The 8 AffectNet prototypes: name -> {label, aus, source, optional?}."""
    return {k: dict(v) for k, v in _emotion_data().items()}


def preset_vector(name: str, intensity: float = 1.0, include_optional: bool = False) -> AUVector:
    """Prototype of an emotion scaled by ``intensity`` (0..1); values stay clipped to [0, 1]."""
    key = name.strip().lower()
    presets = _emotion_data()
    if key not in presets:
        raise AUError(f"unknown preset {name!r}; choose one of: {', '.join(presets)}")
    if not 0.0 <= intensity <= 1.0:
        raise AUError(f"preset intensity must be in [0, 1], got {intensity}")
    aus = dict(presets[key]["aus"])
    if include_optional:
        aus.update(presets[key].get("optional", {}))
    return AUVector(aus).scaled(intensity)


def save_user_preset(path: str | Path, name: str, vector: AUVector, note: str = "") -> Path:
    """Write a preset as readable JSON (name, non-zero AUs, note, AUFX version); parent folders are created."""
    from aufx import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "aus": vector.compact(), "note": note, "aufx_version": __version__},
                               indent=2))
    return path


def load_user_preset(path: str | Path) -> tuple[str, AUVector]:
    """Read a preset JSON written by AUFX (or by hand: {"name": ..., "aus": {"AU12": 0.8, "R14": 0.2}})."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AUError(f"{path.name}: not a readable preset JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("aus"), dict):
        raise AUError(f"{path.name}: a preset file needs an object with an 'aus' mapping, e.g. "
                      '{"name": "smile", "aus": {"AU12": 0.8}}')
    return str(data.get("name") or path.stem), AUVector(data["aus"])
