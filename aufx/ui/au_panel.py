"""The AU slider panel: one accordion per face region, one slider per AU, an L/R split per region."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from aufx.ui import au_controls
from aufx.ui.config import AppConfig


@dataclass
class AUPanel:
    sliders: dict[str, gr.Slider]  # by slider key, in au_controls.slider_keys() order
    side_rows: dict[str, gr.Row]  # by AU code: the hidden L/R pair of a bilateral AU
    splits: dict[str, gr.Checkbox]  # by region, for regions with bilateral AUs

    @property
    def components(self) -> list[gr.Slider]:
        return list(self.sliders.values())

    def values(self, values: dict[str, float]) -> dict:
        """Output mapping that sets every slider."""
        return {self.sliders[k]: v for k, v in values.items()}

    def split_outputs(self, region: str) -> list:
        specs = au_controls.region_specs()[region]
        return [self.sliders[s.key] for s in specs] + [self.side_rows[s.au.code] for s in specs
                                                         if s.side is None and s.au.bilateral]

    def split_updates(self, region: str, split: bool, values: dict[str, float] | None) -> dict:
        """Show the side pairs (or the linked sliders) of a region, with fresh values when there is a photo."""
        out: dict = {}
        for s in au_controls.region_specs()[region]:
            value = {} if values is None else {"value": values[s.key]}
            if s.side is None and s.au.bilateral:
                out[self.sliders[s.key]] = gr.Slider(visible=not split, **value)
                out[self.side_rows[s.au.code]] = gr.Row(visible=split)
            else:
                out[self.sliders[s.key]] = gr.Slider(**value)
        return out


def build_panel(cfg: AppConfig) -> AUPanel:
    sliders: dict[str, gr.Slider] = {}
    rows: dict[str, gr.Row] = {}
    splits: dict[str, gr.Checkbox] = {}
    for region, specs in au_controls.region_specs().items():
        with gr.Accordion(au_controls.REGION_LABELS.get(region, region), open=True):
            if au_controls.region_has_sides(region):
                splits[region] = gr.Checkbox(
                    label="L/R split", value=False, container=False,
                    info="A left and a right slider for each AU here (the subject's own sides), e.g. for a wink "
                         "or a one-sided smile.")
            by_au: dict[str, list[au_controls.SliderSpec]] = {}
            for s in specs:
                by_au.setdefault(s.au.code, []).append(s)
            for code, (linked, *sides) in by_au.items():
                sliders[linked.key] = _slider(linked, cfg)
                if sides:
                    with gr.Row(visible=False) as rows[code]:
                        for s in sides:
                            sliders[s.key] = _slider(s, cfg)
    ordered = {k: sliders[k] for k in au_controls.slider_keys()}  # regions interleave in catalogue order
    return AUPanel(ordered, rows, splits)


def _slider(spec: au_controls.SliderSpec, cfg: AppConfig) -> gr.Slider:
    return gr.Slider(0.0, 1.0, value=0.0, step=cfg.slider_step, label=spec.label, info=spec.info,
                     elem_id=f"au-{spec.key}", min_width=120)
