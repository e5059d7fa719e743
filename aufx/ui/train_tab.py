"""The Train tab: what will be here (issue: LoRA training of the diffusion engine). No controls until it works."""
from __future__ import annotations

import gradio as gr

TEXT = """### Training (coming)
This tab will fine-tune the diffusion engine on your own AU-annotated faces: choose an annotation CSV, start a LoRA
run, follow its loss and sample images, and load the result into the Edit tab.

Available today from the command line: `python -m aufx annotate` (= `python -m training.annotations`) turns
OpenFace 2.x CSVs into the annotation CSV (`image_path,AU01,...,AU45`, values 0..1) that training will read."""


def build() -> None:
    gr.Markdown(TEXT)
