"""A reproducible zip of a stimulus folder: the same files give the same archive bytes.

Zip entries carry a modification time and permissions; both are fixed here (1980-01-01, 0644), entries are written
in the order given, and PNGs are stored (they are compressed already) while text is deflated at a fixed level.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from aufx.io.files import atomic_path

EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def write_zip(path: Path, root: Path, names: list[str]) -> Path:
    """Write ``names`` (paths relative to ``root``) into ``path``, via a temp file and a rename."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
            stored = name.lower().endswith(".png")
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(info, (root / name).read_bytes(), compresslevel=None if stored else 6)
    return path
