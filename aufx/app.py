"""The web app's command line: ``python -m aufx app`` (or the ``aufx app`` script of an install, or ``python app.py``
in a checkout) ``[--host 127.0.0.1] [--port 7860] [--share] [--max-file-size 25mb] [--allowed-dirs DIR ...]
[--output-root DIR]``.

Binds to 127.0.0.1 unless told otherwise (AUFX_HOST / --host), never opens a share link unless asked, sends no
analytics. Heavy libraries load on first use: MediaPipe with the first photo, torch never in warp mode.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

# Before numpy and gradio load: on small CPUs OpenBLAS threads contend with MediaPipe's and a 2 ms AU estimate takes
# 300+ ms; the app sends no analytics and downloads nothing.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

PROG = "python -m aufx app"


def parse_args(argv: list[str] | None = None, prog: str = PROG):
    from aufx.ui.config import AppConfig

    d = AppConfig()
    p = argparse.ArgumentParser(prog=prog, description="AUFX: edit facial expressions by FACS AUs.")
    p.add_argument("--host", default=d.host, help="address to bind (default %(default)s; env AUFX_HOST). "
                   "0.0.0.0 makes the app reachable from the network")
    p.add_argument("--port", type=int, default=d.port, help="port (default %(default)s; env AUFX_PORT)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    p.add_argument("--max-file-size", default=d.max_file_size, help="upload size limit (default %(default)s)")
    p.add_argument("--stream-time-limit", type=int, default=d.live.time_limit_s,
                   help="seconds one webcam stream may run (default %(default)s)")
    p.add_argument("--allowed-dirs", nargs="+", metavar="DIR", default=list(d.allowed_dirs),
                   help="the only server folders a client may name, reading or writing (default: the folder the "
                   "app was started in and the system temp folder; list them all to add one)")
    p.add_argument("--output-root", default=d.output_root, metavar="DIR",
                   help="every folder a job writes to (Train runs) must be inside it (default: the start folder)")
    p.add_argument("--cache-max-mb", type=int, default=d.cache.max_mb,
                   help="result files kept at most, all together (default %(default)s MB)")
    p.add_argument("--cache-max-age-s", type=int, default=d.cache.max_age_s,
                   help="result files are deleted after this long (default %(default)s s)")
    p.add_argument("--cache-grace-s", type=float, default=d.cache.grace_s,
                   help="files younger than this are never deleted for size (default %(default)s s)")
    p.add_argument("--large-image-mp", type=float, default=d.large_image_pixels / 1e6,
                   help="images above this many megapixels are worked on one at a time (default %(default)s)")
    return p.parse_args(argv)


def config_from_args(args):
    from dataclasses import replace

    from aufx.ui.config import AppConfig

    d = AppConfig()
    dirs = [Path(x).expanduser().resolve() for x in args.allowed_dirs]
    missing = [str(x) for x in dirs if not x.is_dir()]
    if missing:
        raise SystemExit(f"--allowed-dirs: no such folder: {', '.join(missing)}")
    root = Path(args.output_root).expanduser().resolve()
    if not any(root == x or root.is_relative_to(x) for x in dirs):
        raise SystemExit(f"--output-root {root} must be inside one of --allowed-dirs")
    cache = replace(d.cache, max_mb=args.cache_max_mb, max_age_s=args.cache_max_age_s, grace_s=args.cache_grace_s)
    return replace(d, host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size,
                   live=replace(d.live, time_limit_s=args.stream_time_limit), allowed_dirs=tuple(map(str, dirs)),
                   output_root=str(root), cache=cache, large_image_pixels=int(args.large_image_mp * 1e6))


def main(argv: list[str] | None = None, block: bool = True, prog: str = PROG):
    """Build and serve the app; with ``block=False`` return the running Blocks (tests close it)."""
    cfg = config_from_args(parse_args(argv, prog))
    from aufx.ui.app_builder import build_app, launch

    demo = build_app(cfg)
    launch(demo, cfg, block=block)
    return demo
