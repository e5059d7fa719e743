"""One edit, top to bottom: image -> face analysis (cached) -> engine(target AUs) -> composite -> result + metadata.

``Editor`` holds one image and its analysis, so a slider move re-runs only the engine; the CLI, the app, the batch
tools and the API all go through it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aufx import __version__
from aufx.au import AUError, AUVector, parse_au_text
from aufx.model.deform import deform
from aufx.engines.warp import WarpEngine
from aufx.model.estimate import SOURCE as AUFX_SOURCE
from aufx.model.estimate import estimate_after, estimate_aus
from aufx.face.analysis import (AnalysisCache, FaceAnalysis, FaceNotFoundError, analysis_cache, analyze_faces,
                                no_face_message)
from aufx.io.images import load_image
from aufx.model.presets import preset_vector

ENGINES = ("warp", "diffusion")


def build_target(measured: AUVector, au_text: str = "", preset: str | None = None, intensity: float = 1.0,
                 neutral: bool = False, include_optional: bool = False, only_named: bool = False) -> AUVector:
    """Target AUs, the one meaning shared by the CLI, the app, the API and the stimulus builder.

    A preset replaces the whole expression: every AU goes to 0, then the prototype x intensity (a smiling face
    asked for "sad" stops smiling). Without a preset the start is the measured face (all zero with ``neutral``).
    ``--au`` applies on top either way. ``only_named`` keeps the measured face and changes only the AUs the preset
    names (the behaviour before presets replaced the expression).
    """
    target = AUVector() if neutral else measured
    if preset:
        proto = preset_vector(preset, intensity, include_optional)
        target = target.updated(proto.compact(6)) if only_named and not neutral else proto
    return target.updated(parse_au_text(au_text)) if au_text else target


@dataclass
class EditResult:
    image: np.ndarray
    target: AUVector
    measured_input: AUVector
    measured_output: AUVector | None
    face_index: int
    face: dict
    engine: str
    engine_params: dict
    timings_ms: dict = field(default_factory=dict)

    def metadata(self, **extra: Any) -> dict:
        """The JSON sidecar / PNG text: everything needed to know what was asked and what was achieved."""
        meta = {
            "aufx_version": __version__,
            "engine": self.engine,
            "engine_params": self.engine_params,
            "face_index": self.face_index,
            "face": self.face,
            "target_aus": self.target.compact(),
            "measured_input": self.measured_input.compact(),
            "measured_output": self.measured_output.compact() if self.measured_output is not None else None,
            "measured_by": AUFX_SOURCE,  # the app's OpenFace setting overrides it through ``extra``
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        meta.update(extra)
        return meta


class Editor:
    """An image analysed once; edit it as often as you like."""

    def __init__(self, image, name: str | None = None, cache: AnalysisCache | None = analysis_cache):
        t0 = time.perf_counter()
        self.name = name or (Path(image).name if isinstance(image, (str, Path)) else "image")
        self.image = load_image(image, name=self.name)
        self.faces: list[FaceAnalysis] = cache.get(self.image) if cache is not None else analyze_faces(self.image)
        self.analysis_ms = (time.perf_counter() - t0) * 1000
        if not self.faces:
            raise FaceNotFoundError(no_face_message(self.name, self.image.shape[:2]))
        self._engines: dict[str, Any] = {}

    def face(self, index: int | None = None) -> FaceAnalysis:
        i = 0 if index is None else index
        if not 0 <= i < len(self.faces):
            raise FaceNotFoundError(f"{self.name}: face {i} requested but {len(self.faces)} found "
                                    f"(0 = largest, up to {len(self.faces) - 1})")
        return self.faces[i]

    def measured(self, index: int | None = None) -> AUVector:
        return estimate_aus(self.face(index))

    def engine(self, name: str = "warp", **options):
        if name not in ENGINES:
            raise AUError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")
        key = (name, tuple(sorted(options.items())))
        if key not in self._engines:
            self._engines[key] = shared_engine(name, **options)
        return self._engines[key]

    def edit(self, target: AUVector, face_index: int | None = None, engine: str = "warp",
             measure_output: bool = True, seed: int | None = None, **engine_options) -> EditResult:
        i = 0 if face_index is None else face_index
        face = self.face(i)
        timings = {"analysis": self.analysis_ms}
        t0 = time.perf_counter()
        d = deform(face, target)
        warped = self.engine("warp").edit(self.image, face, target, d)
        timings["warp"] = (time.perf_counter() - t0) * 1000
        out, eng = warped, self.engine("warp")
        if engine == "diffusion":
            t1 = time.perf_counter()
            eng = self.engine("diffusion", **engine_options)
            out = eng.refine(warped, face_mask(face, d), target, d.target_landmarks, seed)
            timings["diffusion"] = (time.perf_counter() - t1) * 1000
        measured_out = None
        if measure_output:
            t2 = time.perf_counter()
            measured_out = measure_like(out, face)
            timings["measure_output"] = (time.perf_counter() - t2) * 1000
        timings["edit_total"] = (time.perf_counter() - t0) * 1000
        return EditResult(out, target, estimate_aus(face), measured_out, i, face.describe(), eng.name,
                          eng.params(), timings)


def match_face(image: np.ndarray, face: FaceAnalysis) -> FaceAnalysis | None:
    """Re-detect an edited image and return the face that overlaps the edited one most (None if it is gone)."""
    faces = analyze_faces(image, near=face.box)
    x0, y0, x1, y1 = face.box

    def overlap(f: FaceAnalysis) -> float:
        a0, b0, a1, b1 = f.box
        iw, ih = max(0, min(x1, a1) - max(x0, a0)), max(0, min(y1, b1) - max(y0, b0))
        return iw * ih / max(1, face.area + f.area - iw * ih)

    best = max(faces, key=overlap, default=None)
    return best if best is not None and overlap(best) > 0.3 else None


def measure_like(image: np.ndarray, face: FaceAnalysis) -> AUVector | None:
    """AUs of the edited face in an output image: input AUs + the change between the two meshes."""
    after = match_face(image, face)
    return estimate_after(face, after) if after is not None else None


def face_mask(face: FaceAnalysis, d) -> np.ndarray:
    """Soft mask of the edited face (union of source and target face ovals), for engines that regenerate it."""
    import cv2

    from aufx.face.topology import topology

    h, w = face.image_size
    m = np.zeros((h, w), np.uint8)
    oval = list(topology().groups["face_oval"])
    for pts in (face.landmarks[oval, :2], d.target_landmarks[oval]):
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 255)
    k = max(3, int(face.pose.scale * 0.15) | 1)
    return cv2.GaussianBlur(m, (k, k), 0).astype(np.float32) / 255.0


_shared: dict = {}


def shared_engine(name: str, **options):
    """Engines are loaded once per process (the diffusion pipeline is expensive) and shared by every Editor."""
    key = (name, tuple(sorted(options.items())))
    if key not in _shared:
        if name == "warp":
            _shared[key] = WarpEngine()
        else:
            from aufx.engines.diffusion import DiffusionEngine

            _shared[key] = DiffusionEngine(**options)
    return _shared[key]
