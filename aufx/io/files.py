"""Files that appear complete or not at all: every writer of AUFX results goes through ``atomic_path``.

The content is written under a temporary name beside the target (``<name>.part``, or ``<name>.part<suffix>`` for
encoders that pick the format by the extension: OpenCV, ffmpeg), then renamed onto it, so a reader, a resumed
stimulus build or a cache sweeper never sees half a file; a failed write leaves no temp file behind.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TEMP = ".part"  # the temp-name marker; resumed runs delete leftovers named *.part


@contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (its folder created) to write; renamed onto ``path`` when the block ends,
    removed when it raises. ``keep_suffix``: the temp name ends with the target's extension too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TEMP + (path.suffix if keep_suffix else ""))
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
