"""The trained model: the base UNet with the AUFX LoRA adapter plus the AU encoder, as one module.

One module so that accelerate prepares (and, on several GPUs, wraps in DDP) a single thing whose forward builds the
AU-conditioned ``encoder_hidden_states`` exactly as inference does (aufx.diffusion.au_encoder).
"""
from __future__ import annotations

import torch
from torch import nn

from aufx.au import channel_au, get_au
from aufx.diffusion.au_encoder import AUEncoder, training_conditioning
from aufx.diffusion.lora_io import LoraSpec, attach_lora


def encoder_channels(au_keys: tuple[str, ...]) -> tuple[str, ...]:
    """AU encoder inputs: every channel of the trained AUs (AU12 -> L12, R12), as the engine's AUVector has them."""
    return tuple(ch for key in au_keys for ch in get_au(key).channels())


class AUDenoiser(nn.Module):
    def __init__(self, unet, au_keys: tuple[str, ...], spec: LoraSpec, n_tokens: int, hidden: int):
        super().__init__()
        unet.requires_grad_(False)
        attach_lora(unet, spec)
        self.unet = unet
        channels = encoder_channels(au_keys)
        self.au_encoder = AUEncoder(channels, n_tokens=n_tokens, token_dim=unet.config.cross_attention_dim,
                                    hidden=hidden)
        # AU-key values -> encoder channel order (a bilateral AU feeds both of its sides)
        index = [au_keys.index(channel_au(ch).code) for ch in channels]
        self.register_buffer("channel_index", torch.tensor(index), persistent=False)

    def trainable(self) -> dict[str, nn.Parameter]:
        return {k: p for k, p in self.named_parameters() if p.requires_grad}

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, text: torch.Tensor, au: torch.Tensor) -> torch.Tensor:
        """(B, 4, h, w) noisy latents, (B,) timesteps, (B, 77, D) text embeddings, (B, K) AUs -> UNet prediction."""
        channels = au[:, self.channel_index].float()
        tokens = self.au_encoder(channels)
        states, mask = training_conditioning(text, tokens, channels)
        return self.unet(noisy, t, encoder_hidden_states=states, encoder_attention_mask=mask).sample
