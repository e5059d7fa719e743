"""The app's result files bounded by age and total size, so a busy server cannot fill its disk.

Gradio's own ``delete_cache`` only knows age; at ~1.4 MB per /edit_image call a busy hour is tens of GB. The sweeper
deletes this app's files (its own result folders, and the uploads and outputs Gradio cached for this Blocks) older
than ``max_age_s``, then the oldest until the total is under ``max_mb``; files younger than ``grace_s`` stay (a client
may still be fetching them). It runs before every new result is written and on a timer.
"""
from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from aufx.ui.config import CacheConfig

API_DIR = Path(tempfile.gettempdir()) / "aufx-api"  # /edit_image results
SEQUENCE_DIR = Path(tempfile.gettempdir()) / "aufx-sequence"  # /animate and /edit_video results


class CacheSweeper:
    def __init__(self, cfg: CacheConfig, folders: Iterable[Path], tracked: Callable[[], Iterable[str]] = tuple):
        self.cfg = cfg
        self.folders = tuple(Path(f) for f in folders)  # everything below them is the app's
        self.tracked = tracked  # single files owned by the app elsewhere (Gradio's cache entries of this Blocks)
        self._lock = threading.Lock()
        self._timer: threading.Thread | None = None

    def files(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every file the sweeper owns."""
        paths = {p for f in self.folders if f.is_dir() for p in f.rglob("*")}
        paths.update(Path(p) for p in list(self.tracked()))
        out = []
        for p in paths:
            try:
                st = p.stat()
            except OSError:  # deleted meanwhile
                continue
            if p.is_file():
                out.append((st.st_mtime, st.st_size, p))
        return out

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self.files())

    def sweep(self) -> int:
        """Delete by age, then oldest first down to the size bound; returns the bytes left."""
        with self._lock:
            now, limit = time.time(), self.cfg.max_mb << 20
            files = sorted(self.files())
            total = sum(size for _, size, _ in files)
            for mtime, size, path in files:
                age = now - mtime
                if age < self.cfg.grace_s:
                    break  # sorted by age: every later file is younger still
                if age > self.cfg.max_age_s or total > limit:
                    _remove(path, self.folders)
                    total -= size
            return total

    def start(self) -> None:
        """Sweep every sweep_every_s in a daemon thread (it dies with the app)."""
        if self._timer is None:
            self._timer = threading.Thread(target=self._loop, name="aufx-cache-sweep", daemon=True)
            self._timer.start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.cfg.sweep_every_s)
            try:
                self.sweep()
            except OSError:  # a full or read-only disk: try again next time
                pass


def _remove(path: Path, roots: tuple[Path, ...]) -> None:
    """The file, and its folder when that is left empty (Gradio and the app keep one result per folder)."""
    try:
        path.unlink()
        if path.parent not in roots and not any(path.parent.iterdir()):
            os.rmdir(path.parent)
    except OSError:
        pass


@functools.cache
def sweeper(cfg) -> CacheSweeper:
    """The app's sweeper over its result folders, from its AppConfig; app_builder adds Gradio's files of the app."""
    return CacheSweeper(cfg.cache, (API_DIR, SEQUENCE_DIR))
