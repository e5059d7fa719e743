"""/edit_image: one stateless call (image + AUs or a preset -> edited PNG + metadata) for batch scripts.

An API-only event (no trigger in the page) on hidden components, so Gradio still handles the file transfer both ways.
The analysis is cached by image content, so scripting many edits of one photo analyses it once.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr

from aufx.io.images import save_png
from aufx.pipeline import Editor, build_target
from aufx.ui.config import AppConfig
from aufx.ui.errors import user_errors

OUT_DIR = Path(tempfile.gettempdir()) / "aufx-api"


def _prune(folder: Path, keep_s: float) -> None:
    """Results are fetched by the client right away; older ones only fill the disk."""
    cutoff = time.time() - keep_s
    for p in folder.glob("*/*.png"):
        if p.stat().st_mtime < cutoff:
            shutil.rmtree(p.parent, ignore_errors=True)


def register(cfg: AppConfig) -> None:
    @user_errors
    def edit_image(image: str, au_text: str = "", preset: str = "", intensity: float = 1.0, face_index: int = 0,
                   neutral: bool = False) -> tuple[str, dict]:
        """Edit one face, as `python -m aufx edit` does: the measured face (all AUs 0 with ``neutral``), then the
        preset's AUs x intensity, then ``au_text``. Returns the full-resolution PNG and its metadata."""
        if not image:
            raise gr.Error("edit_image needs an image file")
        name = Path(image).name
        editor = Editor(image, name=name)
        index = int(face_index or 0)
        target = build_target(editor.measured(index), au_text or "", preset or None, float(intensity), bool(neutral))
        result = editor.edit(target, index, measure_output=True)
        meta = result.metadata(input=name, preset=preset or None, intensity=float(intensity) if preset else None,
                               au_text=au_text or "", faces_found=len(editor.faces),
                               image_size=list(editor.image.shape[:2]), source="aufx app /edit_image")
        OUT_DIR.mkdir(exist_ok=True)
        _prune(OUT_DIR, cfg.api_results_keep_s)
        out = save_png(OUT_DIR / uuid.uuid4().hex / f"{Path(name).stem}_aufx.png", result.image, meta)
        return str(out), meta

    with gr.Column(visible=False):
        inputs = [gr.File(label="image", type="filepath"), gr.Textbox(label="au_text"), gr.Textbox(label="preset"),
                  gr.Number(1.0, label="intensity"), gr.Number(0, precision=0, label="face_index"),
                  gr.Checkbox(False, label="neutral")]
        outputs = [gr.File(label="edited PNG"), gr.JSON(label="metadata")]
    gr.on([], edit_image, inputs, outputs, api_name="edit_image", concurrency_id="engine",
          concurrency_limit=cfg.edit_concurrency)
