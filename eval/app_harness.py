"""The app as its own process, and a headless browser to look at it: shared by the app tests, the benchmark and
the screenshot tool. Offline throughout; everything is stopped by its own pid."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"}
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy from the env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppProcess:
    proc: subprocess.Popen
    url: str
    start_s: float  # process start to the first page served
    log: Path

    def rss_mb(self) -> float:
        """Resident memory of the app process (VmRSS), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("VmRSS not found")

    def mapped(self, fragment: str) -> bool:
        """Whether a shared library whose path contains ``fragment`` is loaded (e.g. 'libtorch')."""
        return fragment in Path(f"/proc/{self.proc.pid}/maps").read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_app(log: Path, args: tuple[str, ...] = (), timeout_s: float = 60.0) -> AppProcess:
    """Start `python app.py` on a free port and wait until it serves its page."""
    port = free_port()
    env = {**os.environ, **OFFLINE_ENV}
    env.pop("AUFX_HOST", None)
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *args], cwd=ROOT,
                                env=env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with _DIRECT.open(url, timeout=1) as r:
                if r.status == 200:
                    return AppProcess(proc, url, time.perf_counter() - t0, log)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"the app did not serve {url} within {timeout_s} s:\n{log.read_text()[-3000:]}")


# Browser ------------------------------------------------------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")


def chromium(profile: Path, webcam_clip: Path | None = None, size: tuple[int, int] = (1400, 1000)):
    """Debian's headless Chromium through its own chromedriver (Selenium Manager stays offline); with
    ``webcam_clip``, the webcam is that Y4M file, so the Live tab can stream without a camera."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    options.add_argument(f"--user-data-dir={profile}")
    if webcam_clip is not None:
        options.add_argument(f"--use-file-for-fake-video-capture={webcam_clip}")
    os.environ["SE_OFFLINE"] = "true"
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    # The page area itself, not the window, gets the requested size (screenshots are exactly this big).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})
    return driver


def webcam_clip(photo: Path, path: Path, frames: int = 30) -> Path:
    """A 640x480 Y4M clip of the photo, moving a little (the webcam component streams changing frames only)."""
    import cv2
    import numpy as np
    from PIL import Image

    face = cv2.resize(np.asarray(Image.open(photo).convert("RGB")), (480, 480))
    with open(path, "wb") as fh:
        fh.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\n")
        for i in range(frames):
            frame = np.full((480, 640, 3), 40 + i, np.uint8)
            frame[:, 80 + i % 10:560 + i % 10] = face
            fh.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path
