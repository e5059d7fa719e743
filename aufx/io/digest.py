"""Fingerprints: of a file (manifests, run cards, engine parameters; streamed, so large weights fit) and of an
image array's content (caches keyed by pixels)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def array_digest(array: np.ndarray) -> str:
    """Content key of an array: the same shape, dtype and values give the same 32 hex digits."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.shape}{array.dtype}".encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()
