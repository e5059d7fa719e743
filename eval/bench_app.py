"""App benchmark: start-up time, idle memory, and slider-to-image latency through the running app.

    python eval/bench_app.py [--repeats 20]

The latency is measured the way the page sees it: Gradio's queue protocol over HTTP (join, then the event stream),
plus fetching the returned image, on a 512x512 photo. gradio_client adds its own ~70 ms of client-side overhead per
call on a small machine, so its figure is reported separately, for information.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval.app_harness import start_app  # noqa: E402

TARGETS = {"slider_to_image_ms": 60.0, "start_to_first_page_s": 5.0, "idle_rss_mb": 400.0}


class QueueSession:
    """One browser-like session: the same session hash for every call, so gr.State carries over."""

    def __init__(self, url: str):
        self.base = url.rstrip("/") + "/gradio_api"
        self.http = httpx.Client(timeout=60, trust_env=False)
        self.session = uuid.uuid4().hex
        config = self.http.get(url.rstrip("/") + "/config").json()
        self.fn = {d["api_name"]: d for d in config["dependencies"] if d.get("api_name")}
        self.types = {c["id"]: c["type"] for c in config["components"]}

    def outputs_of_type(self, api_name: str, output: list, kind: str) -> list:
        """The values of one kind of output component (e.g. every slider), in order."""
        ids = self.fn[api_name]["outputs"]
        return [v for cid, v in zip(ids, output) if self.types[cid] == kind]

    def upload(self, path: Path) -> dict:
        with open(path, "rb") as fh:
            r = self.http.post(f"{self.base}/upload", files={"files": (path.name, fh, "image/png")})
        r.raise_for_status()
        return {"path": r.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, api_name: str, data: list) -> list:
        dep = self.fn[api_name]
        r = self.http.post(f"{self.base}/queue/join", json={"data": data, "fn_index": dep["id"], "trigger_id": None,
                                                           "session_hash": self.session, "event_data": None})
        r.raise_for_status()
        with self.http.stream("GET", f"{self.base}/queue/data", params={"session_hash": self.session}) as s:
            for line in s.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise RuntimeError(f"{api_name} failed: {msg.get('output')}")
                    return msg["output"]["data"]
        raise RuntimeError(f"{api_name}: the event stream closed without a result")

    def fetch(self, file_data: dict) -> bytes:
        r = self.http.get(file_data["url"])
        r.raise_for_status()
        return r.content

    def close(self) -> None:
        self.http.close()


def _photo(folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    path = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)  # 512 x 512
    return path


def _slider_latency(url: str, photo: Path, repeats: int) -> tuple[float, float]:
    """Median ms of /edit (one slider moved) until the edited image's bytes are here; and of the final pass."""
    from aufx.ui.au_controls import slider_keys

    q = QueueSession(url)
    try:
        states = [None] * (len(q.fn["analyze"]["inputs"]) - 1)  # the app's session states, as a new page has them
        out = q.call("analyze", [q.upload(photo), *states])
        values = dict(zip(slider_keys(), q.outputs_of_type("analyze", out, "slider")))
        live, final = [], []
        for i in range(repeats + 2):
            values["AU12"] = round(0.2 + 0.6 * (i % 7) / 6, 2)
            t0 = time.perf_counter()
            view = q.call("edit", [None, *values.values()])[0]
            q.fetch(view[1])
            dt = (time.perf_counter() - t0) * 1000
            if i >= 2:  # the first moves build the per-face warp field
                live.append(dt)
        for _ in range(max(3, repeats // 4)):
            t0 = time.perf_counter()
            q.call("edit_final", [None, *values.values()])
            final.append((time.perf_counter() - t0) * 1000)
        return statistics.median(live), statistics.median(final)
    finally:
        q.close()


def _client_latency(url: str, photo: Path, repeats: int) -> float:
    from gradio_client import Client, handle_file

    from aufx.ui.au_controls import slider_keys

    c = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    out = c.predict(handle_file(str(photo)), api_name="/analyze")
    values = dict(zip(slider_keys(), out[1:1 + len(slider_keys())]))
    times = []
    for i in range(repeats):
        values["AU12"] = round(0.2 + 0.6 * (i % 7) / 6, 2)
        t0 = time.perf_counter()
        c.predict(**values, api_name="/edit")
        times.append((time.perf_counter() - t0) * 1000)
    c.close()
    return statistics.median(times)


def run(repeats: int = 20) -> dict:
    """Start the app, measure, stop it. Keys ending in _ms/_s/_mb have targets in TARGETS."""
    with tempfile.TemporaryDirectory(prefix="aufx-bench-app-") as tmp:
        tmp = Path(tmp)
        app = start_app(tmp / "app.log")
        try:
            time.sleep(1.0)  # let start-up allocations settle
            idle = app.rss_mb()
            photo = _photo(tmp)
            live, final = _slider_latency(app.url, photo, repeats)
            client = _client_latency(app.url, photo, max(5, repeats // 2))
            busy = app.rss_mb()
            torch_loaded = app.mapped("libtorch")
        finally:
            app.stop()
    return {"slider_to_image_ms": round(live, 1), "final_pass_ms": round(final, 1),
            "gradio_client_edit_ms": round(client, 1), "start_to_first_page_s": round(app.start_s, 2),
            "idle_rss_mb": round(idle, 1), "rss_after_edits_mb": round(busy, 1), "torch_loaded": torch_loaded,
            "repeats": repeats, "image": "512x512"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python eval/bench_app.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    res = run(args.repeats)
    print(f"{'metric':<26}{'value':>10}{'target':>10}  ok")
    for k, v in res.items():
        target = TARGETS.get(k)
        ok = "" if target is None else ("yes" if v <= target else "NO")
        print(f"{k:<26}{v!s:>10}{'' if target is None else '<= ' + format(target, 'g'):>10}  {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
