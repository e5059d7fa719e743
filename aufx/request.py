"""What was asked: one edit request, built by every entry point (CLI, app, batch API, live, sequences, stimuli).

``EditRequest.target(measured)`` is the one meaning of preset / intensity / AUs / neutral shared by every entry
point; ``EditRequest.describe(result)`` is the one description of a result, written as the JSON sidecar, the PNG's
text chunk, the API reply and (projected onto its columns) the stimulus manifest row. The pipeline runs a request:
``aufx.pipeline.run(request)`` or ``Editor.run(request)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from aufx.au import AUVector, parse_au_text
from aufx.engines import registry
from aufx.model.presets import preset_vector

if TYPE_CHECKING:
    from aufx.pipeline import EditResult


@dataclass(frozen=True)
class EditRequest:
    """One edit. Building it checks the AU text, the preset and the engine name, so a bad request fails before any
    image is read."""

    image: str | Path | bytes | np.ndarray | None = field(default=None, compare=False)  # None: frames come later
    name: str | None = None  # the image's name in errors and in the metadata's "input" (default: the path given)
    face_index: int = 0  # 0 = the largest face
    preset: str | None = None  # an emotion prototype; it replaces the whole expression (unless only_named)
    intensity: float = 1.0  # the preset's scale, 0..1
    include_optional: bool = False  # include the preset's contested AUs (AU7 in fear)
    neutral: bool = False  # start from all AUs at 0 instead of the measured face
    only_named: bool = False  # the preset changes only the AUs it names, on the measured face
    au_text: str = ""  # "AU04:0.6,AU12:0.7,R14:0.2", applied over the preset
    aus: AUVector | None = None  # AUs applied last (a whole vector, e.g. the app's sliders, is the whole target)
    engine: str = "warp"  # a name from aufx.engines.registry
    engine_options: Mapping[str, Any] = field(default_factory=dict)  # the engine's keyword options (e.g. config)
    seed: int | None = None  # for seeded engines (diffusion); None: the engine's default
    measure: bool = True  # re-detect the face in the output and read its AUs

    def __post_init__(self):
        registry.spec(self.engine)  # AUError naming the choices
        if self.preset:
            preset_vector(self.preset)
        if self.au_text:
            parse_au_text(self.au_text)
        object.__setattr__(self, "engine_options", MappingProxyType(dict(self.engine_options)))

    def target(self, measured: AUVector) -> AUVector:
        """Target AUs from the face's measured AUs.

        A preset replaces the whole expression: every AU goes to 0, then the prototype x intensity (a smiling face
        asked for "sad" stops smiling). Without a preset the start is the measured face (all zero with ``neutral``).
        ``au_text`` then ``aus`` apply on top either way. ``only_named`` keeps the measured face and changes only the
        AUs the preset names.
        """
        target = AUVector() if self.neutral else measured
        if self.preset:
            proto = preset_vector(self.preset, self.intensity, self.include_optional)
            target = target.updated(proto.compact(6)) if self.only_named and not self.neutral else proto
        if self.au_text:
            target = target.updated(parse_au_text(self.au_text))
        return target.updated(self.aus) if self.aus is not None else target

    @property
    def input_name(self) -> str:
        """The "input" of the metadata: the name given, else the path as given."""
        if self.name:
            return self.name
        return str(self.image) if isinstance(self.image, (str, Path)) else "image"

    def describe(self, result: EditResult, output: str | None = None, **extra: Any) -> dict:
        """The metadata of ``result``: what the result knows (engine, AUs, timings), then what was asked, then the
        entry point's ``extra`` (e.g. ``source``), which may override a value (``measured_by``)."""
        meta = result.metadata()
        meta["input"] = self.input_name
        if output is not None:
            meta["output"] = output
        meta.update(preset=self.preset, intensity=self.intensity if self.preset else None,
                    au_text=self.au_text if self.aus is None else result.target.to_text(),
                    only_named=self.only_named, seed=self.seed, faces_found=result.faces_found,
                    image_size=list(result.image_size))
        meta.update(extra)
        return meta
