"""The run card: what was trained, on what, how, and what came out — ``run_card.json`` and a short ``README.md``.

Written into the output folder beside ``lora_unet.safetensors``, so a LoRA file found later can be traced: config,
data counts, final losses, versions, and every loss that was switched off with the reason.
"""
from __future__ import annotations

import json
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("aufx", "torch", "diffusers", "transformers", "peft", "accelerate", "safetensors", "numpy")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def final_losses(history: list[dict], window: int = 50) -> dict[str, float]:
    """Mean of each loss term over the last ``window`` steps that have it."""
    out = {}
    for key in ("loss", "noise", "au", "identity", "perceptual"):
        values = [h[key] for h in history if key in h][-window:]
        if values:
            out[key] = round(sum(values) / len(values), 6)
    return out


def write_run_card(out: Path, card: dict) -> Path:
    card = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(), **card}
    (out / "run_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(card), encoding="utf-8")
    return out / "run_card.json"


def _readme(card: dict) -> str:
    cfg, data, res = card["config"], card["data"], card["resolved"]
    off = [f"- **{name}** (lambda {s['weight']:g}): {s['reason']}" for name, s in card["losses"].items()
           if not s["active"] and s["weight"] > 0]
    on = ", ".join(f"{name} ({s['weight']:g}; {s['model']})" for name, s in card["losses"].items() if s["active"])
    fallback = [f"- **{name}** uses {s['model']}: {s['reason']}" for name, s in card["losses"].items()
                if s["active"] and s["reason"]]
    speed = card["speed"]
    peak = speed["peak_gpu_memory_gib"]
    lines = [
        "# AUFX AU-conditioned LoRA",
        "",
        f"LoRA (rank {cfg['lora_rank']}, alpha {cfg['lora_alpha']:g}) on `{cfg['pretrained_model']}` with an AU "
        f"encoder for {', '.join(cfg['au_keys'])}; {card['steps']} steps "
        f"({'EMA weights' if cfg['ema'] else 'last weights'} exported).",
        "",
        "```bash",
        f"python -m aufx edit --engine diffusion --model {cfg['pretrained_model']} --lora_path "
        f"{Path(cfg['output_dir']) / 'lora_unet.safetensors'} --input face.jpg --au \"AU12:0.8\" --output out.png",
        "```",
        "",
        f"- data: {data['usable']} images of {data['rows_in_csv']} CSV rows ({data['missing_images']} missing), "
        f"{cfg['resolution']} px, sampler {data['sampler']}"
        + (f"; classes {data['classes']}" if data.get("classes") else ""),
        f"- batch {cfg['batch_size']} x {res['num_processes']} process(es) x {cfg['grad_accum']} accumulation, "
        f"lr {cfg['lr']:g}, precision {res['mixed_precision']} on {res['device']}"
        + (f" ({res['precision_note']})" if res["precision_note"] else ""),
        f"- losses on: {on}",
        f"- final losses (mean of the last steps): {card['final_losses']}",
        f"- speed: {speed['steps_per_second']:.3g} steps/s, {speed['images_per_second']:.3g} images/s over "
        f"{speed['timed_steps']} steps (the first {speed['warmup_steps']} left out: first step "
        f"{speed['first_step_seconds']:.3g} s)" + (f"; peak GPU memory {peak:.2f} GiB" if peak is not None else ""),
    ]
    if off:
        lines += ["", "## Losses switched off", *off]
    if fallback:
        lines += ["", "## Losses on a fallback model", *fallback]
    lines += ["", "Full details: `run_card.json`; config: `train_config.yaml`; TensorBoard: `logs/`.", ""]
    return "\n".join(lines)
