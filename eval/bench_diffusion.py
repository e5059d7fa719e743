"""Diffusion engine benchmark: median latency per face edit in full and few-step mode, with each speed option
(DiffusionConfig: channels_last, attention, tiny_vae_path, compile / compile_mode) measured on its own row, and peak
GPU memory.

Weights are random (aufx.diffusion.tiny), so no download is needed and the numbers measure compute only:
- ``full_size=True``: the published SD1.5 shapes (float16 on CUDA), i.e. the cost of the real model at 512x512, and
  a TAESD-shaped tiny autoencoder for the tiny-VAE rows;
- ``full_size=False``: the tiny model, a smoke test of the whole path (crop, img2img, blend) for CPU-only machines.
Each edit goes through DiffusionEngine.refine on a synthetic face; the first edits of a row are warm-up (three with
torch.compile, whose CUDA graphs are recorded on the first calls). ``diff`` is the largest pixel difference from the
row's baseline (same mode, same seed): a speed option should not change the image beyond float16 rounding; the
tiny autoencoder does (random weights here; a trained TAESD approximates the VAE).

    python eval/bench_diffusion.py                       # full-size on CUDA, tiny otherwise
    python eval/bench_diffusion.py --tiny --repeats 3 --json bench.json
    python eval/bench_diffusion.py --compile             # adds torch.compile rows (minutes of compilation)
"""
from __future__ import annotations

import argparse
import json
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


VARIANTS = {  # name -> (config overrides, baseline row)
    "full": ({}, None),
    "few-step": ({"few_step": True}, None),
    "few-step + classic attention": ({"few_step": True, "attention": "classic"}, "few-step"),
    "few-step + channels-last": ({"few_step": True, "channels_last": True}, "few-step"),
    "few-step + tiny VAE": ({"few_step": True, "tiny_vae_path": "<taesd>"}, "few-step"),
    "few-step + tiny VAE + channels-last": ({"few_step": True, "tiny_vae_path": "<taesd>", "channels_last": True},
                                            "few-step"),
}
COMPILED = {
    "few-step + compile": ({"few_step": True, "compile": True}, "few-step"),
    "few-step + compile (CUDA graphs)": ({"few_step": True, "compile": True, "compile_mode": "reduce-overhead"},
                                         "few-step"),
    "few-step + tiny VAE + channels-last + CUDA graphs": (
        {"few_step": True, "tiny_vae_path": "<taesd>", "channels_last": True, "compile": True,
         "compile_mode": "reduce-overhead"}, "few-step"),
}


def _time_row(name: str, engine: DiffusionEngine, img, mask, repeats: int, cuda: bool, warmup: int):
    """(row, first timed output)."""
    import torch

    aus = AUVector({"AU06": 0.6, "AU12": 0.8})
    t0 = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - t0
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):  # random fp16 weights may decode to NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(warmup):
            engine.refine(img, mask, aus, seed=0)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times, first = [], None
        for i in range(repeats):
            t0 = time.perf_counter()
            out = engine.refine(img, mask, aus, seed=i)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            first = out if first is None else first
    p = engine.params()
    return {
        "variant": name,
        "scheduler": p["scheduler"],
        "scheduler_steps": p["scheduler_steps"],
        "denoising_steps": p["denoising_steps"],
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "load_s": load_s,
        "warmup_edits": warmup,
    }, first


def run(full_size: bool | None = None, steps: int = 25, few_step_steps: int = 4, repeats: int = 5,
        crop_size: int | None = None, compile: bool = False, variants: list[str] | None = None) -> dict:
    """Benchmark the variants; prints a table and returns the figures. full_size None = full size iff CUDA."""
    import torch

    from aufx.diffusion.loading import CACHE, resolve_runtime
    from aufx.diffusion.tiny import save_tiny_autoencoder, save_tiny_model

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    cuda = torch.cuda.is_available()
    full_size = cuda if full_size is None else full_size
    crop_size = crop_size or (512 if full_size else 64)  # the tiny VAE downsamples x2: 512 px would be 256^2 latents
    rt = resolve_runtime("auto", "auto")
    table = {**VARIANTS, **(COMPILED if compile else {})}
    if not cuda:  # CUDA graphs need CUDA
        table = {k: v for k, v in table.items() if v[0].get("compile_mode") != "reduce-overhead"}
    chosen = variants or list(table)
    unknown = [v for v in chosen if v not in table]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(table)}")
    img, mask = synthetic_face(crop_size)
    rows, outputs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        model = save_tiny_model(tmp, full_size=full_size, controlnet=False, dtype=rt.dtype, device=rt.device)
        taesd = save_tiny_autoencoder(tmp, full_size=full_size, dtype=rt.dtype)
        base = DiffusionConfig(model=str(model.model_dir), steps=steps, few_step_steps=few_step_steps,
                               crop_size=crop_size)
        for name in chosen:
            overrides, baseline = table[name]
            overrides = {k: str(taesd) if v == "<taesd>" else v for k, v in overrides.items()}
            engine = DiffusionEngine(DiffusionConfig(**{**base.to_dict(), **overrides}))
            row, outputs[name] = _time_row(name, engine, img, mask, repeats, cuda,
                                           3 if overrides.get("compile") else 1)
            ref = outputs.get(baseline)
            row["max_diff_vs"] = baseline if ref is not None else None
            row["max_diff"] = int(np.abs(outputs[name].astype(int) - ref).max()) if ref is not None else None
            rows.append(row)
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
    lines = [head, f"{'variant':<50} {'scheduler':<28} {'steps':>5} {'denoise':>7} {'median s':>9} {'min s':>8} "
                   f"{'peak GiB':>8} {'load s':>7} {'diff':>5}"]
    for r in result["rows"]:
        peak = f"{r['peak_gpu_gib']:.2f}" if r["peak_gpu_gib"] is not None else "-"
        diff = "-" if r["max_diff"] is None else str(r["max_diff"])
        lines.append(f"{r['variant']:<50} {r['scheduler']:<28} {r['scheduler_steps']:>5} {r['denoising_steps']:>7} "
                     f"{r['median_s']:>9.3f} {r['min_s']:>8.3f} {peak:>8} {r['load_s']:>7.2f} {diff:>5}")
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
    parser.add_argument("--compile", action="store_true", help="add the torch.compile rows (slow to compile)")
    parser.add_argument("--variant", action="append", default=None, help="only this row (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON to this file")
    args = parser.parse_args(argv)
    result = run(args.full_size, args.steps, args.few_step_steps, args.repeats, args.crop_size, args.compile,
                 args.variant)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
