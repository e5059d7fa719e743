"""Speed of AUFX, as medians over repeated runs (a benchmark, not a test).

    python eval/bench.py                  # warp engine at 512^2 and 1024^2, with a plain cv2.remap as the floor
    python eval/bench.py --engine diffusion   # diffusion engine (tiny random components on CPU, full size on GPU)
    python eval/bench.py --app            # slider-to-image latency through the running Gradio app, start, memory
    python eval/bench.py --live           # Live tab in headless Chromium: drawn fps with one and two viewers

Figures are per call, on one core (OpenCV and BLAS threads pinned to 1), on Grace Hopper's portrait scaled so the
image is N x N.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (lazy imports, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def face_image(size: int) -> np.ndarray:
    import matplotlib.cbook

    from aufx.io.images import load_image

    g = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    side = min(g.shape[:2])
    return cv2.resize(g[:side, :side], (size, size), interpolation=cv2.INTER_AREA)


def bench_warp(size: int, repeats: int) -> dict[str, float]:
    from PIL import Image

    from aufx.model.deform import deform
    from aufx.face.analysis import analyze_faces
    from aufx.io.images import save_image
    from aufx.pipeline import Editor
    from aufx.request import EditRequest

    img = face_image(size)
    ed = Editor(img, cache=None)
    face = ed.face()
    target = EditRequest(au_text="AU12:0.8,AU06:0.6,AU26:0.4").target(ed.measured())
    engine = ed.engine("warp")
    wf = engine.prepare(face)
    d = deform(face, target)
    out = engine.render(img, face, target, d)
    rx0, ry0, rx1, ry1 = wf.roi
    roi = out[ry0:ry1, rx0:rx1].copy()

    def composite():  # the same paste-back the engine does
        res = img.copy()
        cv2.copyTo(roi, wf.region, res[ry0:ry1, rx0:rx1])

    tmp = Path(tempfile.mkdtemp())
    src = tmp / "in.png"
    Image.fromarray(img).save(src)

    def whole_path():  # what `python -m aufx edit` does, minus interpreter start
        e = Editor(src, cache=None)
        r = e.edit(EditRequest(au_text="AU12:0.8,AU06:0.6,AU26:0.4").target(e.measured()))
        save_image(tmp / "out.png", r.image, r.metadata())

    mx, my = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    return {
        "face analysis (detect + pose)": _median_ms(lambda: analyze_faces(img), repeats),
        "edit, analysis cached": _median_ms(lambda: engine.render(img, face, target, deform(face, target)), repeats),
        "  of which target landmarks": _median_ms(lambda: deform(face, target), repeats),
        "  of which composite": _median_ms(composite, repeats),
        "whole CLI-equivalent path": _median_ms(whole_path, max(3, repeats // 4)),
        "floor: cv2.remap of the image": _median_ms(
            lambda: cv2.remap(img, mx + 0.3, my + 0.3, cv2.INTER_LINEAR), repeats),
    }


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    cols = list(rows)
    names = list(next(iter(rows.values())))
    print(f"\n{title}")
    print(f"{'median ms':34s}" + "".join(f"{c:>12s}" for c in cols))
    for n in names:
        print(f"{n:34s}" + "".join(f"{rows[c][n]:12.2f}" for c in cols))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=("warp", "diffusion"), default="warp")
    p.add_argument("--app", action="store_true", help="benchmark the running Gradio app")
    p.add_argument("--live", action="store_true", help="benchmark the Live tab in headless Chromium")
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    if args.live:
        from eval.bench_live import main as run_live

        return run_live([])
    if args.app:
        from eval.bench_app import main as run_app

        return run_app([])
    if args.engine == "diffusion":
        from eval.bench_diffusion import main as run_diffusion

        return run_diffusion([])
    rows = {f"{s}x{s}": bench_warp(s, args.repeats) for s in args.sizes}
    print_table("warp engine, one core", rows)
    for c, r in rows.items():
        print(f"{c}: edit / remap floor = {r['edit, analysis cached'] / r['floor: cv2.remap of the image']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
