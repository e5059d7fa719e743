"""Diffusion engine benchmark: median latency per face edit in full mode and few-step mode, and peak GPU memory.

Weights are random (aufx.diffusion.tiny), so no download is needed and the numbers measure compute only:
- ``full_size=True``: the published SD1.5 shapes (float16 on CUDA), i.e. the cost of the real model at 512x512;
- ``full_size=False``: the tiny model, a smoke test of the whole path (crop, img2img, blend) for CPU-only machines.
Each edit goes through DiffusionEngine.refine on a synthetic face; the first edit of each mode is a warm-up.

    python eval/bench_diffusion.py                  # full-size on CUDA, tiny otherwise
    python eval/bench_diffusion.py --tiny --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aufx.au import AUVector  # noqa: E402
from aufx.diffusion.config import DiffusionConfig  # noqa: E402
from aufx.engines.diffusion import DiffusionEngine  # noqa: E402


def synthetic_face(size: int) -> tuple[np.ndarray, np.ndarray]:
    """An image whose face mask fills a crop of about ``size`` pixels, so the model runs at its native size."""
    import cv2

    side = int(size * 1.1)
    img = np.full((side, side, 3), (70, 110, 150), np.uint8)
    axes = (int(size * 0.33), int(size * 0.38))
    cv2.ellipse(img, (side // 2, side // 2), axes, 0, 0, 360, (200, 160, 130), -1)
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (side // 2, side // 2), axes, 0, 0, 360, 1.0, -1)
    return img, mask


def _time_mode(engine: DiffusionEngine, img, mask, repeats: int, cuda: bool) -> dict:
    import torch

    aus = AUVector({"AU06": 0.6, "AU12": 0.8})
    t0 = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - t0
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):  # random fp16 weights may decode to NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        engine.refine(img, mask, aus, seed=0)  # warm-up
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i in range(repeats):
            t0 = time.perf_counter()
            engine.refine(img, mask, aus, seed=i)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    p = engine.params()
    return {
        "mode": "few-step" if engine.config.few_step else "full",
        "scheduler": p["scheduler"],
        "scheduler_steps": p["scheduler_steps"],
        "denoising_steps": p["denoising_steps"],
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "load_s": load_s,
    }


def run(full_size: bool | None = None, steps: int = 25, few_step_steps: int = 4, repeats: int = 5,
        crop_size: int | None = None) -> dict:
    """Benchmark both modes; prints a table and returns the figures. full_size None = full size iff CUDA."""
    import torch

    from aufx.diffusion.loading import CACHE, resolve_runtime
    from aufx.diffusion.tiny import save_tiny_model

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    cuda = torch.cuda.is_available()
    full_size = cuda if full_size is None else full_size
    crop_size = crop_size or (512 if full_size else 64)  # the tiny VAE downsamples x2: 512 px would be 256^2 latents
    rt = resolve_runtime("auto", "auto")
    img, mask = synthetic_face(crop_size)
    with tempfile.TemporaryDirectory() as tmp:
        model = save_tiny_model(tmp, full_size=full_size, controlnet=False, dtype=rt.dtype, device=rt.device)
        base = DiffusionConfig(model=str(model.model_dir), steps=steps, few_step_steps=few_step_steps,
                               crop_size=crop_size)
        rows = [_time_mode(DiffusionEngine(cfg), img, mask, repeats, cuda)
                for cfg in (base, DiffusionConfig(**{**base.to_dict(), "few_step": True}))]
        CACHE.clear()
    result = {
        "model": "SD1.5 shapes, random weights" if full_size else "tiny random SD1.5-shaped model",
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": rt.dtype, "crop_size": crop_size, "strength": base.strength, "guidance_scale": base.guidance_scale,
        "repeats": repeats, "torch": torch.__version__, "rows": rows,
    }
    print(format_table(result))
    return result


def format_table(result: dict) -> str:
    head = (f"diffusion engine: {result['model']} on {result['device']}, {result['dtype']}, "
            f"{result['crop_size']}x{result['crop_size']} face crop, strength {result['strength']}, "
            f"guidance {result['guidance_scale']}, median of {result['repeats']}")
    lines = [head, f"{'mode':<9} {'scheduler':<28} {'steps':>5} {'denoise':>7} {'median s':>9} {'min s':>8} "
                   f"{'peak GPU GiB':>12} {'load s':>7}"]
    for r in result["rows"]:
        peak = f"{r['peak_gpu_gib']:.2f}" if r["peak_gpu_gib"] is not None else "-"
        lines.append(f"{r['mode']:<9} {r['scheduler']:<28} {r['scheduler_steps']:>5} {r['denoising_steps']:>7} "
                     f"{r['median_s']:>9.3f} {r['min_s']:>8.3f} {peak:>12} {r['load_s']:>7.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full_size", action="store_true", default=None, help="SD1.5 shapes (default with CUDA)")
    size.add_argument("--tiny", dest="full_size", action="store_false", help="tiny model (default without CUDA)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--few_step_steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--crop_size", type=int, default=None)
    args = parser.parse_args(argv)
    run(args.full_size, args.steps, args.few_step_steps, args.repeats, args.crop_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
