"""Which server folders a client of the app may name: read inside ``--allowed-dirs``, write inside the output root.

Every folder or file path typed into a tab or sent to an API endpoint goes through ``PathPolicy``. A refused path gets
the same message whether or not it exists, and messages show the path as the client typed it (shortened), never the
server's resolved path.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

MAX_SHOWN = 80  # characters of a client's path echoed back in a message
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # "org/name": a Hugging Face model id, not a server path


class PathRefused(ValueError):
    """A client named a path outside the folders the app may use, or one that is not there."""


def shown(text: str) -> str:
    """The client's own text in backticks (errors.client_message leaves it as typed), cut to MAX_SHOWN characters."""
    text = text.strip().replace("`", "'")
    return f"`{text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 1] + '…'}`"


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


@dataclass(frozen=True)
class PathPolicy:
    allowed: tuple[Path, ...]  # resolved folders whose contents clients may read (and write under output_root)
    output_root: Path  # resolved; every folder a job writes to must be inside it

    @classmethod
    def of(cls, allowed_dirs, output_root) -> "PathPolicy":
        allowed = tuple(Path(d).expanduser().resolve() for d in allowed_dirs)
        return cls(allowed, Path(output_root).expanduser().resolve())

    def resolve(self, text: str, what: str) -> Path:
        """The path a client typed, resolved on the server and inside the allowed folders (existence unchecked)."""
        if "\0" in text:
            raise PathRefused(f"{what}: not a valid path")
        path = Path(text.strip()).expanduser().resolve()
        if not _under(path, self.allowed):
            raise PathRefused(f"{what}: {shown(text)} is outside the folders this app may use (the server's "
                              "--allowed-dirs)")
        return path

    def read(self, text: str | None, what: str, folder: bool = True) -> Path | None:
        """An existing folder (or file) to read; None for an empty field."""
        if not text or not text.strip():
            return None
        path = self.resolve(text, what)
        if not (path.is_dir() if folder else path.is_file()):
            raise PathRefused(f"{what}: no {'folder' if folder else 'file'} at {shown(text)} on the machine running "
                              "the app")
        return path

    def write(self, text: str | None, what: str) -> Path:
        """A folder to write into: inside the output root (and the allowed folders); created by the job."""
        if not text or not text.strip():
            raise PathRefused(f"{what}: the field is empty")
        path = self.resolve(text, what)
        if not _under(path, (self.output_root,)):
            raise PathRefused(f"{what}: {shown(text)} is outside the output folder this app writes to (the "
                              "server's --output-root)")
        return path

    def model(self, text: str | None, what: str) -> str | None:
        """A model given as a local folder/file (checked like any path) or as a Hugging Face id (passed on)."""
        if not text or not text.strip():
            return None
        path = self.resolve(text, what)  # an id resolves into the start folder: loaders look there first
        return text.strip() if HUB_ID.match(text.strip()) else str(path)

    def describe(self) -> str:
        dirs = ", ".join(str(d) for d in self.allowed)
        return f"folders clients may read: {dirs}; written under: {self.output_root}"


@functools.cache
def policy(cfg) -> PathPolicy:
    """The app's policy, from its AppConfig (one per configuration, shared by every tab)."""
    return PathPolicy.of(cfg.allowed_dirs, cfg.output_root)
