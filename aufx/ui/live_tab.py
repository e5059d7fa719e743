"""The Live tab: the webcam streamed through the engine, for lab demos.

Mirror: your own face with an expression applied (a preset's AUs, or the offsets dialled in on the Edit tab).
Puppet: the AUs measured on your face drive an uploaded portrait. Each stream stops after a time limit so one user
cannot hold the server; a frame that arrives while one is processed replaces the waiting one (no backlog).
"""
from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np

from aufx import live
from aufx.pipeline import Editor
from aufx.presets import emotion_presets
from aufx.ui.components import photo_input
from aufx.ui.config import AppConfig
from aufx.ui.errors import user_errors
from aufx.ui.session import EditSession

EDIT_OFFSETS = "edit"
MODES = ("Mirror", "Puppet")
INTRO = """**Mirror** applies an expression to your own face; **Puppet** makes the portrait below copy your face's
AUs. Press the record button on the webcam to start; each stream stops after {limit} s (start it again to go on).
With a preset, its AUs are set on your face and every other AU follows you (Neutral sets all to 0); with *Edit tab
offsets*, the difference between the Edit tab's sliders and the AUs measured on its photo is added to your face."""


@dataclass
class LiveSession:
    """Per-browser live state: the puppet portrait (analysed once) and the recent frames for the read-out."""

    portrait: Editor | None = None
    recent: deque = field(default_factory=lambda: deque(maxlen=20))  # (finished at, processing ms)

    def tick(self, started: float) -> None:
        now = time.perf_counter()
        self.recent.append((now, (now - started) * 1000))

    def readout(self, mode: str, found: bool) -> str:
        """Frames per second over the last (up to) 20 frames, and the median processing time of one frame."""
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


def build(cfg: AppConfig, edit_state: gr.State) -> None:
    live_state = gr.State(LiveSession(), time_to_live=cfg.state_ttl_s)
    gr.Markdown(INTRO.format(limit=cfg.live.time_limit_s))
    with gr.Row():
        with gr.Column():
            cam = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy", elem_id="live-cam",
                           webcam_options=gr.WebcamOptions(mirror=True), height=420)
        with gr.Column():
            out = gr.Image(label="Live result", format="jpeg", interactive=False, elem_id="live-out", height=420)
            fps = gr.Markdown("Not streaming.", label="Frame rate", elem_id="live-fps")
    with gr.Row():
        mode = gr.Radio(list(MODES), value="Mirror", label="Mode", elem_id="live-mode")
        choices = [("Edit tab offsets", EDIT_OFFSETS)] + [(p["label"], k) for k, p in emotion_presets().items()]
        source = gr.Dropdown(choices, value="happy", label="Expression (mirror)", elem_id="live-source")
        intensity_slider = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Preset intensity (mirror)")
    with gr.Row():
        portrait_in = photo_input(label="Portrait to drive (puppet)", sources=["upload", "clipboard"],
                                  type="filepath", image_mode=None, height=240, elem_id="live-portrait")
        portrait_status = gr.Markdown("No portrait loaded: Puppet mode needs one.", label="Portrait")

    @user_errors
    def set_portrait(portrait: str | None, session: LiveSession):
        """Analyse the puppet portrait once; the state is returned so its time-to-live restarts."""
        if not portrait:
            session.portrait = None
            return "No portrait loaded: Puppet mode needs one.", session
        session.portrait = Editor(portrait, name=Path(portrait).name)
        n = len(session.portrait.faces)
        return f"Portrait **{session.portrait.name}** ready ({n} face(s); the largest moves).", session

    @user_errors
    def live_frame(frame: np.ndarray | None, mode: str, source: str, intensity: float, session: LiveSession,
                   edit: EditSession | None):
        if frame is None:
            return gr.skip(), "Waiting for the webcam."
        started = time.perf_counter()
        frame = live.bounded(frame, cfg.live.max_side)
        if mode == "Puppet":
            if session.portrait is None:  # keep streaming: the user can load one now
                return gr.skip(), "**Puppet mode needs a portrait**: load one below."
            image, measured = live.puppet(frame, session.portrait)
        elif source == EDIT_OFFSETS:
            offsets = _offsets(edit)
            image, measured = live.mirror(frame, lambda m: live.offset_target(m, offsets))
        else:
            image, measured = live.mirror(frame, lambda m: live.preset_target(m, source, intensity))
        session.tick(started)
        return image, session.readout(mode, measured is not None)

    portrait_in.change(set_portrait, [portrait_in, live_state], [portrait_status, live_state],
                       api_name="set_portrait")
    inputs = [cam, mode, source, intensity_slider, live_state, edit_state]
    cam.stream(live_frame, inputs, [out, fps], api_name="live_stream", api_visibility="private",
               time_limit=cfg.live.time_limit_s, stream_every=cfg.live.stream_every_s,
               concurrency_limit=cfg.live.concurrency, concurrency_id="live", show_progress="hidden")
    # The same step for one frame at a time, as a plain event: API clients cannot follow a stream.
    gr.on([], live_frame, inputs, [out, fps], api_name="live_frame", concurrency_id="live")
