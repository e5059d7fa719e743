"""The whole app: the tabs assembled into one Blocks, the queue configured, and a launch that stays local."""
from __future__ import annotations

import ipaddress
import socket

import gradio as gr

from aufx import __version__
from aufx.ui import batch_api, edit_tab, evaluate_tab, live_tab, sequence_tab, study_tab, train_tab
from aufx.ui import live_stream
from aufx.ui.cache import sweeper
from aufx.ui.config import AppConfig
from aufx.ui.paths import policy

HEADER = f"""## AUFX {__version__}: edit facial expressions by FACS Action Units
Sliders are AU intensities on a 0..1 scale (OpenFace `_r` / 5; FACS A trace 0.2 ... E maximum 1.0). Start values
are the AUs measured on your photo. Emotion presets are prototypes (Ekman, Friesen & Hager 2002; Cohn, Ambadar &
Ekman 2007), not ground truth. API: see the "Use via API" link at the bottom of the page."""

# System fonts: the default theme would fetch its web font from Google, and the app must work offline.
THEME = gr.themes.Default(font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])

# The AU sliders scroll inside their column, so the photo and the presets stay in view while you work.
CSS = "#au-panel { max-height: 72vh; overflow-y: auto; flex-wrap: nowrap; } #au-panel > * { flex: none; }"


def build_app(cfg: AppConfig = AppConfig()) -> gr.Blocks:
    sweep = (int(cfg.cache.sweep_every_s), cfg.cache.max_age_s)  # Gradio's own sweep by age; ours adds the size
    with gr.Blocks(title="AUFX", analytics_enabled=False, delete_cache=sweep) as demo:
        gr.Markdown(HEADER)
        with gr.Tabs() as tabs:
            with gr.Tab("Edit", id="edit"):
                edit = edit_tab.build(cfg)
            with gr.Tab("Live", id="live"):
                live_tab.build(cfg, edit.state)
            with gr.Tab("Sequence", id="sequence"):
                sequence_tab.build(cfg)
            with gr.Tab("Train", id="train") as train:
                train_tab.build(edit, tabs, train, cfg)
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate_tab.build(cfg)
            with gr.Tab("Study", id="study"):
                study_tab.build(cfg)
        batch_api.register(cfg)
    demo.queue(max_size=cfg.queue_max_size, default_concurrency_limit=cfg.edit_concurrency)
    sweeper(cfg).tracked = lambda: [f for files in list(demo.temp_file_sets) for f in list(files)]
    return demo


def exposure(cfg: AppConfig) -> str:
    """What a client on the network can reach, printed when the app listens beyond this machine."""
    return (f"AUFX listens on {cfg.host}:{cfg.port}: anyone who can reach this address can use every tab.\n"
            f"  {policy(cfg).describe()}\n"
            f"  uploads up to {cfg.max_file_size}; results kept at most {cfg.cache.max_mb} MB and "
            f"{cfg.cache.max_age_s} s; a Train run can use the GPU and the disk under the output root.\n"
            "  Narrow it with --allowed-dirs and --output-root, or bind 127.0.0.1.")


def launch(demo: gr.Blocks, cfg: AppConfig, block: bool = True):
    """Serve on cfg.host (127.0.0.1 unless told otherwise); a share link only when asked; bounded uploads."""
    if not ipaddress.ip_address(_host_ip(cfg.host)).is_loopback or cfg.share:
        print(exposure(cfg), flush=True)
    sweeper(cfg).start()
    return demo.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share, max_file_size=cfg.max_file_size,
                       prevent_thread_lock=not block, theme=THEME, css=CSS, ssr_mode=False, mcp_server=False,
                       pwa=False, enable_monitoring=False,
                       app_kwargs={"routes": live_stream.routes(cfg.live)})  # the Live tab's WebSocket


def _host_ip(host: str) -> str:
    """The address a host name binds to ("localhost" is loopback; "0.0.0.0" and names are not)."""
    try:
        return socket.gethostbyname(host) if host else "0.0.0.0"
    except OSError:
        return "0.0.0.0"
