"""One browser session's edit: the photo analysed once, the current target AUs, the last result and its files.

Kept in gr.State, so a slider move re-runs only the engine on the cached analysis. No Gradio here: the tab wires it.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from aufx.au import ActionUnit, AUVector, catalogue
from aufx.diffusion.config import DiffusionConfig
from aufx.diffusion.errors import EngineUnavailable
from aufx.engines import registry
from aufx.io.files import atomic_path
from aufx.io.images import save_png
from aufx.io.openface import OPENFACE_AUS
from aufx.model.presets import emotion_presets, load_user_preset, save_user_preset
from aufx.openface_runner import SOURCES, OpenFaceError, engine_target, openface_start, shared_openface
from aufx.pipeline import Editor, EditResult
from aufx.request import EditRequest
from aufx.ui import au_controls
from aufx.ui.config import AppConfig


def write_preview(path: Path, rgb: np.ndarray, max_side: int, quality: int) -> Path:
    """Screen copy of an image: bounded size, JPEG (fast), written atomically so a reader never sees half a file."""
    if max(rgb.shape[:2]) > 2 * max_side:  # a huge photo: shrink it before PIL copies it at 4 bytes per pixel
        f = 2 * max_side / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)), interpolation=cv2.INTER_AREA)
    img = Image.fromarray(rgb)
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    with atomic_path(path) as tmp:
        img.save(tmp, format="JPEG", quality=quality)
    return path


def face_choices(editor: Editor) -> list[tuple[str, int]]:
    """Dropdown entries: every face with its box, largest first."""
    out = []
    for i, face in enumerate(editor.faces):
        x0, y0, x1, y1 = face.box
        out.append((f"{i}: {x1 - x0}x{y1 - y0} px at ({x0}, {y0})", i))
    return out


@dataclass(frozen=True)
class EngineChoice:
    """The engine of the final pass (slider release, preset, download), by its registry name, with its options."""

    name: str = "warp"
    diffusion: DiffusionConfig | None = None  # the diffusion engine's settings (its ``config`` option)
    seed: int = 0

    @property
    def options(self) -> dict:
        return {"config": self.diffusion} if self.diffusion is not None else {}

    def describe(self) -> str:
        if self.diffusion is None:
            return self.name
        lora = f", LoRA {Path(self.diffusion.lora_path).name}" if self.diffusion.lora_path else ""
        return f"{self.name} ({self.diffusion.model}{lora}, seed {self.seed})"


@dataclass(frozen=True)
class Measurement:
    """What reads the AUs: the sliders' start, "Reset to measured" and the output on slider release."""

    backend: str = "aufx"  # "aufx" (the AUFX estimator) or "openface" (the user's OpenFace 2.x FeatureExtraction)
    openface_bin: str = ""  # "" = $OPENFACE_BIN

    def __post_init__(self):
        if self.backend not in SOURCES:
            raise ValueError(f"measure with one of {', '.join(SOURCES)}, got {self.backend!r}")

    @property
    def source(self) -> str:
        return SOURCES[self.backend]


