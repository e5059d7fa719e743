"""conditions.yaml -> ConditionSet, and the target AU vector of one condition at one intensity.

The file is hand-written by researchers, so every mistake is reported with the file, the condition and the key
(see aufx/presets/conditions_example.yaml for the format). The checks of the values themselves live with the dataclasses
(stimulus_config.py), so a ConditionSet built in Python is checked the same way.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from aufx.au import AUVector, parse_au_text
from aufx.model.presets import preset_vector
from aufx.study.manifest import StudyError
from aufx.study.stimulus_config import Condition, ConditionSet

TOP_KEYS = ("conditions", "intensities", "engines", "base")
CONDITION_KEYS = ("name", "preset", "aus", "optional", "only_named")


def load_conditions(path: str | Path) -> ConditionSet:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyError(f"{path}: cannot read the conditions file ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise StudyError(f"{path.name}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    return parse_conditions(data, path.name)


def parse_conditions(data, source: str = "conditions") -> ConditionSet:
    """Check and convert the loaded YAML (a mapping); ``source`` names it in messages."""
    if not isinstance(data, dict):
        raise StudyError(f"{source}: expected a mapping with the keys {', '.join(TOP_KEYS)}, e.g. "
                         "conditions: [{name: happy, preset: happy}]")
    _no_unknown(data, TOP_KEYS, source)
    raw = data.get("conditions")
    if not isinstance(raw, list):
        raise StudyError(f"{source}: 'conditions' must be a non-empty list, e.g. [{{name: happy, preset: happy}}]")
    options = {k: _as_tuple(data[k]) if k in ("intensities", "engines") else data[k]
               for k in TOP_KEYS[1:] if k in data}
    try:
        return ConditionSet(tuple(_condition(c, i) for i, c in enumerate(raw)), **options)
    except StudyError as exc:
        raise StudyError(f"{source}: {exc}") from None


def _as_tuple(value):
    """YAML lists -> tuples; a single engine may be written without brackets."""
    return tuple(value) if isinstance(value, list) else (value,) if isinstance(value, str) else value


def _no_unknown(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = [str(k) for k in mapping if k not in allowed]
    if unknown:
        raise StudyError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _condition(raw, index: int) -> Condition:
    if not isinstance(raw, dict):
        raise StudyError(f"condition {index + 1}: expected a mapping such as {{name: happy, preset: happy}}, "
                         f"got {raw!r}")
    _no_unknown(raw, CONDITION_KEYS, f"condition {raw.get('name', index + 1)!r}")
    aus = raw.get("aus", "")
    if isinstance(aus, dict):  # {AU12: 0.8} -> "AU12:0.8"
        aus = ",".join(f"{k}:{v}" for k, v in aus.items())
    return Condition(raw.get("name"), raw.get("preset"), aus, raw.get("optional", False), raw.get("only_named", False))


def condition_channels(condition: Condition) -> dict[str, float]:
    """The AU channels a condition sets, with their values at intensity 1.

    A preset replaces the whole expression (every channel, the prototype's zeros included), as everywhere in AUFX;
    with ``only_named`` it sets only the AUs it names. ``aus`` alone sets only the AUs it names.
    """
    channels = {}
    if condition.preset:
        proto = preset_vector(condition.preset, 1.0, condition.optional)
        channels = {ch: v for ch, v in proto.items() if v or not condition.only_named}
    channels.update(parse_au_text(condition.aus))
    return channels


def target_for(measured: AUVector, condition: Condition, intensity: float, base: str) -> AUVector:
    """The target at ``intensity``: the condition's channels moved that fraction of the way from the base.

    With base "neutral" this is the prototype scaled by the intensity (``preset_vector(name, intensity)``), every
    other AU at 0; with base "measured" intensity 0 is the face as photographed, and the continuum is monotonic
    in every AU.
    """
    start = AUVector() if base == "neutral" else measured
    goal = condition_channels(condition)
    return start.updated({ch: min(1.0, max(0.0, start[ch] + intensity * (v - start[ch]))) for ch, v in goal.items()})
