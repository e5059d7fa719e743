"""AU encoder: maps an AU vector to a few extra cross-attention tokens appended to the text embedding.

Two properties make it safe to ship untrained and to leave neutral faces alone:
- the MLP has no biases and SiLU(0) = 0, so a zero AU vector always gives all-zero tokens;
- the output projection starts at zero, so a fresh encoder gives all-zero tokens for every AU vector;
and :func:`append_au_tokens` drops token positions that are zero, so in both cases the UNet sees exactly the
base model's text embedding (a zero key would still take softmax mass, so appending zeros is not a no-op).

Training uses :func:`training_conditioning` instead: the tokens are always appended (so the zero-initialised
projection receives gradients) and masked for samples whose AU vector is zero, which is what inference does
for them. The two agree for any encoder whose tokens are non-zero for non-zero AUs, i.e. any trained one.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class AUEncoder(nn.Module):
    def __init__(self, channels: Sequence[str], n_tokens: int = 4, token_dim: int = 768, hidden: int = 256):
        super().__init__()
        self.channels = tuple(channels)
        self.n_tokens = n_tokens
        self.token_dim = token_dim
        self.hidden = hidden
        self.net = nn.Sequential(
            nn.Linear(len(self.channels), hidden, bias=False),
            nn.SiLU(),
            nn.Linear(hidden, n_tokens * token_dim, bias=False),
        )
        nn.init.zeros_(self.net[2].weight)

    def config(self) -> dict:
        return {"channels": list(self.channels), "n_tokens": self.n_tokens, "token_dim": self.token_dim,
                "hidden": self.hidden}

    def vectorize(self, aus: Mapping[str, float]) -> torch.Tensor:
        """AU mapping (e.g. aufx.au.AUVector) -> (1, n_channels) float tensor in this encoder's channel order."""
        return torch.tensor([[float(aus[c]) for c in self.channels]], dtype=torch.float32)

    def forward(self, au: torch.Tensor) -> torch.Tensor:
        """(B, n_channels) intensities in [0, 1] -> (B, n_tokens, token_dim) tokens."""
        return self.net(au).view(au.shape[0], self.n_tokens, self.token_dim)


def append_au_tokens(embeds: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Append the AU tokens to (B, 77, D) text embeddings, skipping positions that are zero in every sample."""
    keep = tokens.abs().amax(dim=(0, 2)) > 0
    if not bool(keep.any()):
        return embeds
    tokens = tokens[:, keep].to(embeds.dtype)
    return torch.cat([embeds, tokens.expand(embeds.shape[0], -1, -1)], dim=1)


def training_conditioning(embeds: torch.Tensor, tokens: torch.Tensor, au: torch.Tensor):
    """(B, 77, D) text embeddings + (B, N, D) tokens of (B, C) AU vectors -> UNet ``encoder_hidden_states`` and
    ``encoder_attention_mask`` (1 = attend): text always, AU tokens only for samples with a non-zero AU vector."""
    batch, n_text = embeds.shape[:2]
    states = torch.cat([embeds, tokens.to(embeds.dtype)], dim=1)
    active = (au.abs().amax(dim=1) > 0).to(embeds.dtype)
    mask = torch.cat([torch.ones(batch, n_text, dtype=embeds.dtype, device=embeds.device),
                      active[:, None].expand(batch, tokens.shape[1])], dim=1)
    return states, mask