@dataclass(eq=False)
class EditSession:
    editor: Editor
    cfg: AppConfig
    workdir: Path
    face_index: int = 0
    target: AUVector = field(default_factory=AUVector)
    shown: dict[str, float] = field(default_factory=dict)  # slider values last sent to the UI
    preset: str | None = None  # the preset the intensity slider re-applies; cleared by any other edit
    intensity: float | None = None  # the preset's intensity, for the metadata
    result: EditResult | None = None
    engine: EngineChoice = field(default_factory=EngineChoice)
    engine_note: str = ""  # why the last final pass kept the warp result (e.g. diffusion weights missing)
    measurement: Measurement = field(default_factory=Measurement)
    _starts: dict = field(default_factory=dict, repr=False)  # (measurement, face index) -> (AUs it reads, note)
    _output_note: str = ""  # why the last output was not read by OpenFace
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)  # handlers hold it across render

    @classmethod
    def open(cls, image, name: str, cfg: AppConfig, measurement: Measurement | None = None) -> "EditSession":
        editor = Editor(image, name=name)
        workdir = Path(tempfile.mkdtemp(prefix="aufx-session-"))
        write_preview(workdir / "before.jpg", editor.image, cfg.preview_max_side, cfg.preview_quality)
        session = cls(editor, cfg, workdir, measurement=measurement or Measurement())
        session.select_face(0)
        return session

    # State -------------------------------------------------------------------------------------------------------
    @property
    def measured(self) -> AUVector:
        """The face as the chosen instrument reads it (OpenFace: its 17 AUs, the estimator for the others)."""
        return self._start()[0]

    @property
    def measure_note(self) -> str:
        """Why OpenFace's numbers are not shown (binary missing or failing, no face found); "" when they are."""
        return self._start()[1] or self._output_note

    def _start(self) -> tuple[AUVector, str]:
        key = (self.measurement, self.face_index)
        if key not in self._starts:
            self._starts[key] = self.editor.measured(self.face_index), ""
            if self.measurement.backend == "openface":
                readings, note = self._openface(self.editor.image, self.editor.faces)
                for i, r in enumerate(readings or [None] * len(self.editor.faces)):
                    self._starts[(self.measurement, i)] = (
                        openface_start(r, self.editor.measured(i)),
                        note or ("" if r else "OpenFace found no face here: the AUFX estimator's reading is shown."))
        return self._starts[key]

    def set_measurement(self, measurement: Measurement) -> dict[str, float]:
        """Switch instruments; AUs already changed keep their change, the rest start at the new reading."""
        before = self.measured
        self.measurement, self._output_note = measurement, ""
        self._starts.pop((measurement, self.face_index), None)  # a retry after fixing the binary reads again
        return self.set_target(engine_target(self.target, before, self.measured), self.preset, self.intensity)

    def _openface(self, image: np.ndarray, faces) -> tuple[list | None, str]:
        """OpenFace's readings of faces, or None and the reason where it cannot run."""
        try:
            return shared_openface(self.measurement.openface_bin or None).read_faces(image, faces), ""
        except OpenFaceError as exc:
            return None, f"{exc} The AUFX estimator's reading is shown."

    def measured_by(self) -> str:
        if self.measurement.backend == "aufx" or self.measure_note:
            return SOURCES["aufx"]
        others = ", ".join(a.code for a in catalogue() if a.code not in OPENFACE_AUS)
        return f"{self.measurement.source} ({others}: {SOURCES['aufx']})"

    def engine_aus(self) -> AUVector:
        """What the editor is asked for: the target itself, or on OpenFace's scale the same change from the
        estimator's reading (the engine starts from the estimator)."""
        if self.measurement.backend == "aufx":
            return self.target
        return engine_target(self.target, self.measured, self.editor.measured(self.face_index))

    def select_face(self, index: int) -> None:
        self.editor.face(index)  # raises FaceNotFoundError for an index out of range
        self.face_index = index
        self.set_target(self.measured)

    def set_target(self, target: AUVector, preset: str | None = None,
                   intensity: float | None = None) -> dict[str, float]:
        """Replace the whole target (preset, reset, neutralise, loaded file); returns what the sliders must show."""
        self.target, self.preset, self.intensity = target, preset, intensity
        return self.refresh_sliders()

    def refresh_sliders(self) -> dict[str, float]:
        """Every slider's value for the current target; call only when all sliders are sent to the UI."""
        self.shown = au_controls.slider_values(self.target)
        return self.shown

    def apply_preset(self, name: str, intensity: float) -> dict[str, float]:
        """The preset on a neutral face: every AU 0, then the preset's AUs at prototype value x intensity."""
        key = name.strip().lower()
        target = EditRequest(preset=key, intensity=intensity, neutral=True).target(self.measured)
        return self.set_target(target, preset=key, intensity=intensity)

    def apply_text(self, au_text: str) -> dict[str, float]:
        """AU text (``AU12:0.8,R14:0.2``) on top of the current target: only the named AUs change."""
        return self.set_target(EditRequest(au_text=au_text).target(self.target))

    def move_sliders(self, values: dict[str, float | None]) -> bool:
        """A slider event: apply the sliders that moved; False when nothing moved (no edit needed)."""
        changes = au_controls.moved(values, self.shown)
        if not changes:
            return False
        self.target = self.target.updated(changes)
        self.shown.update(changes)
        self.preset = self.intensity = None
        return True

    def sync_sides(self, region: str) -> dict[str, float]:
        """Fresh values for a region's sliders when its L/R split is toggled (hidden sliders may be stale)."""
        fresh = au_controls.slider_values(self.target)
        keys = [s.key for s in au_controls.region_specs()[region]]
        self.shown.update({k: fresh[k] for k in keys})
        return {k: fresh[k] for k in keys}

    # Rendering ---------------------------------------------------------------------------------------------------
    def request(self, engine: EngineChoice | None = None, measure: bool = True) -> EditRequest:
        """The current edit as a request: the sliders' whole target (on the engine's scale), from the chosen engine
        (``engine``; default the warp)."""
        engine = engine or EngineChoice()
        return EditRequest(self.editor.image, name=self.editor.name, face_index=self.face_index, preset=self.preset,
                           intensity=1.0 if self.intensity is None else self.intensity, neutral=True,
                           aus=self.engine_aus(), engine=engine.name, engine_options=engine.options,
                           seed=engine.seed if registry.spec(engine.name).seeded else None, measure=measure)

    def render(self, measure: bool) -> EditResult:
        """Run the engine on the cached analysis. The live pass is always the warp (fast enough to follow a slider);
        ``measure`` marks the final pass: refined by the chosen engine and re-measured."""
        with self.lock:
            result = self._final() if measure else self.editor.run(self.request(measure=False))
            if self.measurement.backend != "aufx":
                result = self._read_output(result, measure)
            self.result = result
            write_preview(self.workdir / "after.jpg", result.image, self.cfg.preview_max_side,
                          self.cfg.preview_quality)
        return result

    def _read_output(self, result: EditResult, measure: bool) -> EditResult:
        """The result on the chosen instrument's scale: the asked target, the input and (final pass) the output as
        it reads them."""
        out = result.measured_output
        if measure and out is not None and not self.measure_note:
            readings, self._output_note = self._openface(result.image, [self.editor.face(self.face_index)])
            out = openface_start(readings[0], out) if readings is not None else out
        return replace(result, target=self.target, measured_input=self.measured, measured_output=out)

    def _final(self) -> EditResult:
        """The chosen engine's result; when diffusion cannot run here, the warp result and the reason why."""
        self.engine_note = ""
        if self.engine.name != "warp":
            try:
                return self.editor.run(self.request(self.engine))
            except EngineUnavailable as exc:
                self.engine_note = str(exc)
        return self.editor.run(self.request())

    def before_after(self) -> tuple[str, str]:
        return str(self.workdir / "before.jpg"), str(self.workdir / "after.jpg")

    def final_result(self) -> EditResult:
        """The measured result for the current target (recomputed if the last pass was a live one)."""
        r = self.result
        measured = r is not None and "measure_output" in r.timings_ms
        if not measured or r.target != self.target or r.face_index != self.face_index:
            r = self.render(measure=True)
        return r

    # Files -------------------------------------------------------------------------------------------------------
    def metadata(self, result: EditResult) -> dict:
        engine = self.engine if result.engine == self.engine.name else EngineChoice()
        return self.request(engine).describe(result, source="aufx app", measured_by=self.measured_by(),
                                             **({"engine_target_aus": self.engine_aus().compact()}
                                                if self.measurement.backend != "aufx" else {}))

    def download(self) -> tuple[Path, Path]:
        """Full-resolution PNG with the AU vector in its 'aufx' text chunk, and the same metadata as a sidecar."""
        result = self.final_result()
        meta = self.metadata(result)
        stem = Path(self.editor.name).stem or "image"
        png = save_png(self.workdir / f"{stem}_aufx.png", result.image, meta)
        sidecar = self.workdir / f"{stem}_aufx.png.json"
        sidecar.write_text(json.dumps(meta, indent=2))
        return png, sidecar

    def save_preset(self, name: str) -> Path:
        clean = "".join(c if c.isalnum() or c in "-_" else "_" for c in name.strip()) or "preset"
        return save_user_preset(self.workdir / f"{clean}.json", name.strip() or clean, self.target,
                                note=f"saved from the AUFX app on {self.editor.name}")

    def load_preset(self, path: str | Path) -> dict[str, float]:
        _name, vector = load_user_preset(path)
        return self.set_target(vector)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def au_table(session: EditSession, result: EditResult | None) -> list[list[str]]:
    """One row per AU: measured on the input, target, measured on the output; both sides shown where they differ."""
    out = result.measured_output if result is not None else None
    return [[au.code, au.name, _cell(session.measured, au), _cell(session.target, au), _cell(out, au)]
            for au in catalogue()]


def _cell(vec: AUVector | None, au: ActionUnit) -> str:
    if vec is None:
        return "–"
    text = f"{vec.au(au.code):.2f}"
    if au.bilateral:
        left, right = (vec[c] for c in au.channels())
        if abs(left - right) >= 0.01:
            text += f" (L {left:.2f} R {right:.2f})"
    return text


def presets_markdown() -> str:
    """The shipped prototypes with their AUs and sources, for the UI."""
    lines = ["| Preset | AUs (0..1) | Source |", "|---|---|---|"]
    for p in emotion_presets().values():
        aus = ", ".join(f"{k} {v:g}" for k, v in p["aus"].items()) or "all 0"
        opt = p.get("optional")
        if opt:
            aus += " (optional: " + ", ".join(f"{k} {v:g}" for k, v in opt.items()) + ")"
        lines.append(f"| {p['label']} | {aus} | {p['source']} |")
    return "\n".join(lines)
