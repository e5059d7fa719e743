"""Fingerprints: of a file (manifests, run cards, engine parameters; streamed, so large weights fit), of a folder's
files (which code and data made a result) and of an image array's content (caches keyed by pixels)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def folder_digest(root: str | Path) -> str:
    """12 hex digits over every file under ``root`` (its path relative to ``root`` and its bytes, in path order;
    __pycache__ left out): equal folders, equal digests."""
    root = Path(root)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_file(path).encode())
    return h.hexdigest()[:12]


def array_digest(array: np.ndarray) -> str:
    """Content key of an array: the same shape, dtype and values give the same 32 hex digits."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.shape}{array.dtype}".encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()
