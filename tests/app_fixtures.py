"""Shared by the app tests: real photos, and reading the outputs of the app's endpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from aufx.ui.au_controls import slider_keys

ANALYZE_SLIDERS_AT = 1  # /analyze returns the face dropdown first; the other full updates start with the sliders


def astronaut(folder: Path) -> Path:
    from skimage import data

    path = folder / "astronaut.png"
    if not path.exists():
        Image.fromarray(data.astronaut()).save(path)
    return path


def grace_hopper() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def sliders(outputs: tuple, start: int = 0) -> dict[str, float]:
    """The slider values in a gradio_client result (State outputs are not part of it)."""
    keys = slider_keys()
    return dict(zip(keys, outputs[start:start + len(keys)]))


def rgb(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
