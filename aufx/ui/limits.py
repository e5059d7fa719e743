"""How many large images the app works on at once: each needs about three times its decoded size at its peak
(the image, the edited copy, the analysis' working copies), so two 100-megapixel photos at once could exhaust a
small server. Requests for large images wait for a slot, and the waiting client is told so.
"""
from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from PIL import Image

from aufx.ui.errors import client_error


def pixels(path: str | Path | None) -> int:
    """Width x height from the file's header (nothing decoded); 0 when it is not an image PIL can open."""
    if not path:
        return 0
    try:
        with Image.open(path) as img:
            return img.width * img.height
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # the decoder will say what is wrong
        return 0


class LargeImageSlots:
    def __init__(self, threshold_pixels: int, slots: int, wait_s: float):
        self.threshold = threshold_pixels
        self.wait_s = wait_s
        self._slots = threading.BoundedSemaphore(slots)
        self._waiting = 0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, path: str | Path | None, notify: Callable[[str], None] = lambda _m: None):
        """Hold a slot while working on ``path`` if it is large; ``notify`` tells a waiting client why it waits."""
        n = pixels(path)
        if n <= self.threshold:
            yield
            return
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self._waiting += 1
                ahead = self._waiting
            notify(f"Waiting: the server works on one large image ({n / 1e6:.0f} MP) at a time and another is in "
                   f"progress ({ahead} waiting).")
            try:
                if not self._slots.acquire(timeout=self.wait_s):
                    raise client_error(f"the server is busy with other large images; try again in a few minutes "
                                       f"(images over {self.threshold / 1e6:.0f} MP are processed one at a time)")
            finally:
                with self._lock:
                    self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


@functools.cache
def large_images(cfg) -> LargeImageSlots:
    """The app's slots, from its AppConfig (one per configuration, shared by every tab)."""
    return LargeImageSlots(cfg.large_image_pixels, cfg.large_image_slots, cfg.large_image_wait_s)
