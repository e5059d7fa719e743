"""A registry of model backends by name (as py-feat does), read from aufx/evaluation/backends.json.

Loading goes through :func:`load`, which imports the loader named in the JSON on first use, caches the model (or the
reason it could not load) for the life of the process, and turns any failure into :class:`BackendUnavailable`: a
metric whose model cannot load is reported with the reason, never as 0 and never as a crash.
"""
from __future__ import annotations

import importlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

_TABLE = Path(__file__).with_name("backends.json")
_loaded: dict[str, Any] = {}


class BackendUnavailable(RuntimeError):
    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


@lru_cache(maxsize=1)
def table() -> dict[str, dict]:
    return json.loads(_TABLE.read_text())["backends"]


def info(name: str) -> dict:
    if name not in table():
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(table())}")
    return table()[name]


def names(kind: str | None = None) -> list[str]:
    return [n for n, d in table().items() if kind is None or d["kind"] == kind]


def load(name: str) -> Any:
    """The backend's model, loaded once; raises BackendUnavailable with the reason when it cannot load."""
    if name not in _loaded:
        module, _, func = info(name)["loader"].partition(":")
        try:
            _loaded[name] = getattr(importlib.import_module(module), func)()
        except Exception as exc:  # third-party loaders raise anything (ImportError, OSError, RuntimeError, ...)
            _loaded[name] = BackendUnavailable(name, f"{type(exc).__name__}: {exc}")
    model = _loaded[name]
    if isinstance(model, BackendUnavailable):
        raise model
    return model


def status(name: str) -> dict:
    """{'name', 'kind', 'status': 'ok'|'unavailable', 'reason'?, 'licence', ...} for reports."""
    entry = {"name": name, **{k: v for k, v in info(name).items() if k != "loader"}}
    try:
        load(name)
        entry["status"] = "ok"
    except BackendUnavailable as exc:
        entry.update(status="unavailable", reason=exc.reason)
    return entry


def forget(name: str) -> None:
    """Drop a cached load result so the next load retries (after installing a package, and in tests)."""
    _loaded.pop(name, None)
