"""The Edit tab's engine selector: the registry's engines (warp, the default; diffusion: the warp refined, with its
main settings).

A slider being dragged always shows the warp (milliseconds); the chosen engine renders the final pass, when the slider
is released. Nothing here imports torch: the diffusion engine loads on the first final pass that needs it.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from aufx.diffusion.config import CONDITIONS, DEFAULT_MODEL, DiffusionConfig
from aufx.engines import registry
from aufx.ui.session import EngineChoice

DEFAULTS = DiffusionConfig()
INFO = ("Diffusion refines the warp result when a slider is released (the warp is shown while you drag). Weights are "
        "read from local folders only; missing ones are reported and the warp result is kept.")


@dataclass
class EnginePanel:
    box: gr.Accordion
    engine: gr.Radio
    options: gr.Column  # the diffusion settings, shown only when diffusion is chosen
    model: gr.Textbox
    lora_path: gr.Textbox
    controlnet_path: gr.Textbox
    cond: gr.Radio
    strength: gr.Slider
    guidance_scale: gr.Slider
    steps: gr.Slider
    few_step: gr.Checkbox
    seed: gr.Number
    crop_size: gr.Number

    @property
    def inputs(self) -> list:
        """In the order of engine_choice's parameters (and of the /set_engine API)."""
        return [self.engine, self.model, self.lora_path, self.controlnet_path, self.cond, self.strength,
                self.guidance_scale, self.steps, self.few_step, self.seed, self.crop_size]

    def triggers(self) -> list:
        """Events that apply the settings: choices at once, sliders on release, text when it is committed."""
        texts = [self.model, self.lora_path, self.controlnet_path, self.seed, self.crop_size]
        return ([self.engine.input, self.cond.input, self.few_step.input]
                + [s.release for s in (self.strength, self.guidance_scale, self.steps)]
                + [t.submit for t in texts] + [t.blur for t in texts])


def build_engine_panel() -> EnginePanel:
    with gr.Accordion("Engine: warp (default) or diffusion", open=False) as box:
        engine = gr.Radio(list(registry.names()), value="warp", label="Engine", info=INFO, elem_id="engine")
        with gr.Column(visible=False) as options:
            model = gr.Textbox(DEFAULT_MODEL, label="Base model (local diffusers folder or Hugging Face id)",
                               elem_id="engine-model")
            lora_path = gr.Textbox("", label="AU LoRA file (lora_unet.safetensors; empty = base model)",
                                   elem_id="engine-lora")
            with gr.Row():
                controlnet_path = gr.Textbox("", label="ControlNet (folder or id; empty = none)", scale=3)
                cond = gr.Radio(list(CONDITIONS), value=DEFAULTS.cond, label="ControlNet condition", scale=2)
            with gr.Row():
                strength = gr.Slider(0.05, 1.0, value=DEFAULTS.strength, step=0.05, label="Strength",
                                     info="How much of the warp result is re-noised: low keeps geometry and "
                                          "identity.")
                guidance_scale = gr.Slider(1.0, 15.0, value=DEFAULTS.guidance_scale, step=0.5, label="Guidance")
            with gr.Row():
                steps = gr.Slider(1, 50, value=DEFAULTS.steps, step=1, label="Steps",
                                  info="Scheduler steps; steps x strength denoising steps run.")
                few_step = gr.Checkbox(DEFAULTS.few_step, label=f"Few-step ({DEFAULTS.few_step_steps} steps)")
            with gr.Row():
                seed = gr.Number(DEFAULTS.seed, precision=0, label="Seed")
                crop_size = gr.Number(DEFAULTS.crop_size, precision=0, step=64,
                                      label="Face crop size (px, multiple of 64)")
    engine.change(_show_options, [engine], [options], queue=False, api_visibility="private")
    return EnginePanel(box, engine, options, model, lora_path, controlnet_path, cond, strength, guidance_scale,
                       steps, few_step, seed, crop_size)


def _show_options(engine: str) -> gr.Column:
    return gr.Column(visible=engine == "diffusion")


def engine_choice(engine: str, model: str, lora_path: str, controlnet_path: str, cond: str, strength: float,
                  guidance_scale: float, steps: int, few_step: bool, seed: int, crop_size: int) -> EngineChoice:
    """The panel's values as an EngineChoice; settings that cannot run raise ValueError saying which."""
    registry.spec(engine)  # AUError (a ValueError) naming the choices
    if engine != "diffusion":  # the other engines have no settings in this panel
        return EngineChoice(engine)
    config = DiffusionConfig(model=(model or "").strip() or DEFAULT_MODEL, lora_path=_path(lora_path),
                             controlnet_path=_path(controlnet_path), cond=cond, strength=float(strength),
                             guidance_scale=float(guidance_scale), steps=int(steps), few_step=bool(few_step),
                             crop_size=int(crop_size or DEFAULTS.crop_size))
    return EngineChoice(engine, config, int(seed or 0))


def _path(text: str | None) -> str | None:
    return (text or "").strip() or None
