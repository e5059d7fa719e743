"""AUFX web app: `python app.py [--host 127.0.0.1] [--port 7860] [--share] [--max-file-size 25mb]` (or `make app`).

Binds to 127.0.0.1 unless told otherwise (AUFX_HOST / --host), never opens a share link unless asked, sends no
analytics. Heavy libraries load on first use: MediaPipe with the first photo, torch never in warp mode.
"""
from __future__ import annotations

import argparse
import os
import sys

# Before numpy loads: on small CPUs OpenBLAS threads contend with MediaPipe's and a 2 ms AU estimate takes 300+ ms.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def parse_args(argv: list[str] | None = None):
    from aufx.ui.config import AppConfig

    d = AppConfig()
    p = argparse.ArgumentParser(prog="python app.py", description="AUFX: edit facial expressions by FACS AUs.")
    p.add_argument("--host", default=d.host, help="address to bind (default %(default)s; env AUFX_HOST). "
                   "0.0.0.0 makes the app reachable from the network")
    p.add_argument("--port", type=int, default=d.port, help="port (default %(default)s; env AUFX_PORT)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    p.add_argument("--max-file-size", default=d.max_file_size, help="upload size limit (default %(default)s)")
    p.add_argument("--stream-time-limit", type=int, default=d.live.time_limit_s,
                   help="seconds one webcam stream may run (default %(default)s)")
    return p.parse_args(argv)


def config_from_args(args):
    from dataclasses import replace

    from aufx.ui.config import AppConfig

    d = AppConfig()
    return replace(d, host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size,
                   live=replace(d.live, time_limit_s=args.stream_time_limit))


def main(argv: list[str] | None = None, block: bool = True):
    """Build and serve the app; with ``block=False`` return the running Blocks (tests close it)."""
    cfg = config_from_args(parse_args(argv))
    from aufx.ui.app_builder import build_app, launch

    demo = build_app(cfg)
    launch(demo, cfg, block=block)
    return demo


if __name__ == "__main__":
    main(sys.argv[1:])
