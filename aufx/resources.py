"""The package's data files, found through importlib.resources so that an installed wheel reads them as the
checkout does: ``aufx/assets/`` (mesh, AU model, calibration, estimator weights, mouth exemplar) and
``aufx/presets/`` (AU catalogue, emotion presets, ARKit table, example conditions).

The package is installed as plain files (not zipped), so the resources are real paths that OpenCV, safetensors and
YAML readers can open directly.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from aufx.io.digest import folder_digest


def package_dir(name: str) -> Path:
    """A data folder inside the installed ``aufx`` package."""
    return Path(str(files("aufx").joinpath(name)))


ASSETS = package_dir("assets")
PRESETS_DIR = package_dir("presets")


@lru_cache(maxsize=1)
def code_digest() -> str:
    """12 hex digits over the installed package's files (its code, assets and presets): two results with one digest
    were made by the same code, whatever the version string says (read once per process, 0.1 s)."""
    return folder_digest(package_dir("."))
