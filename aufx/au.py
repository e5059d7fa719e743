"""Action Units: the catalogue, per-side AU vectors, and the text form shared by the CLI, the API and the app.

One definition for the whole project (see aufx/presets/au_catalogue.json): values are normalised intensities in [0, 1]
(= OpenFace AUxx_r / 5); bilateral AUs carry a value per side, keyed ``L12`` / ``R12`` (the subject's own left and
right); midline AUs are keyed ``AU17``. In the text form ``AU12`` sets both sides of a bilateral AU.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Iterator, Mapping

from aufx.resources import PRESETS_DIR



class AUError(ValueError):
    """A malformed AU token or value; the message names the offending token."""


@dataclass(frozen=True)
class ActionUnit:
    code: str  # "AU12"
    name: str
    muscles: str
    region: str
    bilateral: bool
    openface: bool
    does: str

    @property
    def number(self) -> int:
        return int(self.code[2:])

    def channels(self) -> tuple[str, ...]:
        """Keys of this AU in an AUVector: ("L12", "R12") or ("AU17",)."""
        n = self.code[2:]
        return (f"L{n}", f"R{n}") if self.bilateral else (self.code,)


@lru_cache(maxsize=1)
def _catalogue_data() -> dict:
    return json.loads((PRESETS_DIR / "au_catalogue.json").read_text())


@lru_cache(maxsize=1)
def catalogue() -> tuple[ActionUnit, ...]:
    return tuple(ActionUnit(**{k: d[k] for k in ActionUnit.__dataclass_fields__}) for d in _catalogue_data()["aus"])


def au_codes() -> tuple[str, ...]:
    return tuple(a.code for a in catalogue())


def get_au(code: str) -> ActionUnit:
    for a in catalogue():
        if a.code == code:
            return a
    raise AUError(f"unknown AU {code!r}; known: {', '.join(au_codes())}")


def regions() -> tuple[str, ...]:
    return tuple(_catalogue_data()["regions"])


@lru_cache(maxsize=1)
def channels() -> tuple[str, ...]:
    """All AUVector keys in catalogue order."""
    return tuple(c for a in catalogue() for c in a.channels())


def channel_au(channel: str) -> ActionUnit:
    """The AU a channel key belongs to ("L12" -> AU12)."""
    return get_au(channel if channel.startswith("AU") else "AU" + channel[1:])


_TOKEN = re.compile(r"^(AU|L|R)(\d{1,2})$", re.IGNORECASE)


def resolve_key(key: str) -> tuple[str, ...]:
    """Map a user key ("AU12", "au12", "L12", "R14", "AU17") to AUVector channels; error names the key."""
    m = _TOKEN.match(key.strip())
    if not m:
        raise AUError(f"bad AU name {key!r}: expected AUnn, Lnn or Rnn (e.g. AU12, L12, R14)")
    prefix, num = m.group(1).upper(), int(m.group(2))
    code = f"AU{num:02d}"
    if code not in au_codes():
        raise AUError(f"unknown AU {key!r}; known: {', '.join(au_codes())}")
    au = get_au(code)
    if prefix == "AU":
        return au.channels()
    if not au.bilateral:
        raise AUError(f"{key!r}: {code} ({au.name}) is a midline AU and has no left/right sides; use {code}")
    return (f"{prefix}{num:02d}",)


def _check_value(token: str, value: float) -> float:
    if not math.isfinite(value) or value < 0.0 or value > 1.0:
        raise AUError(f"{token!r}: AU values are normalised intensities in [0, 1] (OpenFace _r / 5), got {value}")
    return float(value)


def parse_au_text(text: str) -> dict[str, float]:
    """Parse ``"AU04:0.6,AU12:0.7,R14:0.2"`` into channel assignments. Empty text gives {}."""
    out: dict[str, float] = {}
    for token in (t.strip() for t in text.replace(";", ",").split(",")):
        if not token:
            continue
        if ":" not in token and "=" not in token:
            raise AUError(f"bad AU token {token!r}: expected NAME:VALUE, e.g. AU12:0.8")
        key, _, raw = token.replace("=", ":").partition(":")
        try:
            value = float(raw)
        except ValueError:
            raise AUError(f"bad AU token {token!r}: {raw.strip()!r} is not a number") from None
        value = _check_value(token, value)
        for ch in resolve_key(key):
            out[ch] = value
    return out


class AUVector(Mapping[str, float]):
    """An immutable per-channel AU intensity vector; missing channels are 0."""

    __slots__ = ("_v",)

    def __init__(self, values: Mapping[str, float] | None = None):
        v = dict.fromkeys(channels(), 0.0)
        for key, val in (values or {}).items():
            for ch in resolve_key(key):
                v[ch] = _check_value(f"{key}:{val}", float(val))
        self._v = v

    # Mapping protocol ------------------------------------------------------------------------------------------
    def __getitem__(self, ch: str) -> float:
        return self._v[ch]

    def __iter__(self) -> Iterator[str]:
        return iter(self._v)

    def __len__(self) -> int:
        return len(self._v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AUVector) and self._v == other._v

    def __repr__(self) -> str:
        return f"AUVector({self.to_text() or 'neutral'})"

    # Construction ----------------------------------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str) -> "AUVector":
        return cls(parse_au_text(text))

    @classmethod
    def clipped(cls, values: Mapping[str, float]) -> "AUVector":
        """Build from measured values that may fall outside [0, 1] (estimators); clip instead of raising."""
        return cls({k: min(1.0, max(0.0, float(v))) for k, v in values.items()})

    def updated(self, assignments: Mapping[str, float]) -> "AUVector":
        v = dict(self._v)
        for key, val in assignments.items():
            for ch in resolve_key(key):
                v[ch] = _check_value(f"{key}:{val}", float(val))
        return AUVector(v)

    def scaled(self, factor: float) -> "AUVector":
        return AUVector({k: min(1.0, max(0.0, x * factor)) for k, x in self._v.items()})

    # Views -----------------------------------------------------------------------------------------------------
    def au(self, code: str) -> float:
        """Mean over sides: the value OpenFace-style tools report for an AU."""
        chs = get_au(code).channels()
        return sum(self._v[c] for c in chs) / len(chs)

    def compact(self, ndigits: int = 3) -> dict[str, float]:
        """Non-zero values, bilateral AUs folded to AUnn when both sides agree: the JSON/text form."""
        out: dict[str, float] = {}
        for a in catalogue():
            vals = [round(self._v[c], ndigits) for c in a.channels()]
            if a.bilateral and vals[0] != vals[1]:
                for c, x in zip(a.channels(), vals):
                    if x:
                        out[c] = x
            elif vals[0]:
                out[a.code] = vals[0]
        return out

    def per_au(self, codes: Iterable[str] | None = None, ndigits: int = 3) -> dict[str, float]:
        """Every AU (both sides averaged), zeros included: the OpenFace-shaped view."""
        return {c: round(self.au(c), ndigits) for c in (codes or au_codes())}

    def to_text(self) -> str:
        return ",".join(f"{k}:{v:g}" for k, v in self.compact().items())

    def as_dict(self) -> dict[str, float]:
        return dict(self._v)
