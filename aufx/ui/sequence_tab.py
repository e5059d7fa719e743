"""The Sequence tab: a portrait animated by an AU track, and a video edited frame by frame.

Both are the library's aufx.sequence functions (what `python -m aufx animate` and `edit-video` run), with a progress
bar, the result shown on the page and offered for download with its metadata. The API returns the video file and the
metadata (/animate, /edit_video); heavy jobs run one at a time so the Edit tab stays responsive.
"""
from __future__ import annotations

import functools
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Callable

import gradio as gr

from aufx import __version__
from aufx.model.presets import emotion_presets
from aufx.ui.components import photo_input
from aufx.ui.config import AppConfig
from aufx.ui.cache import SEQUENCE_DIR, sweeper
from aufx.ui.errors import client_error, guarded
from aufx.ui.limits import large_images

FORMATS = ["mp4", "gif"]
ANIMATE_INFO = """### Animate a portrait
An AU track drives the portrait: an ARKit JSONL recording (`.jsonl`), an OpenFace FeatureExtraction CSV (`.csv`) or
AU keyframes (`.json`, see `aufx/io/keyframes.py`). Track values are absolute targets: AUs the track leaves at 0 are
set to 0."""
SMOOTH_INFO = "One-Euro cutoff at rest against recording jitter; keyframes are authored, never smoothed."
VIDEO_INFO = """### Edit a video
The expression of the face in every frame, by AU text and/or a preset (as in the Edit tab, on top of the AUs measured
in each frame). MP4 keeps the source's audio; frames without a face are kept unchanged."""


def _format_errors() -> tuple[type[Exception], ...]:
    """Mistakes in the user's files; imported only when an error occurs (the readers load pandas and ffmpeg)."""
    from aufx.io.arkit import ARKitFormatError
    from aufx.io.keyframes import KeyframeError
    from aufx.io.openface import OpenFaceFormatError
    from aufx.io.video import VideoFormatError
    from aufx.sequence import SequenceError

    return ARKitFormatError, KeyframeError, OpenFaceFormatError, VideoFormatError, SequenceError


