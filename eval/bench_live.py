"""Live tab benchmark: frames drawn per second in a real browser, with one and with two viewers.

    python eval/bench_live.py [--seconds 20]     (or python eval/bench.py --live)
    python eval/bench_live.py --codecs           # JPEG vs VP8 / H.264 per frame (the latter where aiortc is installed)

Starts the app, opens the Live tab in Debian's headless Chromium whose webcam is a 640x480 clip made from the
astronaut photo, and streams Mirror (Happy preset) and then Puppet (driving Grace Hopper's portrait) for ``--seconds``
each, first in one browser window, then in two at once (windows of one Chromium, each its own page and session,
so neither is a hidden background tab, which browsers throttle). Reported per run: the drawn frame rate as the
page's own read-out (#live-fps) shows it, sampled every half second (median over the run, per window), and the
medians of the server's milliseconds per frame (decode, track, edit, encode) and of camera-to-screen latency
(capture on the page to the edited frame drawn). Chromium and the app share the machine's cores, as they do in a
lab demo on one laptop.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# As app.py does, before numpy loads: BLAS threads fighting MediaPipe's turn a 2 ms AU estimate into 20+ ms.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval.app_harness import chromium, start_app, webcam_clip  # noqa: E402

TARGETS = {1: 25.0, 2: 15.0}  # drawn fps per window, by number of windows (640x480 webcam frames, 2-core machine)
LATENCY_TARGET_MS, SERVER_TARGET_MS = 150.0, 20.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _photos(folder: Path) -> tuple[Path, Path]:
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    face = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).save(face)
    return face, Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _active(url: str) -> int:
    with _DIRECT.open(url + "aufx/live/status", timeout=10) as r:
        return json.loads(r.read())["active"]


def _wait(condition, timeout_s: float = 60.0, what: str = "the page") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _open_live_tab(d, url: str, mode: str, portrait: Path) -> None:
    from selenium.webdriver.common.by import By

    d.get(url)
    tab = "//button[@role='tab' and normalize-space()='Live']"
    _wait(lambda: d.find_elements(By.XPATH, tab), what="the Live tab")
    d.find_element(By.XPATH, tab).click()
    _wait(lambda: d.find_element(By.ID, "live-start").is_displayed(), what="the Start button")
    if mode == "Puppet":
        d.find_element(By.CSS_SELECTOR, "#live-portrait input[type=file]").send_keys(str(portrait))
        _wait(lambda: "ready" in d.find_element(By.ID, "live-portrait-status").text, what="the portrait")
        d.find_element(By.XPATH, "//*[@id='live-mode']//label[contains(., 'Puppet')]").click()


def _run(d, url: str, mode: str, windows: int, seconds: float, portrait: Path) -> dict:
    """Stream in ``windows`` browser windows at once; per window the read-out's fps samples, and the stats."""
    from selenium.webdriver.common.by import By

    handles = [d.current_window_handle]
    while len(handles) < windows:
        d.switch_to.new_window("window")
        handles.append(d.current_window_handle)
    for h in handles:
        d.switch_to.window(h)
        _open_live_tab(d, url, mode, portrait)
    for h in handles:
        d.switch_to.window(h)
        d.find_element(By.ID, "live-start").click()
    _wait(lambda: _active(url) == windows, what="the sessions")
    time.sleep(3.0)  # warm-up: trackers find the face, the fps window fills
    samples = {h: [] for h in handles}
    stats = {h: [] for h in handles}
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        for h in handles:
            d.switch_to.window(h)
            text = d.find_element(By.ID, "live-fps").text
            samples[h].append(float(text.split(" fps")[0]))
            stats[h].append(d.execute_script("return window.aufxLive.stats();"))
        time.sleep(0.5)
    for h in handles:
        d.switch_to.window(h)
        d.find_element(By.ID, "live-stop").click()
    _wait(lambda: _active(url) == 0, what="the sessions to close")
    for h in handles[1:]:
        d.switch_to.window(h)
        d.close()
    d.switch_to.window(handles[0])
    last = [stats[h][-1] for h in handles]
    return {
        "fps": [round(statistics.median(samples[h]), 1) for h in handles],
        "server_ms": round(statistics.median(s["serverMs"] for h in handles for s in stats[h]), 1),
        "latency_ms": round(statistics.median(s["latencyMs"] for h in handles for s in stats[h]), 1),
        "drawn": sum(s["shown"] for s in last), "dropped_by_server": sum(s["dropped"] for s in last),
        "skipped_in_page": sum(s["skipped"] for s in last),
    }


def clip_frames(face: Path, frames: int) -> list:
    """(480, 640, 3) uint8 RGB frames of the photo drifting sideways, like the fake webcam clip."""
    import cv2
    import numpy as np

    from aufx.io.images import load_image

    photo = cv2.resize(load_image(face), (480, 480), interpolation=cv2.INTER_AREA)
    out = []
    for i in range(frames):
        frame = np.full((480, 640, 3), 40, np.uint8)
        frame[:, 80 + i % 10:560 + i % 10] = photo
        out.append(frame)
    return out


