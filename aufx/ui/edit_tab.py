"""The Edit tab: a photo in; AU sliders and emotion presets; the edited photo out, live while a slider moves.

The photo is analysed once (/analyze) into a per-session EditSession. A slider move (/edit) re-runs only the warp
engine and skips re-measuring the output; releasing the slider (/edit_final) renders again with the chosen engine
(warp, or diffusion: /set_engine) and measures the result.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import gradio as gr

from aufx.au import AUVector
from aufx.model.presets import emotion_presets
from aufx.ui.au_panel import AUPanel, build_panel
from aufx.ui.components import photo_input, unchanged
from aufx.ui.config import AppConfig
from aufx.ui.engine_panel import EnginePanel, build_engine_panel, engine_choice
from aufx.ui.errors import NoImageError, client_error, user_errors
from aufx.ui.limits import large_images
from aufx.ui.paths import policy
from aufx.ui.session import EditSession, EngineChoice, Measurement, au_table, face_choices, presets_markdown

TABLE_HEADERS = ["AU", "Name", "Input", "Target", "Output"]
PRESET_INFO = ("A preset replaces the whole expression: every AU goes to 0 (neutral), then the preset's AUs are "
               "set to their prototype value x intensity. Fine-tune with the sliders afterwards. Moving this slider "
               "re-applies the last preset you clicked.")
MEASURE_INFO = ("OpenFace: the sliders start at your OpenFace's static reading and the output is measured with it "
                "on slider release (AU16, AU24, AU27, AU43, which it does not measure, stay with the AUFX estimator)."
                " AUFX neither ships nor downloads OpenFace (noncommercial licence): give the path of your build's "
                "FeatureExtraction (default $OPENFACE_BIN) and press Enter.")
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # a client may name another OpenFace binary only on these hosts
TEXT_INFO = "The target as text, e.g. AU04:0.6,AU12:0.7,R14:0.2 (0..1 = OpenFace _r / 5). Edit it and press Enter."


def _need(session: EditSession | None) -> EditSession:
    if session is None:
        raise NoImageError("Load a photo first (upload, webcam snapshot or paste).")
    return session


def _close(session: EditSession | None) -> None:
    if session is not None:
        session.close()


@dataclass
class EditTab:
    state: gr.State  # the EditSession; the Live tab reads its offsets
    engine: EnginePanel
    apply_engine: Callable  # chain onto an event that set the engine panel's values, so the session follows them


def build(cfg: AppConfig) -> EditTab:
    """The tab's components and events."""
    state = gr.State(None, time_to_live=cfg.state_ttl_s, delete_callback=_close)
    chosen = gr.State(EngineChoice(), time_to_live=cfg.state_ttl_s)  # kept across photos, set before one is loaded
    measuring = gr.State(Measurement(cfg.measure_with, cfg.openface_bin), time_to_live=cfg.state_ttl_s)  # likewise
    with gr.Row(equal_height=False):
        with gr.Column(scale=6):
            with gr.Row():
                image_in = photo_input(label="Photo (upload, webcam snapshot or paste)", type="filepath",
                                       image_mode=None, sources=["upload", "webcam", "clipboard"], height=230,
                                       scale=1, elem_id="photo-in")
                with gr.Column(scale=1, min_width=220):
                    faces = gr.Dropdown(label="Face", choices=[], interactive=True, elem_id="face-pick",
                                        info="Several faces: pick the one to edit (0 = largest).")
                    status = gr.Markdown("Load a photo with a face to start.", label="Status", elem_id="edit-status")
                    download_btn = gr.Button("Download PNG + JSON", variant="primary", elem_id="download-btn")
                    files = gr.File(label="Full-resolution PNG (AU vector embedded) + JSON", file_count="multiple",
                                    interactive=False, visible=False, elem_id="download-files")
            view = gr.ImageSlider(label="Before / after (drag the divider)", type="filepath", interactive=False,
                                  height=560, elem_id="before-after")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="AUs measured on the input, target, measured on the "
                                 "output (updated when a slider is released)", interactive=False, wrap=True,
                                 column_widths=["9%", "25%", "22%", "22%", "22%"], max_height=420,
                                 elem_id="au-table")
        with gr.Column(scale=5):
            presets = list(emotion_presets().items())
            buttons = {}
            for row in (presets[:4], presets[4:]):
                with gr.Row():
                    buttons.update({k: gr.Button(p["label"], size="sm", min_width=70, elem_id=f"preset-{k}")
                                    for k, p in row})
            preset_key = gr.Textbox(label="preset", visible=False)  # the /apply_preset API's preset name
            intensity_slider = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Preset intensity",
                                         info=PRESET_INFO, elem_id="preset-intensity")
            with gr.Row():
                neutral_btn = gr.Button("Neutralise (all AUs 0)", size="sm", elem_id="neutralise-btn")
                reset_btn = gr.Button("Reset to measured", size="sm", elem_id="reset-btn")
            au_text = gr.Textbox(label="Target AUs", info=TEXT_INFO, elem_id="au-text")
            engine_panel = build_engine_panel()
            with gr.Accordion("Measure with", open=False):
                measure_with = gr.Radio([("AUFX estimator", "aufx"), ("OpenFace 2.x (your own build)", "openface")],
                                        value=cfg.measure_with, label="Measure AUs with", elem_id="measure-with",
                                        info=MEASURE_INFO)
                openface_bin = gr.Textbox(value=cfg.openface_bin, label="OpenFace FeatureExtraction",
                                          placeholder="/path/to/OpenFace/build/bin/FeatureExtraction",
                                          elem_id="openface-bin")
            with gr.Column(elem_id="au-panel"):
                panel = build_panel(cfg)
            with gr.Accordion("Save / load presets; sources of the shipped ones", open=False):
                preset_name = gr.Textbox(label="Preset name", value="my preset")
                save_btn = gr.Button("Save the current AUs as a preset JSON", size="sm")
                saved_file = gr.File(label="Saved preset", interactive=False, visible=False)
                load_file = gr.File(label="Load a preset JSON (sets the target)", file_types=[".json"],
                                    type="filepath", height=90)
                gr.Markdown(presets_markdown())

    # The state is an output of every full update only to restart its time-to-live: the session is mutated in place.
    full = [*panel.components, view, table, au_text, status, state]

    def show(session: EditSession) -> dict:
        """Render and re-measure the session's target; set every output that depends on it."""
        result = session.render(measure=True)
        if session.engine_note:
            gr.Warning(session.engine_note)
        return {**panel.values(session.refresh_sliders()), view: session.before_after(),
                table: au_table(session, result), au_text: session.target.to_text(),
                status: f"{_describe(session)} {_timings(session, result)} AUs: {session.measured_by()}."
                + (f"\n\n**{session.measure_note}**" if session.measure_note else ""), state: session}

    @user_errors
    def analyze(image: str | None, session: EditSession | None, choice: EngineChoice, measurement: Measurement):
        """A new photo replaces the session; if it has no usable face, the previous session stays as it was."""
        if not image:
            _close(session)
            return {state: None, faces: gr.Dropdown(choices=[], value=None), view: None, table: None,
                    au_text: "", status: "Load a photo with a face to start."}
        with large_images(cfg).slot(image, gr.Info):  # a 100-MP photo waits while another is worked on
            fresh = EditSession.open(image, Path(image).name, cfg, measurement)
            fresh.engine = choice
            _close(session)
            return {faces: gr.Dropdown(choices=face_choices(fresh.editor), value=0), **show(fresh)}

    @user_errors
    def select_face(face_index: int, session: EditSession | None):
        session = _need(session)
        with session.lock:
            session.select_face(int(face_index))
            return show(session)

    @user_errors
    def edit(session: EditSession | None, **values: float):
        session = _need(session)
        with session.lock:
            if session.move_sliders(values) or session.result is None:
                session.render(measure=False)
            return session.before_after()

    @user_errors
    def edit_final(session: EditSession | None, **values: float):
        session = _need(session)
        with session.lock:
            session.move_sliders(values)
            return show(session)

    @user_errors
    def apply_preset(preset: str, intensity: float, session: EditSession | None):
        session = _need(session)
        with session.lock:
            session.apply_preset(preset, intensity)
            return show(session)

    @user_errors
    def set_intensity(intensity: float, session: EditSession | None):
        session = _need(session)
        with session.lock:
            if session.preset is None:
                return unchanged(full)
            session.apply_preset(session.preset, intensity)
            return show(session)

    @user_errors
    def neutralise(session: EditSession | None):
        session = _need(session)
        with session.lock:
            session.set_target(AUVector())
            return show(session)

    @user_errors
    def reset(session: EditSession | None):
        session = _need(session)
        with session.lock:
            session.set_target(session.measured)
            return show(session)

    @user_errors
    def set_aus(au_text: str, session: EditSession | None):
        session = _need(session)
        with session.lock:
            session.apply_text(au_text)
            return show(session)

    @user_errors
    def set_engine(engine: str, model: str, lora_path: str, controlnet_path: str, cond: str, strength: float,
                   guidance_scale: float, steps: int, few_step: bool, seed: int, crop_size: int,
                   session: EditSession | None, choice: EngineChoice):
        """The engine of the final pass; with a photo loaded, the current edit is rendered with it at once."""
        try:
            if engine == "diffusion":  # local weights only from the allowed folders
                model, lora_path, controlnet_path = (policy(cfg).model(t, what) or "" for t, what in (
                    (model, "Base model"), (lora_path, "LoRA file"), (controlnet_path, "ControlNet")))
            new = engine_choice(engine, model, lora_path, controlnet_path, cond, strength, guidance_scale, steps,
                                few_step, seed, crop_size)
        except ValueError as exc:
            raise client_error(exc) from None
        if session is None:
            return {chosen: new, status: f"Engine: {new.describe()}. Load a photo with a face to start."}
        with session.lock:
            if new == choice and new == session.engine:
                return {chosen: new}
            session.engine = new
            return {chosen: new, **show(session)}

    @user_errors
    def set_measurement(backend: str, binary: str, session: EditSession | None):
        """The instrument for the sliders' start and the output; kept for the next photo too."""
        try:
            new = Measurement(backend, (binary or "").strip())
            if new.openface_bin not in ("", cfg.openface_bin) and cfg.host not in LOOPBACK:
                raise ValueError("this app is reachable from the network, so it runs only the OpenFace given "
                                 "with OPENFACE_BIN when it was started")
        except ValueError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        if session is None:
            return {measuring: new, status: f"AUs: {new.source}. Load a photo with a face to start."}
        with session.lock:
            session.set_measurement(new)
            return {measuring: new, **show(session)}

    @user_errors
    def download(session: EditSession | None):
        session = _need(session)
        with session.lock:
            return [str(p) for p in session.download()]

    @user_errors
    def save_preset(name: str, session: EditSession | None):
        return str(_need(session).save_preset(name))

    @user_errors
    def load_preset(preset_file: str | None, session: EditSession | None):
        session = _need(session)
        if not preset_file:
            return unchanged(full)
        with session.lock:
            session.load_preset(preset_file)
            return show(session)

    sliders = panel.components
    keyed = dict(panel.sliders)
    quiet = dict(show_progress="hidden", concurrency_id="engine", concurrency_limit=cfg.edit_concurrency)
    image_in.change(analyze, [image_in, state, chosen, measuring], [faces, *full], api_name="analyze")
    gr.on([measure_with.input, openface_bin.submit], set_measurement, [measure_with, openface_bin, state],
          [*full, measuring], api_name="set_measurement", **quiet)
    engine_io = dict(fn=set_engine, inputs=[*engine_panel.inputs, state, chosen], outputs=[*full, chosen], **quiet)
    gr.on(engine_panel.triggers(), api_name="set_engine", trigger_mode="always_last", **engine_io)
    faces.input(select_face, [faces, state], full, api_name="select_face", **quiet)
    gr.on([s.input for s in sliders], edit, [state], [view], inputs_kwargs=keyed, api_name="edit",
          trigger_mode="always_last", **quiet)
    gr.on([s.release for s in sliders], edit_final, [state], full, inputs_kwargs=keyed, api_name="edit_final",
          trigger_mode="always_last", **quiet)
    for key, b in buttons.items():
        b.click(partial(apply_preset, key), [intensity_slider, state], full, api_visibility="private", **quiet)
    gr.on([], apply_preset, [preset_key, intensity_slider, state], full, api_name="apply_preset", **quiet)
    intensity_slider.release(set_intensity, [intensity_slider, state], full, api_name="set_intensity", **quiet)
    neutral_btn.click(neutralise, [state], full, api_name="neutralise", **quiet)
    reset_btn.click(reset, [state], full, api_name="reset", **quiet)
    au_text.submit(set_aus, [au_text, state], full, api_name="set_aus", **quiet)
    # The file boxes appear once they hold something; a separate UI-only step keeps the API's return a plain path.
    download_btn.click(download, [state], [files], api_name="download", concurrency_id="engine").success(
        _reveal, None, [files], api_visibility="private", queue=False)
    save_btn.click(save_preset, [preset_name, state], [saved_file], api_name="save_preset").success(
        _reveal, None, [saved_file], api_visibility="private", queue=False)
    load_file.upload(load_preset, [load_file, state], full, api_name="load_preset", **quiet)
    for region, box in panel.splits.items():
        _wire_split(panel, region, box, state)
    return EditTab(state, engine_panel, lambda event: event.success(api_visibility="private", **engine_io))


def _reveal():
    return gr.File(visible=True)


def _timings(session: EditSession, result) -> str:
    t = result.timings_ms
    text = (f"Face {session.face_index}: {result.engine} {t.get(result.engine, 0):.0f} ms, re-measured in "
            f"{t.get('measure_output', 0):.0f} ms.")
    if session.engine_note:
        text += f"\n\n**Diffusion unavailable, the warp result is shown.** {session.engine_note}"
    return text


def _describe(session: EditSession) -> str:
    h, w = session.editor.image.shape[:2]
    n = len(session.editor.faces)
    return (f"**{session.editor.name}**: {w}x{h}, {n} face{'s' if n != 1 else ''} found "
            f"(analysed in {session.editor.analysis_ms:.0f} ms).")


def _wire_split(panel: AUPanel, region: str, box: gr.Checkbox, state: gr.State) -> None:
    def toggle(split: bool, session: EditSession | None):
        values = None
        if session is not None:
            with session.lock:
                values = session.sync_sides(region)
        return panel.split_updates(region, split, values)

    box.input(toggle, [box, state], panel.split_outputs(region), api_name=f"split_{region}",
              show_progress="hidden")

