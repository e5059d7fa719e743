"""Exponential moving average of the trained weights (LoRA + AU encoder), with the usual warm-up.

The effective decay is min(decay, (1 + n) / (10 + n)) after n updates, so early weights are not frozen into the
average by a decay meant for thousands of steps. Only trainable parameters are tracked: 16 MB for an SD1.5 rank-16 LoRA.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


class EMA:
    def __init__(self, named_params: dict[str, torch.nn.Parameter], decay: float):
        self.params = named_params
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: p.detach().float().clone() for k, p in named_params.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self) -> None:
        d = self.current_decay()
        for k, p in self.params.items():
            self.shadow[k].lerp_(p.detach().float(), 1 - d)
        self.num_updates += 1

    @contextmanager
    def applied(self):
        """Temporarily put the EMA weights into the model (to export them), then restore the trained ones."""
        backup = {k: p.detach().clone() for k, p in self.params.items()}
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(self.shadow[k].to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for k, p in self.params.items():
                    p.copy_(backup[k])

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, JSON-able info) for a checkpoint."""
        return self.shadow, {"decay": self.decay, "num_updates": self.num_updates}

    def load(self, tensors: dict[str, torch.Tensor], info: dict) -> None:
        if set(tensors) != set(self.shadow):
            raise ValueError("EMA checkpoint does not match the trained parameters (another LoRA rank or targets?)")
        self.shadow = {k: v.float().to(self.shadow[k].device) for k, v in tensors.items()}
        self.num_updates = int(info["num_updates"])
