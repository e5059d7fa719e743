"""What the Evaluate and Study tabs share: a work folder per browser session, uploads unpacked into it, results
zipped from it, and the batch libraries' own user errors shown as messages.

A session's folder lives in gr.State and is removed when the session ends, so finished jobs do not fill the disk.
"""
from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import gradio as gr

from aufx.study.archive import write_zip
from aufx.ui.config import AppConfig
from aufx.ui.errors import guarded
from aufx.ui.paths import PathPolicy

# The upload limit (--max-file-size) bounds a zip, not what it unpacks to: a zip bomb must not fill the server's disk.
MAX_UNPACKED_BYTES = 4 << 30
JUNK = ("__MACOSX/", ".DS_Store")  # what macOS adds to the zips it makes


class InputError(ValueError):
    """A job input that cannot be used (a missing folder, a broken zip, two uploads of one name), named in the text."""


class Workspace:
    """One session's folder; each job writes into a named part of it, replacing what that job wrote last time."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="aufx-batch-"))

    def fresh(self, name: str) -> Path:
        """An empty folder for a job's new run (the previous run's files go: the browser has fetched them)."""
        folder = self.root / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        return folder

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def workspace_state(cfg: AppConfig) -> gr.State:
    """Session state holding a Workspace; its folder is removed when the session expires."""
    return gr.State(None, time_to_live=cfg.state_ttl_s, delete_callback=_close)


def _close(workspace: Workspace | None) -> None:
    if workspace is not None:
        workspace.close()


def unpack(files: list[str] | None, dest: Path) -> Path | None:
    """Uploaded files (zips unpacked, others copied under their own names) in ``dest``; None when nothing was
    uploaded. A zip holding a single folder gives that folder, so zipping a folder or its contents is the same."""
    if not files:
        return None
    dest.mkdir(parents=True, exist_ok=True)
    for f in map(Path, files):
        if f.suffix.lower() == ".zip":
            _extract(f, dest)
        elif (dest / f.name).exists():
            raise InputError(f"two uploaded files are named {f.name}; rename one")
        else:
            shutil.copyfile(f, dest / f.name)
    return _single_folder(dest)


def _extract(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not any(j in m.filename for j in JUNK)]
            if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                raise InputError(f"{archive.name} unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB")
            zf.extractall(dest, members)  # zipfile drops absolute paths and '..', so nothing lands outside dest
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive.name}: not a readable zip file ({exc})") from None


def _single_folder(folder: Path) -> Path:
    entries = list(folder.iterdir())
    return _single_folder(entries[0]) if len(entries) == 1 and entries[0].is_dir() else folder


def zip_folder(folder: Path, archive: Path) -> Path:
    """``folder`` as a zip whose entries sit under the folder's own name (unzipping gives one folder)."""
    names = [p.relative_to(folder.parent).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()]
    return write_zip(archive, folder.parent, names)


def folder_input(path_text: str | None, files: list[str] | None, dest: Path, what: str,
                 paths: PathPolicy) -> Path | None:
    """The folder a job reads: a path typed on the server (inside the allowed folders) or an upload, not both
    (which should win is unclear)."""
    typed = paths.read(path_text, what)
    uploaded = unpack(files, dest)
    if typed and uploaded:
        raise InputError(f"{what}: give a folder path or an upload, not both (clear one of them)")
    return typed or uploaded


def shown_errors(*kinds: type[Exception]) -> Callable:
    """Like errors.user_errors, plus the errors of a batch library (``kinds``) whose message tells the user what to
    fix (a bad conditions file, a missing folder), instead of a generic 'Error'."""
    return lambda fn: guarded(fn, (InputError, *kinds))
