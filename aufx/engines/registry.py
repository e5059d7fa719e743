"""Engines by name, and the one process-wide cache of engine instances.

Each entry names its class as ``"module:Class"``, imported on first use, so listing the engines (the CLI's
``--engine`` choices, the app's engine selector) imports nothing, and torch/diffusers stay out of the warp path and
of app start. ``engine(name, seed, **options)`` returns a shared instance per (name, options[, seed]): the diffusion
pipeline is expensive to load and every Editor, slider move and batch image reuses it.

An engine class is built as ``Class(**options)``, plus ``seed=`` for a seeded (stochastic) entry. An entry with
``cli_flags`` offers two class methods for the command line: ``add_cli_args(parser)`` (its flags) and
``options_from_args(args)`` (those flags back as keyword options); its module must then be cheap to import.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Callable

from aufx.au import AUError
from aufx.engines.base import Engine


@dataclass(frozen=True)
class EngineSpec:
    name: str
    factory: str | Callable[..., Engine]  # "module:Class" (imported on first use) or a callable
    summary: str  # one line for help texts
    seeded: bool = False  # stochastic: the edit's seed is passed to the factory (and is part of the cache key)
    cli_flags: bool = False  # the class has add_cli_args(parser) and options_from_args(args)

    def load(self) -> Callable[..., Engine]:
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


_ENGINES: dict[str, EngineSpec] = {
    spec.name: spec for spec in (
        EngineSpec("warp", "aufx.engines.warp:WarpEngine", "training-free geometric warp, CPU, real time"),
        EngineSpec("diffusion", "aufx.engines.diffusion:DiffusionEngine",
                   "the warp refined by SD1.5 img2img (AU LoRA, optional ControlNet); GPU", seeded=True,
                   cli_flags=True),
    )
}
_cache: dict[tuple, Engine] = {}
_lock = threading.RLock()  # re-entrant: an engine may build another (diffusion refines the shared warp engine)


def register(spec: EngineSpec) -> None:
    """Add (or replace) an engine; it is then listed and selectable everywhere by its name."""
    _ENGINES[spec.name] = spec


def names() -> tuple[str, ...]:
    """The registered engine names, in registration order (warp first: the default)."""
    return tuple(_ENGINES)


def spec(name: str) -> EngineSpec:
    """The entry for ``name``, or AUError naming the choices."""
    if name not in _ENGINES:
        raise AUError(f"unknown engine {name!r}; choose one of: {', '.join(_ENGINES)}")
    return _ENGINES[name]


def engine(name: str = "warp", seed: int | None = None, **options: Any) -> Engine:
    """The shared instance for (name, options, and the seed if the engine is seeded); built on first request."""
    s = spec(name)
    kwargs = {**options, **({"seed": seed} if s.seeded else {})}
    key = (name, tuple(sorted(kwargs.items())))
    with _lock:
        if key not in _cache:
            _cache[key] = s.load()(**kwargs)
        return _cache[key]


def add_cli_args(parser) -> None:
    """Every engine's own flags (diffusion: --model, --lora_path...), each in its argument group."""
    for s in _ENGINES.values():
        if s.cli_flags:
            s.load().add_cli_args(parser)


def options_from_args(name: str, args) -> dict:
    """The keyword options the parsed flags give engine ``name`` (none for an engine without flags)."""
    s = spec(name)
    return s.load().options_from_args(args) if s.cli_flags else {}
