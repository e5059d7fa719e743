"""README screenshots of the running app: `python tools/app_screenshots.py [--out docs]`.

docs/screenshot_edit.png: the Edit tab after the Happy preset on skimage's astronaut, the mouth sliders in view.
docs/screenshot_live.png: the Live tab streaming Chromium's fake webcam (a clip of the same photo) in mirror mode.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval.app_harness import chromium, start_app, webcam_clip  # noqa: E402


def _photo(folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    path = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def _wait(condition, timeout_s: float = 30.0) -> None:
    t0 = time.perf_counter()
    while not condition():
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError("the page did not reach the expected state")
        time.sleep(0.1)


def edit_tab(d, url: str, photo: Path, out: Path) -> None:
    from selenium.webdriver.common.by import By

    d.get(url)
    _wait(lambda: d.find_elements(By.CSS_SELECTOR, "#photo-in input[type=file]"))
    d.find_element(By.CSS_SELECTOR, "#photo-in input[type=file]").send_keys(str(photo))
    _wait(lambda: "face found" in d.find_element(By.ID, "edit-status").text)
    d.find_element(By.ID, "preset-happy").click()
    _wait(lambda: d.find_element(By.CSS_SELECTOR, "#au-text textarea, #au-text input").get_attribute("value")
          == "AU06:0.6,AU12:0.8")
    d.execute_script("const p = document.getElementById('au-panel'), s = document.getElementById('au-AU12');"
                     "p.scrollTop += s.getBoundingClientRect().top - p.getBoundingClientRect().top - 120;")
    time.sleep(1.0)
    d.save_screenshot(str(out))


def live_tab(d, url: str, out: Path, expression: str = "Surprise") -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d.get(url)
    tab = "//button[@role='tab' and normalize-space()='Live']"
    _wait(lambda: d.find_elements(By.XPATH, tab))
    d.find_element(By.XPATH, tab).click()
    _wait(lambda: d.find_elements(By.CSS_SELECTOR, "#live-source input"))
    box = d.find_element(By.CSS_SELECTOR, "#live-source input")
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(expression, Keys.ENTER)
    d.find_element(By.ID, "live-start").click()
    fps = re.compile(r"^([\d.]+) fps")
    _wait(lambda: (m := fps.search(d.find_element(By.ID, "live-fps").text)) and float(m.group(1)) > 2)
    time.sleep(2.0)
    d.save_screenshot(str(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/app_screenshots.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aufx-shots-") as tmp:
        tmp = Path(tmp)
        photo = _photo(tmp)
        app = start_app(tmp / "app.log")
        driver = chromium(tmp / "profile", webcam_clip(photo, tmp / "webcam.y4m"))
        try:
            edit_tab(driver, app.url, photo, args.out / "screenshot_edit.png")
            live_tab(driver, app.url, args.out / "screenshot_live.png")
        finally:
            driver.quit()
            app.stop()
    print(f"wrote {args.out / 'screenshot_edit.png'} and {args.out / 'screenshot_live.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
