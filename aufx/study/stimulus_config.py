"""Every stimulus-builder setting and its default, in one place.

The conditions (what to render) come from a YAML file (aufx/study/conditions.py reads it); the rendering options
(frame, mask, background, seed, what to measure) come from the command line or the app. Both end up here, are checked
here, and are written to the output folder as ``build.json`` so that a resumed run can refuse different settings.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aufx import __version__
from aufx.au import AUError, parse_au_text
from aufx.diffusion.config import DiffusionConfig
from aufx.engines import registry
from aufx.model.presets import preset_vector
from aufx.resources import code_digest
from aufx.study.manifest import StudyError

BASES = ("neutral", "measured")
MEASURE_WITH = ("aufx", "openface")  # the AUFX estimator, or the user's OpenFace 2.x (aufx.openface_runner)
CROPS = ("standard", "none")
MASKS = ("oval", "none")
GRAY = (128, 128, 128)
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Condition:
    """One expression: an emotion prototype and/or explicit AUs, reached at intensity 1.

    ``aus`` (text form, e.g. "AU12:0.8,R14:0.2") is applied over the preset, so it can add to a prototype or change
    one of its AUs; an explicit 0 is a request too (with base "measured", "AU12:0" removes a smile).
    """
    name: str
    preset: str | None = None
    aus: str = ""
    optional: bool = False  # include the preset's contested AUs (AU7 in fear)
    only_named: bool = False  # the preset moves only the AUs it names (default: it replaces the whole expression)

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise StudyError(f"condition name {self.name!r}: use letters, digits, '_', '-' or '.' (names become "
                             "part of file names)")
        if self.preset is None and not self.aus:
            raise StudyError(f"condition {self.name!r}: give a preset (an emotion prototype), aus (e.g. "
                             "\"AU12:0.8\"), or both")
        for key in ("optional", "only_named"):
            if not isinstance(getattr(self, key), bool):
                raise StudyError(f"condition {self.name!r}: {key} must be true or false, got {getattr(self, key)!r}")
        try:
            if self.preset is not None:
                if not isinstance(self.preset, str):
                    raise AUError(f"preset must be a preset name, got {self.preset!r}")
                preset_vector(self.preset)
            if not isinstance(self.aus, str):
                raise AUError(f"aus must be text like \"AU12:0.8,R14:0.2\", got {self.aus!r}")
            parse_au_text(self.aus)
        except AUError as exc:
            raise StudyError(f"condition {self.name!r}: {exc}") from None


@dataclass(frozen=True)
class ConditionSet:
    """What every identity is rendered with: conditions x intensities x engines, in the order given."""
    conditions: tuple[Condition, ...]
    intensities: tuple[float, ...] = (0.0, 0.5, 1.0)
    engines: tuple[str, ...] = ("warp",)
    # neutral: every identity starts from all AUs at 0, so all identities get the same target vector;
    # measured: each starts from its own measured AUs and only the condition's AUs move (intensity 0 = the photo).
    base: str = "neutral"

    def __post_init__(self):
        names = [c.name for c in self.conditions]
        if not names:
            raise StudyError("conditions must be a non-empty list, e.g. [{name: happy, preset: happy}]")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise StudyError(f"condition name(s) used more than once: {', '.join(dup)}")
        if not isinstance(self.intensities, (tuple, list)) or not isinstance(self.engines, (tuple, list)):
            raise StudyError(f"intensities and engines must be lists, e.g. intensities: [0, 0.5, 1] and engines: "
                             f"[warp]; got {self.intensities!r} and {self.engines!r}")
        bad = [v for v in self.intensities
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0]
        if not self.intensities or bad:
            raise StudyError(f"intensities must be a non-empty list of numbers in [0, 1]; not allowed: {bad}")
        labels = [f"{v:.2f}" for v in self.intensities]  # the form used in file names
        if len(set(labels)) != len(labels):
            raise StudyError(f"intensities must differ in the first two decimals (they name the files), got "
                             f"{list(self.intensities)}")
        engines = list(self.engines)
        known = registry.names()
        if not engines or any(e not in known for e in engines) or len(set(engines)) != len(engines):
            raise StudyError(f"engines must be a list of distinct engines from {', '.join(known)}, got {engines}")
        if self.base not in BASES:
            raise StudyError(f"base must be one of {', '.join(BASES)}, got {self.base!r}")
        # one spelling of the same set (0 and 0.0, lists and tuples), so equal sets write equal build.json files
        object.__setattr__(self, "conditions", tuple(self.conditions))
        object.__setattr__(self, "intensities", tuple(float(v) for v in self.intensities))
        object.__setattr__(self, "engines", tuple(engines))


@dataclass(frozen=True)
class Template:
    """The standard frame, in fractions of the output side: where the eye midpoint lands, how far apart the eyes
    are, and the oval that masks the face. The defaults frame forehead to chin with a margin (measured on the
    canonical face: eye line to chin 1.65 IPD, face width 2.2 IPD)."""
    eye_x: float = 0.5
    eye_y: float = 0.40
    ipd: float = 0.28
    oval_center: tuple[float, float] = (0.5, 0.5)
    oval_radii: tuple[float, float] = (0.29, 0.39)
    feather: float = 0.025  # width of the oval's soft edge


@dataclass(frozen=True)
class SheetLayout:
    """The contact sheet: one row per identity, one column per condition x intensity (x engine), cells in pixels."""
    cell: int = 128
    label_width: int = 120
    header_height: int = 40
    font_size: int = 12


@dataclass
class StimulusConfig:
    identities: Path  # folder of photos, one identity per file (file stem = identity name)
    conditions: ConditionSet
    out: Path  # stimulus folder: manifest.csv, images/, contact_sheet.png, build.json[, stimuli.zip]
    size: int = 512  # side of the square standard crop in pixels (crop "standard" only)
    crop: str = "standard"  # standard: aligned square crop; none: the photo's own full-resolution frame
    mask: str = "oval"  # oval (feathered) or none
    background: str = "gray"  # gray, keep (the photo's own; needs mask none), or #rrggbb
    seed: int = 0  # passed to every edit (diffusion: the same noise for every condition, so only the AUs differ)
    make_zip: bool = False  # also write stimuli.zip (manifest, build.json, contact sheet, images)
    measure_output: bool = True  # re-detect every output and measure its AUs (costs one face detection each)
    measure_with: str = "aufx"  # what measures them: "aufx" or "openface" (one FeatureExtraction call per identity)
    openface_bin: Path | None = None  # OpenFace 2.x FeatureExtraction for measure_with "openface" ($OPENFACE_BIN)
    identity_backend: str | None = "dlib"  # aufx/evaluation/backends.json identity model; None skips identity distance
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)  # used when "diffusion" is an engine
    template: Template = field(default_factory=Template)
    sheet: SheetLayout = field(default_factory=SheetLayout)

    def __post_init__(self):
        self.identities, self.out = Path(self.identities), Path(self.out)
        if not isinstance(self.size, int) or not 64 <= self.size <= 4096:
            raise StudyError(f"size must be a whole number of pixels in [64, 4096], got {self.size!r}")
        if self.crop not in CROPS:
            raise StudyError(f"crop must be one of {', '.join(CROPS)}, got {self.crop!r}")
        if self.mask not in MASKS:
            raise StudyError(f"mask must be one of {', '.join(MASKS)}, got {self.mask!r}")
        if self.background not in ("gray", "keep") and not _HEX.match(self.background):
            raise StudyError(f"background must be gray, keep or a colour #rrggbb, got {self.background!r}")
        if self.background == "keep" and self.mask != "none":
            raise StudyError("background keep shows the photo's own background, so an oval mask would change "
                             "nothing: use --mask none with --background keep, or a background colour")
        if self.measure_with not in MEASURE_WITH:
            raise StudyError(f"measure_with must be one of {', '.join(MEASURE_WITH)}, got {self.measure_with!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise StudyError(f"seed must be a whole number, got {self.seed!r}")

    def engine_options(self, engine: str) -> dict:
        """The keyword options this config holds for an engine (the diffusion settings; the warp takes none)."""
        return {"diffusion": {"config": self.diffusion}}.get(engine, {})

    def background_rgb(self) -> tuple[int, int, int] | None:
        """The fill colour outside the mask and the photo, or None to keep the photo's own pixels."""
        if self.background == "keep":
            return None
        if self.background == "gray":
            return GRAY
        return tuple(int(self.background[i:i + 2], 16) for i in (1, 3, 5))

    def recipe(self) -> dict:
        """Everything that decides the files' content (not where the inputs live, not whether to zip): written to
        build.json and compared when a run resumes."""
        skip = {"identities", "out", "make_zip", "openface_bin"}
        if "diffusion" not in self.conditions.engines:
            skip.add("diffusion")
        recipe = {k: v for k, v in asdict(self).items() if k not in skip}
        recipe["aufx_version"] = __version__
        recipe["aufx_code"] = code_digest()  # a build resumed by other code would mix two engines' stimuli
        return recipe
