"""Stretched skin keeps the photo's grain at its own size (aufx/engines/texture.py)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from aufx.engines.photometry import luminance
from aufx.engines.texture import TextureConfig, stretch
from aufx.engines.warp import WarpConfig, WarpEngine
from aufx.model.deform import deform
from aufx.pipeline import Editor
from aufx.request import EditRequest


def test_stretch_reads_the_forward_maps_largest_stretch():
    """Backward maps that sample every other pixel across (a 2x horizontal stretch) and rotate: 2 everywhere."""
    h, w = 40, 60
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    c, s = np.cos(0.3), np.sin(0.3)
    mx, my = 0.5 * gx, gy.copy()  # the output's x is the source's 2x
    rx, ry = c * mx - s * my, s * mx + c * my
    np.testing.assert_allclose(stretch(rx.astype(np.float32), ry.astype(np.float32), 4), 2.0, rtol=1e-3)
    np.testing.assert_allclose(stretch(gx, gy, 1), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def grainy_astronaut():
    """The astronaut as a grainy photo: her portrait with sensor-like noise (sigma 8) added."""
    from skimage import data

    rng = np.random.default_rng(5)
    a = data.astronaut().astype(np.float32)
    return np.clip(a + rng.normal(0, 8, a.shape[:2])[..., None], 0, 255).astype(np.uint8)


def test_raised_brows_stretch_no_streaks_into_a_grainy_photo(grainy_astronaut):
    """AU01+AU02 at 0.8 stretch the skin under the astronaut's brows past 1.8x; her grainy copy's grain was
    stretched into vertical streaks there (the fine detail's vertical / horizontal gradient energy 0.50; at the same
    pixels of the photo 3.7, at its grain alone 1). It is now her own texture read where a smoothed warp takes it,
    or fresh grain of its size (0.82; fresh grain alone 1.04), as strong as the photo's grain on flat skin."""
    ed = Editor(grainy_astronaut, name="grainy_astronaut")
    face = ed.face()
    tgt = EditRequest(au_text="AU01:0.8,AU02:0.8").target(ed.measured())
    d = deform(face, tgt)
    engine = WarpEngine()
    wf = engine.prepare(face)
    mx, my = wf.backward_maps(d.displacement_px, engine.motion(grainy_astronaut, face))
    x0, y0, x1, y1 = wf.roi
    band = np.zeros(grainy_astronaut.shape[:2], bool)
    band[y0:y1, x0:x1] = stretch(mx, my, 1) > 1.8
    assert band.sum() > 150

    def fine(image: np.ndarray) -> np.ndarray:
        y = luminance(image)
        return y - cv2.GaussianBlur(y, (0, 0), 1.5)

    def anisotropy(detail: np.ndarray) -> float:
        dx, dy = np.diff(detail, axis=1)[:-1], np.diff(detail, axis=0)[:, :-1]
        m = band[:-1, :-1]
        return float((dy[m] ** 2).mean() / (dx[m] ** 2).mean())

    before = fine(WarpEngine(WarpConfig(texture=TextureConfig(enabled=False))).render(grainy_astronaut, face, tgt, d))
    after = fine(engine.render(grainy_astronaut, face, tgt, d))
    assert anisotropy(before) < 0.7  # the defect: streaks
    assert 0.75 < anisotropy(after) < 1.33
    cx, cy = np.round(face.landmarks[425, :2]).astype(int)  # flat skin of her left cheek, untouched by this edit
    cheek = fine(grainy_astronaut)[cy - 6:cy + 7, cx - 6:cx + 7]
    assert after[band].std() > 0.8 * cheek.std()
