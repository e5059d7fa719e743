"""Shared fixtures: the two real faces that ship inside pip packages, analysed once per test session."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib.cbook
import numpy as np
import pytest
from skimage import data


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="session")
def grace() -> np.ndarray:
    from aufx.io.images import load_image

    return load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def astronaut_editor(astronaut):
    from aufx.pipeline import Editor

    return Editor(astronaut, name="astronaut")


@pytest.fixture(scope="session")
def grace_editor(grace):
    from aufx.pipeline import Editor

    return Editor(grace, name="grace_hopper")
