"""Throughput of the full offline metric set on CPU at 512x512: ``python -m eval.bench_eval``.

Pairs are the astronaut (skimage) and edits of it: local (the warp engine's case) or global. Rates with the source's
face box and embedding cached (the usual case: many outputs per source) or not; each as wall-clock images/s (median
over repeats) and per CPU-second of the process. AU measurement uses a free stand-in, so the rate
excludes the AU estimator's own time (bench it with aufx.model.estimate).
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python eval/bench_eval.py): make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
from skimage import data

from aufx.model.presets import preset_vector
from aufx.evaluation.config import EvalConfig
from aufx.evaluation.evaluate import Evaluator


def make_pairs(n: int, size: int = 512, local: bool = True) -> list[tuple[np.ndarray, np.ndarray, object]]:
    """(source, output, targets). Local: a few-pixel shift of a patch at the mouth or eyes, the rest pixel-exact (as
    the warp engine leaves it). Global: that plus +2 brightness everywhere (the worst case for SSIM)."""
    src = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    s = size / 512
    pairs = []
    for i in range(n):
        out = src.copy()
        y0 = int((140 if i % 2 else 100) * s)
        x0 = int(195 * s)
        patch = (slice(y0, y0 + int(25 * s)), slice(x0, x0 + int(55 * s)))
        out[patch] = np.roll(src[patch], 1 + i % 3, axis=i % 2)
        if not local:
            out = np.clip(out.astype(np.int16) + 2, 0, 255).astype(np.uint8)
        emotion = ("happy", "sad", "surprise", "anger")[i % 4]
        pairs.append((src, out, preset_vector(emotion, float(rng.uniform(0.4, 1.0)))))
    return pairs


def run(n_images: int = 10, repeats: int = 3, size: int = 512) -> dict:
    cases = {"local_cached_source": (make_pairs(n_images, size), "bench"),
             "local_uncached_source": (make_pairs(n_images, size), None),
             "global_cached_source": (make_pairs(n_images, size, local=False), "bench")}
    config = EvalConfig(emotion_backends=("fer", "prototype"), au_backend="aufx")  # the stand-in even with OpenFace
    ev = Evaluator(config, measure_aus=lambda img: {"AU06": 0.5, "AU12": 0.6})  # free stand-in estimator
    src, out, targets = cases["local_cached_source"][0][0]
    ev.pair_metrics(src, out, targets=targets)  # warm-up: first calls allocate
    rates: dict[str, list[float]] = {c: [] for c in cases}
    cpu_rates: dict[str, list[float]] = {c: [] for c in cases}
    stages: dict[str, list[float]] = {}
    for _ in range(repeats):
        for case, (pairs, key) in cases.items():
            start, cpu = time.perf_counter(), time.process_time()
            for src, out, targets in pairs:
                rec = ev.pair_metrics(src, out, targets=targets, source_key=key)
                if case == "local_uncached_source":
                    for stage, ms in rec["timing_ms"].items():
                        stages.setdefault(stage, []).append(ms)
            rates[case].append(len(pairs) / (time.perf_counter() - start))
            cpu_rates[case].append(len(pairs) / (time.process_time() - cpu))
    return {"size": size, "n_images": n_images, "repeats": repeats, "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0], "metrics": list(config.metrics),
            "unavailable": {m: s["reason"] for m, s in ev.metric_status.items() if s["status"] != "ok"},
            "images_per_s": {c: round(statistics.median(v), 2) for c, v in rates.items()},
            # per CPU-second of this process: steadier than wall time when other jobs share the cores
            "images_per_cpu_s": {c: round(statistics.median(v), 2) for c, v in cpu_rates.items()},
            "stage_ms_median_local_uncached": {k: round(statistics.median(v), 2) for k, v in stages.items()}}


def main() -> int:
    result = run()
    print(f"{result['size']}x{result['size']}, {result['n_images']} images x {result['repeats']} repeats, "
          f"{result['cpu_count']} CPUs, load average {result['load_average_1min']:.2f}")
    for case, rate in result["images_per_s"].items():
        print(f"images/s {case.replace('_', ' '):24s} {rate:6.2f}  (per CPU-second {result['images_per_cpu_s'][case]})")
    print("stage medians, local edits, uncached source:")
    for stage, ms in result["stage_ms_median_local_uncached"].items():
        print(f"  {stage:12s} {ms:8.2f} ms")
    for metric, reason in result["unavailable"].items():
        print(f"unavailable {metric}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
