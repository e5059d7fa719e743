"""One img2img pass on a face crop: text embeddings (cached) + AU tokens, seeded, with the configured scheduler."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from aufx.diffusion.config import DiffusionConfig
from aufx.diffusion.loading import LoadedPipeline


def generate(loaded: LoadedPipeline, cfg: DiffusionConfig, crop_rgb: np.ndarray, aus: Mapping[str, float] | None,
             seed: int, control_image: np.ndarray | None = None) -> np.ndarray:
    """Refine a (S, S, 3) uint8 crop; returns (S, S, 3) float32 RGB in [0, 1].

    AU tokens go to both classifier-free-guidance branches: guidance amplifies the text prompt only, and the AU
    condition acts like the init image (the LoRA is trained with text dropout, never AU dropout).
    """
    import torch
    from PIL import Image

    from aufx.diffusion.au_encoder import append_au_tokens

    pipe = loaded.pipe
    guidance = cfg.active_guidance_scale
    cfg_on = guidance > 1 and pipe.unet.config.time_cond_proj_dim is None
    with loaded.lock, torch.inference_mode():
        loaded.use_scheduler(cfg)
        positive, negative = loaded.prompt_embeds(cfg.prompt, cfg.negative_prompt, cfg_on)
        if loaded.au_encoder is not None and aus is not None:
            enc = loaded.au_encoder
            tokens = enc(enc.vectorize(aus).to(next(enc.parameters()).device))
            positive = append_au_tokens(positive, tokens)
            negative = append_au_tokens(negative, tokens) if negative is not None else None
        kwargs = {}
        if control_image is not None:
            kwargs = {"control_image": Image.fromarray(control_image),
                      "controlnet_conditioning_scale": cfg.controlnet_scale}
        out = pipe(
            image=Image.fromarray(crop_rgb), prompt_embeds=positive, negative_prompt_embeds=negative,
            strength=cfg.strength, num_inference_steps=cfg.active_steps, guidance_scale=guidance,
            generator=torch.Generator("cpu").manual_seed(int(seed)), output_type="np", **kwargs,
        ).images
    return np.asarray(out[0], dtype=np.float32)
