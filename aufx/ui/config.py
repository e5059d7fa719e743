"""Every knob of the app in one place, with the reason for its default."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field


def _env_port() -> int:
    raw = os.environ.get("AUFX_PORT", "7860")
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"AUFX_PORT={raw!r} is not a port number") from None


@dataclass(frozen=True)
class LiveConfig:
    time_limit_s: int = 120  # one user's webcam stream may not hold the server longer than this
    max_sessions: int = 2  # live sessions at once: each owns a face tracker and about one core at camera rate
    idle_timeout_s: float = 10.0  # a session that sent no frame for this long is closed and its tracker freed
    max_side: int = 640  # frames (and the puppet portrait) at webcam resolution at most: enough for a projector
    analysis_max_side: int = 480  # the tracker sees at most this; 0.4 px mean landmark change from 640 (measured)
    field_max_side: int = 160  # the per-frame warp field: built every frame, so coarser than the Edit tab's 256
    jpeg_quality: int = 80  # the frames sent back: ~1 ms to encode at 640x480, ~40 kB


def _start_dirs() -> tuple[str, ...]:
    """Folders clients may name by default: where the app was started, and the system temp folder."""
    return (os.getcwd(), tempfile.gettempdir())


@dataclass(frozen=True)
class CacheConfig:
    """Result files (the app's folders and Gradio's cache) are deleted by age and, oldest first, by total size."""

    max_mb: int = 2048  # all cached files together; at ~1.4 MB per /edit_image call, about 1500 results
    max_age_s: int = 3600  # results are fetched at once; an hour is generous
    grace_s: float = 30.0  # files this young are never deleted for size (a client may still be downloading)
    sweep_every_s: float = 60.0  # besides the sweep before each new result


@dataclass(frozen=True)
class AppConfig:
    host: str = field(default_factory=lambda: os.environ.get("AUFX_HOST", "127.0.0.1"))  # never public unless asked
    port: int = field(default_factory=_env_port)
    share: bool = False  # a gradio.live tunnel exposes the lab's photos: only on explicit request
    max_file_size: str = "25mb"  # larger uploads are refused before they reach the decoder
    edit_concurrency: int = 2  # slider edits computed at once across users (the warp engine is CPU-bound)
    queue_max_size: int = 64  # requests waiting beyond this are refused instead of piling up
    state_ttl_s: int = 3600  # an idle session's image and analysis are dropped after this long
    cache: CacheConfig = field(default_factory=CacheConfig)  # result files: Gradio's sweep by age, ours by size too
    allowed_dirs: tuple[str, ...] = field(default_factory=_start_dirs)  # the only folders clients may name
    output_root: str = field(default_factory=os.getcwd)  # every folder a job writes to (Train runs) is inside
    large_image_pixels: int = 24_000_000  # images above this (>= 72 MB decoded) wait for a large-image slot
    large_image_slots: int = 1  # large images worked on at once: each needs ~3x its decoded size at the peak
    large_image_wait_s: float = 300.0  # a client waiting longer gets "busy, try again"
    preview_max_side: int = 1280  # the on-screen image; the download is always full resolution
    preview_quality: int = 92  # JPEG for the live preview: encodes in ~1 ms, unlike PNG (~60 ms at 512 px)
    slider_step: float = 0.01
    measure_with: str = "aufx"  # what the sliders start at and the output is measured with: "aufx" or "openface"
    openface_bin: str = field(default_factory=lambda: os.environ.get("OPENFACE_BIN", ""))  # the user's OpenFace 2.x
    live: LiveConfig = field(default_factory=LiveConfig)
