"""The Live tab: the webcam streamed through the engine at camera rate, for lab demos.

Mirror: your own face with an expression applied (a preset's AUs, or the offsets dialled in on the Edit tab).
Puppet: the AUs measured on your face drive an uploaded portrait. Start asks the server for a live session (its own
face tracker; refused with a message when the server's slots are taken); the page then streams over a WebSocket
(aufx/ui/live_stream.py, aufx/ui/static/live.js) and draws each edited frame, with the frame rate it actually
draws. Each stream ends at a time limit so one user cannot hold the server.
"""
from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import gradio as gr
import numpy as np

from aufx import live
from aufx.live import EDIT_OFFSETS, LiveHub, LiveSession, LiveSettings, SessionClosed, SessionsFull
from aufx.io.images import load_image
from aufx.pipeline import Editor
from aufx.model.presets import emotion_presets
from aufx.ui.components import photo_input
from aufx.ui.config import AppConfig
from aufx.ui.errors import user_errors
from aufx.ui.live_stream import hub_for
from aufx.ui.session import EditSession

MODES = ("Mirror", "Puppet")
STATIC = Path(__file__).resolve().parent / "static"
INTRO = """**Mirror** applies an expression to your own face; **Puppet** makes the portrait below copy your face's
AUs. Press **Start** (the browser asks for the camera); each stream stops after {limit} s (start it again to go on).
With a preset, its AUs are set on your face and every other AU follows you (Neutral sets all to 0); with *Edit tab
offsets*, the difference between the Edit tab's sliders and the AUs measured on its photo is added to your face
(taken when you press Start or change a control here). **Presenter view** (or a double click) shows the result
full screen; Esc leaves it."""

VIEW = """<div class="aufx-live">
  <div class="aufx-live-stage" data-role="stage"><canvas data-role="view" width="640" height="480"></canvas></div>
  <video data-role="cam" muted playsinline></video>
  <div class="aufx-live-bar">
    <span id="live-fps" data-role="fps">0.0 fps · not streaming</span>
    <button type="button" id="live-present" data-role="present">Presenter view (full screen)</button>
  </div>
  <div id="live-note" data-role="note">Press Start to stream your webcam.</div>
</div>"""
VIEW_CSS = """
.aufx-live-stage { background: #111; display: flex; justify-content: center; }
.aufx-live-stage canvas { max-width: 100%; height: auto; }
.aufx-live-stage:fullscreen { align-items: center; }
.aufx-live-stage:fullscreen canvas { width: 100vw; height: 100vh; object-fit: contain; max-width: none; }
.aufx-live video { position: absolute; width: 2px; height: 2px; opacity: 0; pointer-events: none; }
.aufx-live-bar { display: flex; justify-content: space-between; align-items: center; margin-top: 6px; }
.aufx-live-bar button { padding: 4px 10px; border: 1px solid #888; border-radius: 6px; }
"""


@dataclass
class LiveState:
    """Per-browser live state: its stream's session, the /live_frame client's session, the puppet portrait."""

    stream: str | None = None  # token of the page's WebSocket stream
    api: str | None = None  # token of the session /live_frame calls share
    portrait: Editor | None = None
    recent: deque = field(default_factory=lambda: deque(maxlen=20))  # /live_frame: (finished at, processing ms)

    def close(self, hub: LiveHub) -> None:
        for token in (self.stream, self.api):
            hub.close(token, "the page was closed")

    def tick(self, started: float) -> None:
        now = time.perf_counter()
        self.recent.append((now, (now - started) * 1000))

    def readout(self, mode: str, found: bool) -> str:
        """/live_frame: frames per second over the last (up to) 20 calls, and the median milliseconds of one."""
        times = [t for t, _ in self.recent]
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        ms = statistics.median(ms for _, ms in self.recent) if self.recent else 0.0
        face = "" if found else " · no face in view"
        return f"**{fps:.1f} fps** · {ms:.0f} ms per frame · {mode.lower()}{face}"


def _offsets(edit: EditSession | None) -> dict[str, float]:
    """Per-channel offsets dialled in on the Edit tab (its target minus the AUs measured on its photo)."""
    if edit is None:
        return {}
    measured = edit.measured
    return {c: edit.target[c] - measured[c] for c in edit.target}


def _settings(mode: str, source: str, intensity: float, state: LiveState, edit: EditSession | None) -> LiveSettings:
    offsets = _offsets(edit) if source == EDIT_OFFSETS else {}
    return LiveSettings(mode, source, float(intensity), offsets, state.portrait)


