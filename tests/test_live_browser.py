"""The Live tab in Debian's headless Chromium with a file-backed fake webcam: Start opens a session and the page
draws edited frames with a frame-rate read-out; the presenter button shows them full screen; a control change
reaches the running stream; Stop ends the stream, the camera and the server's session; the time limit stops the
page with its reason."""
from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
RATE = re.compile(r"^(\d+\.\d) fps · ")
# The drawn frame as a small gray array, and whether the page's camera is still open.
CANVAS = """const c = document.querySelector('#live-view canvas'), s = document.createElement('canvas');
s.width = 64; s.height = 48; s.getContext('2d').drawImage(c, 0, 0, 64, 48);
return Array.from(s.getContext('2d').getImageData(0, 0, 64, 48).data).filter((_, i) => i % 4 === 0);"""
CAMERA_OPEN = "return document.querySelector('#live-view video').srcObject !== null;"


def _active(app) -> int:
    with DIRECT.open(app.url + "aufx/live/status", timeout=10) as r:
        return json.loads(r.read())["active"]


def _rate(d) -> float | None:
    m = RATE.match(d.find_element(By.ID, "live-fps").text)
    return float(m.group(1)) if m else None


def _open_live_tab(d, url: str) -> None:
    d.get(url)
    wait = WebDriverWait(d, 60)
    tab = "//button[@role='tab' and normalize-space()='Live']"
    wait.until(lambda _: d.find_elements(By.XPATH, tab))
    d.find_element(By.XPATH, tab).click()
    wait.until(lambda _: d.find_element(By.ID, "live-start").is_displayed())


def test_stream_starts_draws_and_stops_cleanly(app, browser):
    d = browser
    _open_live_tab(d, app.url)
    wait = WebDriverWait(d, 60)
    assert _rate(d) == 0.0 and _active(app) == 0
    blank = np.array(d.execute_script(CANVAS))

    d.find_element(By.ID, "live-start").click()
    wait.until(lambda _: (_rate(d) or 0) > 1.0)  # frames come back and are drawn; speed is eval/bench.py --live
    assert "no face" not in d.find_element(By.ID, "live-fps").text
    assert _active(app) == 1 and d.execute_script(CAMERA_OPEN)
    drawn = np.array(d.execute_script(CANVAS))
    assert drawn.std() > 20 and np.abs(drawn - blank).mean() > 20  # a photo, not the empty stage

    d.find_element(By.ID, "live-present").click()  # presenter view: the stage (and only it) full screen
    wait.until(lambda _: d.execute_script("return document.fullscreenElement?.dataset.role === 'stage';"))
    ActionChains(d).double_click(d.find_element(By.CSS_SELECTOR, "#live-view canvas")).perform()  # and back
    wait.until(lambda _: d.execute_script("return document.fullscreenElement === null;"))

    d.find_element(By.XPATH, "//*[@id='live-mode']//label[contains(., 'Puppet')]").click()
    wait.until(lambda _: "Puppet mode needs a portrait" in d.find_element(By.ID, "live-fps").text)

    d.find_element(By.ID, "live-stop").click()
    wait.until(lambda _: d.find_element(By.ID, "live-fps").text == "0.0 fps · stopped")
    assert not d.execute_script(CAMERA_OPEN)
    wait.until(lambda _: _active(app) == 0)  # the server closed the session and freed its tracker
    assert not d.execute_script("return window.aufxLive.stats().streaming;")
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_the_time_limit_stops_the_page_with_its_reason(browser, tmp_path):
    from eval.app_harness import start_app

    app = start_app(tmp_path / "app.log", ("--stream-time-limit", "3"))
    try:
        d = browser
        _open_live_tab(d, app.url)
        d.find_element(By.ID, "live-start").click()
        wait = WebDriverWait(d, 60)
        wait.until(lambda _: d.find_element(By.ID, "live-fps").text.startswith("0.0 fps · time limit reached (3 s)"))
        assert "press Start to go on" in d.find_element(By.ID, "live-note").text
        assert d.execute_script("return window.aufxLive.stats().shown;") > 0  # it streamed until then
        assert not d.execute_script(CAMERA_OPEN) and _active(app) == 0
    finally:
        app.stop()


def test_start_is_refused_with_a_message_when_every_slot_is_taken(app, browser, photo, tmp_path):
    """Two API clients hold the app's two live slots (one /live_frame call each); the page's Start says so."""
    from gradio_client import Client, handle_file

    clients = [Client(app.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path)) for _ in "ab"]
    for c in clients:
        _, text = c.predict(handle_file(str(photo)), "Mirror", "happy", 1.0, api_name="/live_frame")
        assert "no face" not in text
    assert _active(app) == 2
    d = browser
    _open_live_tab(d, app.url)
    d.find_element(By.ID, "live-start").click()
    WebDriverWait(d, 60).until(lambda _: "Not started" in d.find_element(By.ID, "live-session").text)
    assert "all 2 live slots of this server are in use" in d.find_element(By.ID, "live-session").text
    assert not d.execute_script("return window.aufxLive.stats().streaming;") and _active(app) == 2
    for c in clients:
        c.close()
    WebDriverWait(d, 60).until(lambda _: _active(app) == 0)  # idle API sessions are closed after 10 s