def _sequence_errors(fn: Callable) -> Callable:
    """User mistakes (bad track, unreadable video, unknown AU, no face) reach the page and the API as their short
    message; anything else as a short generic one (errors.guarded)."""

    @functools.wraps(fn)
    def shown(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _format_errors() as exc:
            raise client_error(exc) from None

    return guarded(shown, (FileNotFoundError,))


def build(cfg: AppConfig) -> None:
    heavy = dict(concurrency_id="sequence", concurrency_limit=1)
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown(ANIMATE_INFO)
            portrait = photo_input(label="Portrait", type="filepath", image_mode=None, height=240,
                                   sources=["upload", "clipboard"], elem_id="seq-portrait")
            track = gr.File(label="AU track (.jsonl, .csv or .json)", file_types=[".jsonl", ".csv", ".json"],
                            type="filepath", elem_id="seq-track")
            with gr.Row():
                animate_format = gr.Radio(FORMATS, value="mp4", label="Output")
                fps = gr.Number(0, label="Frame rate (0: the track's own)")
                smooth = gr.Number(1.0, label="Smoothing Hz (recordings; 0 off)", info=SMOOTH_INFO)
                face_index = gr.Number(0, precision=0, label="Face (0 = largest)")
            animate_btn = gr.Button("Animate", variant="primary", elem_id="seq-animate")
            animate_out = _result_view("seq-animate-out")
        with gr.Column():
            gr.Markdown(VIDEO_INFO)
            video = gr.Video(label="Video", sources=["upload"], format=None, include_audio=True, height=240,
                             elem_id="seq-video")
            au_text = gr.Textbox(label="Target AUs", placeholder="AU12:0.8,AU06:0.6")
            with gr.Row():
                presets = [("none", "")] + [(p["label"], k) for k, p in emotion_presets().items()]
                preset = gr.Dropdown(presets, value="", label="Preset")
                intensity = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Preset intensity")
                neutral = gr.Checkbox(False, label="Start from all AUs 0 (not the measured ones)")
            with gr.Row():
                video_format = gr.Radio(FORMATS, value="mp4", label="Output")
                video_smooth = gr.Number(1.0, label="Landmark smoothing Hz (0 off)")
            video_btn = gr.Button("Edit video", variant="primary", elem_id="seq-edit-video")
            video_out = _result_view("seq-video-out")

    def animate(portrait: str | None, track: str | None, output_format: str = "mp4", fps: float = 0.0,
                smooth_hz: float = 1.0, face_index: int = 0, progress=gr.Progress()):
        return animate_file(portrait, track, output_format, fps, smooth_hz, face_index, cfg, progress)

    def edit_video(video: str | None, au_text: str = "", preset: str = "", intensity: float = 1.0,
                   neutral: bool = False, output_format: str = "mp4", smooth_hz: float = 1.0,
                   progress=gr.Progress()):
        return edit_video_file(video, au_text, preset, intensity, neutral, output_format, smooth_hz, cfg, progress)

    animate_btn.click(animate, [portrait, track, animate_format, fps, smooth, face_index], animate_out[:2],
                      api_name="animate", **heavy).success(
        _preview, [animate_out[0]], animate_out[2:], api_visibility="private", queue=False)
    video_btn.click(edit_video, [video, au_text, preset, intensity, neutral, video_format, video_smooth],
                    video_out[:2], api_name="edit_video", **heavy).success(
        _preview, [video_out[0]], video_out[2:], api_visibility="private", queue=False)


def _result_view(elem_id: str) -> list:
    """[download file, metadata, MP4 player, GIF view]: the API returns the first two, the page shows the others."""
    shown_mp4 = gr.Video(label="Result", interactive=False, visible=False, elem_id=f"{elem_id}-video")
    shown_gif = gr.Image(label="Result", type="filepath", interactive=False, visible=False, elem_id=f"{elem_id}-gif")
    file = gr.File(label="Download", interactive=False, elem_id=f"{elem_id}-file")
    with gr.Accordion("Metadata", open=False):
        meta = gr.JSON(label="Metadata")
    return [file, meta, shown_mp4, shown_gif]


def _preview(path: str | None):
    gif = bool(path) and path.lower().endswith(".gif")
    return (gr.Video(value=None if gif else path, visible=bool(path) and not gif),
            gr.Image(value=path if gif else None, visible=gif))


# The jobs ------------------------------------------------------------------------------------------------------------
@_sequence_errors
def animate_file(portrait: str | None, track: str | None, output_format: str, fps: float, smooth_hz: float,
                 face_index: int, cfg: AppConfig, progress) -> tuple[str, dict]:
    """Render the portrait driven by the track; only recordings are smoothed (keyframes have no jitter)."""
    from aufx.io.smoothing import OneEuroConfig
    from aufx.pipeline import Editor
    from aufx.sequence import AnimateConfig, animate_portrait, load_track

    if not portrait or not track:
        raise gr.Error("Animate needs a portrait and an AU track file", print_exception=False)
    loaded = load_track(track)
    smooth_hz = 0.0 if Path(track).suffix.lower() == ".json" else float(smooth_hz or 0.0)
    config = AnimateConfig(float(fps) if fps else None, OneEuroConfig(min_cutoff=smooth_hz) if smooth_hz > 0 else None,
                           int(face_index or 0))
    out = _output(f"{Path(portrait).stem}_{Path(track).stem}", output_format, cfg)
    with large_images(cfg).slot(portrait, gr.Info):
        editor = Editor(portrait, name=Path(portrait).name)
        summary = animate_portrait(editor, loaded, out, config, _frames(progress, "animate"))
    return str(out), _metadata(summary, input=Path(portrait).name, track=Path(track).name, smooth_hz=smooth_hz,
                               face_index=config.face_index,
                               targets="absolute: each frame's AUs are the track's values; AUs it leaves at 0 are 0")


@_sequence_errors
def edit_video_file(video: str | None, au_text: str, preset: str, intensity: float, neutral: bool,
                    output_format: str, smooth_hz: float, cfg: AppConfig, progress) -> tuple[str, dict]:
    """Edit the face through the video: each frame's target is its measured AUs with the preset and AU text."""
    from aufx.request import EditRequest
    from aufx.sequence import VideoEditConfig, edit_video

    if not video:
        raise gr.Error("Edit video needs a video file", print_exception=False)
    # built first: a bad AU token or preset fails before any frame is decoded
    request = EditRequest(preset=preset or None, intensity=float(intensity), neutral=bool(neutral),
                          au_text=au_text or "")
    smooth_hz = float(smooth_hz or 0.0)
    default = VideoEditConfig().landmark_smoothing
    config = VideoEditConfig(replace(default, min_cutoff=smooth_hz) if smooth_hz > 0 else None)
    out = _output(f"{Path(video).stem}_aufx", output_format, cfg)
    summary = edit_video(video, out, request, config, _frames(progress, "edit video"))
    return str(out), _metadata(summary, input=Path(video).name, au_text=au_text or "", preset=preset or None,
                               intensity=float(intensity) if preset else None, neutral=bool(neutral),
                               smooth_hz=smooth_hz)


def _frames(progress, desc: str):
    """The library's progress(done, total) callback as a Gradio progress bar counted in frames."""
    return lambda done, total: progress((done, total), desc=desc, unit="frames")


def _output(stem: str, output_format: str, cfg: AppConfig) -> Path:
    """A fresh folder per result (never the input's); the sweeper first makes room under the cache bounds."""
    if output_format not in FORMATS:
        raise gr.Error(f"output format {output_format!r}: choose {' or '.join(FORMATS)}", print_exception=False)
    sweeper(cfg).sweep()
    folder = SEQUENCE_DIR / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / f"{stem}.{output_format}"


def _metadata(summary, **params) -> dict:
    """What was rendered and from what, as the CLI's sidecar has it."""
    return {"aufx_version": __version__, **summary.as_dict(), **params}