def server_alone(face: Path, portrait: Path, frames: int = 60) -> dict[str, tuple[float, float]]:
    """Per mode, medians of one frame's server work (decode, track, edit, encode) in this process, no browser:
    (wall ms, CPU ms of the whole process). The CPU figure is the work itself, whatever else shares the cores."""
    import cv2

    from aufx.io.images import load_image
    from aufx.live import LiveSettings, bounded
    from aufx.pipeline import Editor
    from aufx.ui.config import LiveConfig
    from aufx.ui.live_stream import FRAME_IN, hub_for, process_message

    cv2.setNumThreads(1)
    cfg = LiveConfig(max_sessions=1)
    messages = []
    for i, frame in enumerate(clip_frames(face, frames)):  # sent as the page sends them
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])[1]
        messages.append(FRAME_IN.pack(33.3 * i) + jpeg.tobytes())
    driven = Editor(bounded(load_image(portrait), cfg.max_side), name="portrait")
    out = {}
    runs = (("Mirror", LiveSettings(source="happy")), ("Puppet", LiveSettings("Puppet", portrait=driven)))
    for mode, settings in runs:
        session = hub_for(cfg).open(settings)
        wall, cpu = [], []
        for i, m in enumerate(messages):
            t0, c0 = time.perf_counter(), time.process_time()
            process_message(session, m, cfg)
            if i >= 5:  # the tracker's first frames search the whole image
                wall.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
        hub_for(cfg).close(session.token)
        out[mode] = (round(statistics.median(wall), 1), round(statistics.median(cpu), 1))
    return out


def codec_costs(face: Path, frames: int = 60) -> dict[str, tuple[float, float]]:
    """Median (encode, decode) ms per 640x480 frame on one thread: the JPEG this transport uses, and the VP8 and
    H.264 that a WebRTC track through aiortc would add on the server (only where aiortc is installed; it is not a
    dependency). The record behind the transport choice in aufx/ui/live_stream.py."""
    import fractions

    import cv2

    cv2.setNumThreads(1)
    images = clip_frames(face, frames)

    def median_ms(fn, items) -> float:
        times = []
        for item in items:
            t0 = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    quality = [cv2.IMWRITE_JPEG_QUALITY, 80]
    jpegs = [cv2.imencode(".jpg", img, quality)[1] for img in images]
    costs = {"JPEG q80": (median_ms(lambda img: cv2.imencode(".jpg", img, quality), images),
                          median_ms(lambda j: cv2.imdecode(j, cv2.IMREAD_COLOR), jpegs))}
    try:
        from aiortc.codecs import depayload, get_decoder, get_encoder
        from aiortc.jitterbuffer import JitterFrame
        from aiortc.rtcrtpparameters import RTCRtpCodecParameters
        from av import VideoFrame
    except ImportError:
        return costs
    h264 = {"packetization-mode": "1", "level-asymmetry-allowed": "1", "profile-level-id": "42001f"}
    for mime, params in (("video/VP8", {}), ("video/H264", h264)):
        codec = RTCRtpCodecParameters(mimeType=mime, clockRate=90000, payloadType=96, parameters=params)
        encoder, decoder = get_encoder(codec), get_decoder(codec)
        enc, dec = [], []
        for i, img in enumerate(images):
            frame = VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
            t0 = time.perf_counter()
            payloads, stamp = encoder.encode(frame, force_keyframe=i == 0)
            t1 = time.perf_counter()
            for out in decoder.decode(JitterFrame(data=b"".join(depayload(codec, p) for p in payloads),
                                                  timestamp=stamp)):
                out.to_ndarray(format="rgb24")
            enc.append((t1 - t0) * 1000)
            dec.append((time.perf_counter() - t1) * 1000)
        costs[mime.split("/")[1]] = (statistics.median(enc[5:]), statistics.median(dec[5:]))
    return costs


def run(seconds: float = 20.0) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="aufx-bench-live-") as tmp:
        tmp = Path(tmp)
        face, portrait = _photos(tmp)
        app = start_app(tmp / "app.log")
        driver = chromium(tmp / "profile", webcam_clip(face, tmp / "webcam.y4m", frames=60))
        try:
            for mode in ("Mirror", "Puppet"):
                for windows in (1, 2):
                    rows.append({"mode": mode, "windows": windows,
                                 **_run(driver, app.url, mode, windows, seconds, portrait)})
        finally:
            driver.quit()
            app.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python eval/bench_live.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="streaming time per run (default %(default)s)")
    ap.add_argument("--codecs", action="store_true", help="only the per-frame codec costs behind the transport "
                    "choice: JPEG, and VP8 / H.264 through aiortc where it is installed")
    args = ap.parse_args(argv)
    if args.codecs:
        with tempfile.TemporaryDirectory(prefix="aufx-bench-live-") as tmp:
            costs = codec_costs(_photos(Path(tmp))[0])
        for name, (enc, dec) in costs.items():
            print(f"{name:<9} encode {enc:5.2f} ms  decode {dec:5.2f} ms  (640x480, one thread, median)")
        return 0
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="aufx-bench-live-") as tmp:
        alone = server_alone(*_photos(Path(tmp)))
    rows = run(args.seconds)
    print(f"Live tab, 640x480, headless Chromium + app on {os.cpu_count()} cores (load average {load:.1f} at start)")
    print(f"{'mode':<8}{'windows':>8}{'drawn fps per window':>24}{'server ms':>11}{'cam->screen ms':>16}"
          f"{'dropped':>9}  ok")
    for r in rows:
        ok = (min(r["fps"]) >= TARGETS[r["windows"]] and r["latency_ms"] <= LATENCY_TARGET_MS)
        fps = " / ".join(f"{f:.1f}" for f in r["fps"])
        print(f"{r['mode']:<8}{r['windows']:>8}{fps:>24}{r['server_ms']:>11.1f}{r['latency_ms']:>16.1f}"
              f"{r['dropped_by_server'] + r['skipped_in_page']:>9}  {'yes' if ok else 'NO'}")
    print("server work per frame without a browser (median wall / CPU ms): " +
          ", ".join(f"{m} {wall:.1f} / {cpu:.1f}" for m, (wall, cpu) in alone.items()))
    print(f"targets: >= {TARGETS[1]:g} fps with one window, >= {TARGETS[2]:g} each with two, camera to screen <= "
          f"{LATENCY_TARGET_MS:g} ms; server work per frame <= {SERVER_TARGET_MS:g} ms on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
