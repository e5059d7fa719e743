"""The frozen parts of the base model, loaded through the engine's own loader (local files only unless allowed).

Going through aufx.diffusion.loading means training and inference read the same folder the same way, and a missing
model gives the engine's message with the exact ``hf download`` command. The prompt is encoded once (with the
pipeline's own ``encode_prompt``, as inference does) and the text encoder is then dropped: it is never trained.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from aufx.diffusion.config import DiffusionConfig
from aufx.diffusion.loading import load_pipeline, resolve_runtime


@dataclass
class BaseModel:
    unet: torch.nn.Module
    vae: torch.nn.Module
    noise_scheduler: object  # DDPMScheduler with the model's own noise schedule
    prompt_embeds: torch.Tensor  # (1, 77, D)
    empty_embeds: torch.Tensor  # (1, 77, D): the text-dropout condition

    @property
    def latent_scale(self) -> float:
        return float(self.vae.config.scaling_factor)


def load_base(model: str, prompt: str, allow_download: bool = False) -> BaseModel:
    """Load on the CPU in float32 (the trainer moves and casts); raises ModelUnavailable with what to fetch."""
    from diffusers import DDPMScheduler

    cfg = DiffusionConfig(model=model, allow_download=allow_download, device="cpu", dtype="float32")
    pipe = load_pipeline(cfg, resolve_runtime("cpu", "float32")).pipe
    with torch.no_grad():
        prompt_embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
        empty_embeds, _ = pipe.encode_prompt("", "cpu", 1, False)
    return BaseModel(unet=pipe.unet, vae=pipe.vae.requires_grad_(False),
                     noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config),
                     prompt_embeds=prompt_embeds, empty_embeds=empty_embeds)
