"""/edit_image: one stateless call (image + AUs or a preset -> edited PNG + metadata) for batch scripts.

An API-only event (no trigger in the page) on hidden components, so Gradio still handles the file transfer both ways.
The analysis is cached by image content, so scripting many edits of one photo analyses it once. Results go to the
app's result folder, which the cache sweeper keeps under its size and age bounds.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import gradio as gr

from aufx.io.images import save_png
from aufx.pipeline import run
from aufx.request import EditRequest
from aufx.ui.cache import API_DIR, sweeper
from aufx.ui.config import AppConfig
from aufx.ui.errors import number, user_errors
from aufx.ui.limits import large_images


def register(cfg: AppConfig) -> None:
    @user_errors
    def edit_image(image: str, au_text: str = "", preset: str = "", intensity: float = 1.0, face_index: int = 0,
                   neutral: bool = False, only_named: bool = False) -> tuple[str, dict]:
        """Edit one face, as `python -m aufx edit` does: a preset replaces the whole expression (``only_named``: it
        changes only the AUs it names on the measured face; ``neutral``: start from all AUs 0), then ``au_text``.
        Returns the full-resolution PNG and its metadata."""
        if not image:
            raise gr.Error("edit_image needs an image file")
        name = Path(image).name
        intensity, index = number(intensity, "intensity"), int(number(face_index or 0, "face_index"))
        request = EditRequest(image, name=name, face_index=index, preset=preset or None, intensity=intensity,
                              neutral=bool(neutral), only_named=bool(only_named), au_text=au_text or "")
        with large_images(cfg).slot(image, gr.Info):
            _, result = run(request)
            meta = request.describe(result, source="aufx app /edit_image")
            sweeper(cfg).sweep()  # room first: the new result is never among what goes
            out = save_png(API_DIR / uuid.uuid4().hex / f"{Path(name).stem}_aufx.png", result.image, meta)
        return str(out), meta

    with gr.Column(visible=False):
        inputs = [gr.File(label="image", type="filepath"), gr.Textbox(label="au_text"), gr.Textbox(label="preset"),
                  gr.Number(1.0, label="intensity"), gr.Number(0, precision=0, label="face_index"),
                  gr.Checkbox(False, label="neutral"), gr.Checkbox(False, label="only_named")]
        outputs = [gr.File(label="edited PNG"), gr.JSON(label="metadata")]
    gr.on([], edit_image, inputs, outputs, api_name="edit_image", concurrency_id="engine",
          concurrency_limit=cfg.edit_concurrency)