def build(cfg: AppConfig, edit_state: gr.State) -> None:
    hub = hub_for(cfg.live)
    live_state = gr.State(LiveState(), time_to_live=cfg.state_ttl_s, delete_callback=lambda s: s.close(hub))
    gr.Markdown(INTRO.format(limit=cfg.live.time_limit_s))
    with gr.Row():
        with gr.Column(scale=3):
            gr.HTML(html_template=VIEW, css_template=VIEW_CSS, js_on_load=(STATIC / "live.js").read_text(),
                    elem_id="live-view", apply_default_css=False)
        with gr.Column(scale=2):
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="live-start")
                stop = gr.Button("Stop", elem_id="live-stop")
            session_status = gr.Markdown("Not streaming.", elem_id="live-session")
            mode = gr.Radio(list(MODES), value="Mirror", label="Mode", elem_id="live-mode")
            choices = [("Edit tab offsets", EDIT_OFFSETS)] + [(p["label"], k) for k, p in emotion_presets().items()]
            source = gr.Dropdown(choices, value="happy", label="Expression (mirror)", elem_id="live-source")
            intensity_slider = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Preset intensity (mirror)")
            portrait_in = photo_input(label="Portrait to drive (puppet)", sources=["upload", "clipboard"],
                                      type="filepath", image_mode=None, height=200, elem_id="live-portrait")
            portrait_status = gr.Markdown("No portrait loaded: Puppet mode needs one.", elem_id="live-portrait-status")
    token = gr.Textbox(visible="hidden", elem_id="live-token")
    # /live_frame (one frame per call, for API clients) has inputs and outputs of its own, never shown
    frame_in = photo_input(type="numpy", visible=False)  # an unreadable frame is a short user error
    frame_out = gr.Image(format="jpeg", visible=False)
    readout = gr.Textbox(visible=False)
    controls = [mode, source, intensity_slider, live_state, edit_state]

    def push(mode: str, source: str, intensity: float, state: LiveState, edit: EditSession | None) -> None:
        """New settings to the running sessions of this page (a frame in progress finishes with the old ones)."""
        for tok in (state.stream, state.api):
            if (session := hub.get(tok)) is not None:
                session.settings = _settings(mode, source, intensity, state, edit)

    @user_errors
    def start_stream(mode: str, source: str, intensity: float, state: LiveState, edit: EditSession | None):
        hub.close(state.stream, "restarted")
        state.stream = None
        try:
            state.stream = hub.open(_settings(mode, source, intensity, state, edit)).token
        except SessionsFull as e:
            gr.Warning(str(e))
            return "", f"**Not started:** {e}", state
        return state.stream, f"Session started: it ends after {cfg.live.time_limit_s} s at most.", state

    def stop_stream(state: LiveState):
        hub.close(state.stream, "stopped")
        state.stream = None
        return "Stopped.", state

    @user_errors
    def set_portrait(portrait: str | None, state: LiveState):
        """Analyse the puppet portrait once (bounded to the live size); the state is returned so its TTL restarts."""
        if not portrait:
            state.portrait = None
            message = "No portrait loaded: Puppet mode needs one."
        else:
            name = Path(portrait).name
            state.portrait = Editor(live.bounded(load_image(portrait, name=name), cfg.live.max_side), name=name)
            message = f"Portrait **{name}** ready ({len(state.portrait.faces)} face(s); the largest moves)."
        for tok in (state.stream, state.api):
            if (session := hub.get(tok)) is not None:
                session.settings = replace(session.settings, portrait=state.portrait)
        return message, state

    @user_errors
    def live_frame(frame: np.ndarray | None, mode: str, source: str, intensity: float, state: LiveState,
                   edit: EditSession | None):
        """One frame through the Live pipeline, in this client's own session (opened on the first call)."""
        if frame is None:
            return gr.skip(), "Waiting for the webcam."
        started = time.perf_counter()
        settings = _settings(mode, source, intensity, state, edit)
        if mode == "Puppet" and settings.portrait is None:  # keep streaming: the user can load one now
            return gr.skip(), "**Puppet mode needs a portrait**: load one below."

        def own_session() -> LiveSession:
            session = hub.get(state.api)
            if session is None:
                try:
                    session = hub.open(settings)
                except SessionsFull as e:
                    raise gr.Error(str(e)) from None
                state.api = session.token
            session.settings = settings
            return session

        frame = live.bounded(frame, cfg.live.max_side)
        try:
            result = own_session().process(frame, time.monotonic())
        except SessionClosed:  # it reached its time limit or idle timeout since the last call: a new one
            state.api = None
            result = own_session().process(frame, time.monotonic())
        state.tick(started)
        return result.image, state.readout(mode, result.measured is not None)

    start.click(start_stream, controls, [token, session_status, live_state], api_name="live_start",
                api_visibility="private").success(None, [token], None, js="(t) => window.aufxLive?.start(t)")
    stop.click(stop_stream, [live_state], [session_status, live_state], api_name="live_stop",
               api_visibility="private", js="(...args) => { window.aufxLive?.stop(); return args; }")
    for control in (mode, source, intensity_slider):
        control.change(push, controls, None, api_visibility="private", show_progress="hidden")
    portrait_in.change(set_portrait, [portrait_in, live_state], [portrait_status, live_state], api_name="set_portrait")
    gr.on([], live_frame, [frame_in, *controls], [frame_out, readout], api_name="live_frame",
          concurrency_limit=cfg.live.max_sessions, concurrency_id="live")
