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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread: the 2-core CI machine is faster that way, and the runs are repeatable."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """One app server for every app test module (each client is its own session on it)."""
    from eval.app_harness import start_app

    # Train runs write under --output-root; the tests' runs go to their tmp_path folders.
    root = str(tmp_path_factory.getbasetemp())
    proc = start_app(tmp_path_factory.mktemp("app") / "app.log", ("--output-root", root))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """The astronaut as a PNG file, as a user uploads it."""
    from app_fixtures import astronaut as astronaut_png

    return astronaut_png(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory, photo):
    """Debian's headless Chromium whose webcam is a clip of the astronaut (one per test module)."""
    from eval.app_harness import CHROMEDRIVER, CHROMIUM, chromium, webcam_clip

    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(f"the browser tests need {CHROMIUM} and {CHROMEDRIVER}: run `make browser`")
    root = tmp_path_factory.mktemp("chromium")
    driver = chromium(root / "profile", webcam_clip(photo, root / "webcam.y4m"))
    yield driver
    driver.quit()
