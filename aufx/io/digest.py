"""One way to fingerprint a file (manifests, run cards, engine parameters): streamed, so large weights fit."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
