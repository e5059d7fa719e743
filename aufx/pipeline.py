"""One edit, top to bottom: request -> image -> face analysis (cached) -> target AUs -> deformation -> engine
-> result (described by the request: aufx/request.py).

``Editor`` holds one image and its analysis, so a slider move re-runs only the engine; ``run(request)`` is the door
the CLI, the app, the batch API, the sequence tools and the stimulus builder all go through.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aufx import __version__
from aufx.au import AUVector
from aufx.engines import registry
from aufx.engines.base import Engine
from aufx.face.analysis import (AnalysisCache, FaceAnalysis, FaceNotFoundError, analysis_cache, analyze_faces,
                                no_face_message)
from aufx.io.images import load_image
from aufx.model.deform import deform
from aufx.model.estimate import SOURCE as AUFX_SOURCE
from aufx.model.estimate import estimate_after, estimate_aus
from aufx.resources import code_digest

if TYPE_CHECKING:
    from aufx.request import EditRequest


@dataclass(frozen=True)
class MatchConfig:
    min_overlap: float = 0.3  # intersection over union of face boxes above which a re-detected face is the edited one


@dataclass
class EditResult:
    image: np.ndarray  # (H, W, 3) uint8 RGB, full resolution
    target: AUVector
    measured_input: AUVector
    measured_output: AUVector | None  # None: not measured, or no face re-detected in the output
    face_index: int
    face: dict
    engine: str
    engine_params: dict
    faces_found: int  # faces in the image (face_index picks one)
    image_size: tuple[int, int]  # (H, W) px
    timings_ms: dict = field(default_factory=dict)

    def metadata(self) -> dict:
        """What the result itself knows (engine, AUs asked and measured, timings); ``EditRequest.describe`` adds
        what was asked and is the one description written to sidecars, PNG text, manifests and API replies."""
        return {
            "aufx_version": __version__,
            "aufx_code": code_digest(),  # which code made it: the version string stays while the engine changes
            "engine": self.engine,
            "engine_params": self.engine_params,
            "face_index": self.face_index,
            "face": self.face,
            "target_aus": self.target.compact(),
            "measured_input": self.measured_input.compact(),
            "measured_output": self.measured_output.compact() if self.measured_output is not None else None,
            "measured_by": AUFX_SOURCE,  # the app's OpenFace setting overrides it
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


class Editor:
    """An image analysed once; edit it as often as you like."""

    def __init__(self, image, name: str | None = None, cache: AnalysisCache | None = analysis_cache):
        t0 = time.perf_counter()
        self.name = name or (Path(image).name if isinstance(image, (str, Path)) else "image")
        self.image = load_image(image, name=self.name)
        self.faces: list[FaceAnalysis] = cache.get(self.image) if cache is not None else analyze_faces(self.image)
        self.analysis_ms = (time.perf_counter() - t0) * 1000
        # the image is a decoded copy of its own (not a caller's array) that an edit may be pasted into
        self.owns_image = self.image.flags.writeable and not (isinstance(image, np.ndarray)
                                                              and np.shares_memory(self.image, image))
        self.spent = False  # True once an edit was pasted into ``image`` itself (``edit(..., in_place=True)``)
        if not self.faces:
            raise FaceNotFoundError(no_face_message(self.name, self.image.shape[:2]))

    def face(self, index: int | None = None) -> FaceAnalysis:
        i = 0 if index is None else index
        if not 0 <= i < len(self.faces):
            raise FaceNotFoundError(f"{self.name}: face {i} requested but {len(self.faces)} found "
                                    f"(0 = largest, up to {len(self.faces) - 1})")
        return self.faces[i]

    def measured(self, index: int | None = None) -> AUVector:
        return estimate_aus(self.face(index))

    def engine(self, name: str = "warp", seed: int | None = None, **options: Any) -> Engine:
        """The process-wide shared engine (aufx/engines/registry.py)."""
        return registry.engine(name, seed, **options)

    def edit(self, target: AUVector, face_index: int | None = None, engine: str = "warp",
             measure_output: bool = True, seed: int | None = None, in_place: bool = False,
             **engine_options) -> EditResult:
        """Render ``target`` on one face with the named engine; ``measure_output`` re-detects the face in the
        output and reads its AUs. ``in_place``: paste the edit into this editor's image instead of a copy (a
        one-shot caller such as the CLI: a 100-megapixel photo then needs one full-size array, not two) when that
        image is the editor's own, never a caller's array; the editor is spent afterwards."""
        in_place = in_place and self.owns_image
        if self.spent:
            raise RuntimeError(f"{self.name}: this editor's image was already edited in place; load it again")
        i = 0 if face_index is None else face_index
        face = self.face(i)
        eng = self.engine(engine, seed, **engine_options)
        timings = {"analysis": self.analysis_ms}
        t0 = time.perf_counter()
        out = eng.render(self.image, face, target, deform(face, target), self.image if in_place else None)
        self.spent = in_place
        timings[eng.name] = (time.perf_counter() - t0) * 1000
        measured_out = None
        if measure_output:
            t2 = time.perf_counter()
            measured_out = measure_like(out, face)
            timings["measure_output"] = (time.perf_counter() - t2) * 1000
        timings["edit_total"] = (time.perf_counter() - t0) * 1000
        return EditResult(out, target, estimate_aus(face), measured_out, i, face.describe(), eng.name,
                          eng.params(), len(self.faces), tuple(self.image.shape[:2]), timings)

    def run(self, request: EditRequest, in_place: bool = False) -> EditResult:
        """The request's edit of this editor's image: its target from the face's measured AUs, its engine."""
        i = request.face_index
        return self.edit(request.target(self.measured(i)), i, request.engine, request.measure, request.seed,
                         in_place, **dict(request.engine_options))


def run(request: EditRequest, editor: Editor | None = None) -> tuple[Editor, EditResult]:
    """Analyse the request's image (or reuse ``editor``, already holding it) and edit it. An editor made here
    serves this one edit, so the edit is pasted into its own image (no second full-size array)."""
    if editor is not None:
        return editor, editor.run(request)
    editor = Editor(request.image, name=request.name)
    return editor, editor.run(request, in_place=True)


def match_face(image: np.ndarray, face: FaceAnalysis, cfg: MatchConfig = MatchConfig()) -> FaceAnalysis | None:
    """Re-detect an edited (H, W, 3) uint8 image and return the face that overlaps the edited one most (None if it
    is gone)."""
    faces = analyze_faces(image, near=face.box)
    x0, y0, x1, y1 = face.box

    def overlap(f: FaceAnalysis) -> float:
        a0, b0, a1, b1 = f.box
        iw, ih = max(0, min(x1, a1) - max(x0, a0)), max(0, min(y1, b1) - max(y0, b0))
        return iw * ih / max(1, face.area + f.area - iw * ih)

    best = max(faces, key=overlap, default=None)
    return best if best is not None and overlap(best) > cfg.min_overlap else None


def measure_like(image: np.ndarray, face: FaceAnalysis) -> AUVector | None:
    """AUs of the edited face in an output image: input AUs + the change between the two meshes."""
    after = match_face(image, face)
    return estimate_after(face, after) if after is not None else None
