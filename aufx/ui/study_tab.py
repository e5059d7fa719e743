"""The Study tab: what will be here (issue: user studies from the app). No controls until it works."""
from __future__ import annotations

import gradio as gr

TEXT = """### User studies (coming)
This tab will turn a folder of generated stimuli into a self-contained study page (identification or pairwise
task, counterbalanced order) and merge participants' response files back into analysis tables.

Available today from Python and the command line: `aufx.study.export_study(...)` writes the page;
`python -m aufx.study.merge --manifest ... --responses ... --out ...` merges the responses."""


def build() -> None:
    gr.Markdown(TEXT)
