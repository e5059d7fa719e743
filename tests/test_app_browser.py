"""The app in a real browser (Debian's headless Chromium): upload a face, click Happy, see the edited image. The Live
tab's browser test is tests/test_live_browser.py."""
from __future__ import annotations

import io
import urllib.request

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _pixels(src: str) -> np.ndarray:
    with DIRECT.open(src, timeout=10) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB")).astype(np.int16)


def _loaded(driver, img) -> bool:
    return driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;", img)


def test_happy_preset_in_the_browser(app, browser, photo, tmp_path):
    d = browser
    d.get(app.url)
    wait = WebDriverWait(d, 30)
    wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, "#photo-in input[type=file]"))
    d.find_element(By.CSS_SELECTOR, "#photo-in input[type=file]").send_keys(str(photo))
    wait.until(lambda _: "1 face found" in d.find_element(By.ID, "edit-status").text)
    d.find_element(By.ID, "preset-happy").click()
    wait.until(lambda _: d.find_element(By.CSS_SELECTOR, "#au-text textarea, #au-text input")
               .get_attribute("value") == "AU06:0.6,AU12:0.8,AU25:0.6,AU26:0.2")
    wait.until(lambda _: all(_loaded(d, i) for i in d.find_elements(By.CSS_SELECTOR, "#before-after img")))
    d.save_screenshot(str(tmp_path / "edit_happy.png"))
    assert (tmp_path / "edit_happy.png").stat().st_size > 10_000
    srcs = [i.get_attribute("src") for i in d.find_elements(By.CSS_SELECTOR, "#before-after img")]
    assert len(srcs) == 2 and "after" in srcs[1]
    before, after = (_pixels(s) for s in srcs)
    assert before.shape == after.shape == (512, 512, 3)
    # the mouth and cheeks changed: 0.5% of the image by more than 10 levels (the astronaut already smiles)
    changed = np.abs(after - before).max(-1)
    assert (changed > 10).mean() > 0.002 and changed.max() > 40

