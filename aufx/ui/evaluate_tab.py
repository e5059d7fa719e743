"""The Evaluate tab: what will be here (issue: evaluation in the app). No controls until it works."""
from __future__ import annotations

import gradio as gr

TEXT = """### Evaluation (coming)
This tab will score edited images against their sources (AU error: asked vs measured; identity similarity;
image quality; emotion recognised) and show the report without leaving the app.

Available today from the command line: `python -m eval.evaluate --refs SOURCES --gens OUTPUTS` writes
`metrics.json` and `report.html`."""


def build() -> None:
    gr.Markdown(TEXT)
