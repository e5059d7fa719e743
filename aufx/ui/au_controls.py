"""The AU sliders as data: which sliders exist, what they show for a target, and what a move asks for.

A bilateral AU has a linked slider (``AU12``, both sides) and a side pair (``L12``/``R12``) shown when its region is
split. A move changes only the AU whose slider moved, so an untouched slider never edits the face, even where the
measured sides differ from the rounded value the linked slider shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from aufx.au import ActionUnit, AUVector, catalogue, regions

REGION_LABELS = {"brows": "Brows", "eyes": "Eyes", "cheeks_nose": "Cheeks & nose", "mouth": "Mouth", "jaw": "Jaw"}
SIDE_NAMES = {"L": "left", "R": "right"}
DECIMALS = 2  # sliders move in steps of 0.01
TOLERANCE = 0.5 * 10 ** -DECIMALS


@dataclass(frozen=True)
class SliderSpec:
    key: str  # "AU12" (linked or midline), "L12", "R12"
    au: ActionUnit
    side: str | None  # "L" / "R" for a side slider

    @property
    def label(self) -> str:
        if self.side:
            return f"{self.key} {self.au.name} ({SIDE_NAMES[self.side]})"
        return f"{self.au.code} {self.au.name}"

    @property
    def info(self) -> str | None:
        if self.side:
            return None
        sides = " Linked: both sides move together." if self.au.bilateral else ""
        return f"{self.au.muscles}. {self.au.does}{sides}"


def slider_specs() -> tuple[SliderSpec, ...]:
    """All sliders in catalogue order: each AU's linked slider, then its side pair if bilateral."""
    specs = []
    for au in catalogue():
        specs.append(SliderSpec(au.code, au, None))
        if au.bilateral:
            specs.extend(SliderSpec(f"{s}{au.code[2:]}", au, s) for s in ("L", "R"))
    return tuple(specs)


def slider_keys() -> tuple[str, ...]:
    return tuple(s.key for s in slider_specs())


def region_specs() -> dict[str, tuple[SliderSpec, ...]]:
    return {r: tuple(s for s in slider_specs() if s.au.region == r) for r in regions()}


def slider_values(target: AUVector) -> dict[str, float]:
    """What every slider shows for a target: sides as they are, linked sliders the mean of both sides."""
    out = {}
    for s in slider_specs():
        value = target[s.key] if s.side else target.au(s.au.code)
        out[s.key] = round(value, DECIMALS)
    return out


def moved(values: Mapping[str, float | None], shown: Mapping[str, float]) -> dict[str, float]:
    """The assignments a slider event asks for: only sliders whose value differs from what was shown."""
    out = {}
    for key, value in values.items():
        if value is None or key not in shown:
            continue
        if abs(float(value) - shown[key]) > TOLERANCE:
            out[key] = float(value)
    return out


def region_has_sides(region: str) -> bool:
    return any(s.side for s in region_specs()[region])
