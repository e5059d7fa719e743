"""A small differentiable AU regressor: a CNN on aligned face crops -> AU intensities in [0, 1].

It gives the LoRA training an AU loss on the decoded clean-image prediction; being tiny, it adds little to a step.
GroupNorm instead of BatchNorm, so it behaves the same in training, evaluation and inside another model's loss.
Saved as ``au_regressor.safetensors`` + ``au_regressor.json`` (its configuration), side by side.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS = "au_regressor.safetensors"
CONFIG = "au_regressor.json"
FORMAT = "aufx-au-regressor"


class AURegressor(nn.Module):
    def __init__(self, au_keys: Sequence[str], input_size: int = 128, width: int = 32):
        super().__init__()
        self.au_keys, self.input_size, self.width = tuple(au_keys), input_size, width
        chans = [3, width, width * 2, width * 4, width * 8]
        blocks = []
        for c_in, c_out in zip(chans, chans[1:]):
            blocks += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
                       nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1], len(self.au_keys))

    def config(self) -> dict:
        return {"format": FORMAT, "au_keys": list(self.au_keys), "input_size": self.input_size, "width": self.width}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [-1, 1], any size -> (B, K) intensities in [0, 1] in ``au_keys`` order."""
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   antialias=True, align_corners=False)
        return torch.sigmoid(self.head(self.features(images).mean(dim=(2, 3))))


def save_regressor(model: AURegressor, folder: str | Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps({**model.config(), **(extra or {})}, indent=2) + "\n", encoding="utf-8")
    return folder


def load_regressor(folder: str | Path) -> AURegressor:
    """The regressor in ``folder`` (eval mode, frozen); errors name the missing or foreign file."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found; train one with python -m aufx.training.train_au_regressor")
    cfg = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    if cfg.get("format") != FORMAT:
        raise ValueError(f"{folder / CONFIG}: not an AUFX AU regressor (format {cfg.get('format')!r})")
    model = AURegressor(cfg["au_keys"], cfg["input_size"], cfg["width"])
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return model.eval().requires_grad_(False)
