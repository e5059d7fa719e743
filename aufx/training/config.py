"""Settings of a LoRA training run: one dataclass holds every default; the YAML file mirrors it; flags override it.

    python -m aufx.training.train --config aufx/training/configs/train_sd15_lora.yaml --lora_rank 16 --batch_size 8 ...

Order of precedence: dataclass defaults < ``--config`` YAML < command-line flags. Unknown YAML keys are errors that
name the key, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import argparse
import types
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from aufx.diffusion.config import DEFAULT_MODEL, DiffusionConfig
from aufx.training.annotations import parse_au_key

DEFAULT_YAML = Path(__file__).with_name("configs") / "train_sd15_lora.yaml"
MIXED_PRECISION = ("no", "fp16", "bf16")
LATEST = "latest"


@dataclass(frozen=True)
class TrainConfig:
    # --- data ---
    train_csv: str = "data/aligned/annotations.csv"  # image_path,AU01,... (aufx.training.preprocess output)
    img_root: str = "data/aligned"  # image_path is relative to this folder
    au_keys: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU06", "AU12", "AU15", "AU25", "AU26", "AU45")
    resolution: int = 512  # training image side; crops of another size are resized to it
    hflip: bool = True  # random horizontal flips (the AU labels are bilateral, so they stay valid)
    label_column: str = "emotion"  # AffectNet emotion column (names or codes 0-7), used by --balance
    balance: bool = False  # sample the emotion classes equally often (WeightedRandomSampler)
    num_workers: int = 4  # DataLoader worker processes
    # --- base model ---
    pretrained_model: str = DEFAULT_MODEL  # SD1.5 Hugging Face id or local diffusers folder
    allow_download: bool = False  # fetch missing weights from the Hub; off = local files only (as the engine)
    prompt: str = DiffusionConfig.prompt  # the engine's default prompt: train on what inference will use
    text_dropout: float = 0.1  # share of samples trained with the empty prompt (AU tokens are never dropped)
    # --- LoRA and AU encoder ---
    lora_rank: int = 16
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    au_tokens: int = 4  # extra cross-attention tokens made by the AU encoder
    au_hidden: int = 256  # AU encoder hidden width
    # --- optimisation ---
    batch_size: int = 8  # per process
    grad_accum: int = 1  # micro-batches per optimiser step
    max_steps: int = 20000  # optimiser steps
    lr: float = 1e-4
    lr_warmup_steps: int = 500  # linear warm-up, then constant
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    mixed_precision: str = "fp16"  # no | fp16 | bf16; on a CPU the run falls back to fp32 and says so
    cpu: bool = False  # train on the CPU even where a CUDA GPU is present (tests, debugging)
    gradient_checkpointing: bool = False  # trade compute for memory in the UNet and the VAE decoder
    seed: int = 0
    # --- losses ---
    lambda_au: float = 1.0  # AU regressor on the decoded clean-image prediction x0
    lambda_id: float = 0.5  # identity: 1 - cos of facenet embeddings, else dlib descriptor distance (offline)
    lambda_lpips: float = 0.2  # perceptual: LPIPS(x0, real image), else 1 - MS-SSIM of the face crops (offline)
    au_regressor: str | None = None  # folder with au_regressor.safetensors/.json (aufx.training.train_au_regressor)
    aux_max_timestep: int = 400  # image-space losses only where x0 is still a face (t <= this; of 1000)
    aux_samples: int = 2  # at most this many samples per batch get them (VAE decode with gradients is the peak)
    # --- EMA ---
    ema: bool = True  # keep an EMA of the LoRA and AU encoder; the exported file holds the EMA weights
    ema_decay: float = 0.999
    # --- output, checkpoints, logging ---
    output_dir: str = "runs/au_lora"
    checkpoint_every: int = 1000  # optimiser steps between checkpoints (the last step is always saved)
    keep_checkpoints: int = 3  # newest checkpoints kept
    resume: str | None = None  # "latest" (newest checkpoint in output_dir) or a checkpoint folder
    log_every: int = 10  # optimiser steps between TensorBoard points and history lines
    speed_warmup_steps: int = 2  # first steps left out of the run card's speed (CUDA/cuDNN set-up, compile)
    report_to: str | None = "tensorboard"  # accelerate tracker; None = no tracker

    def __post_init__(self) -> None:
        object.__setattr__(self, "au_keys", tuple(dict.fromkeys(parse_au_key(k) for k in self.au_keys)))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        if self.resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8 (the VAE's downsampling), got {self.resolution}")
        for name in ("batch_size", "grad_accum", "max_steps", "lora_rank", "au_tokens", "au_hidden",
                     "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lambda_au", "lambda_id", "lambda_lpips", "lr", "lr_warmup_steps", "checkpoint_every",
                     "aux_samples", "num_workers", "speed_warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.text_dropout <= 1.0 or not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("text_dropout must be in [0, 1] and ema_decay in [0, 1)")

    def to_dict(self) -> dict:
        """Plain YAML/JSON types (tuples as lists), as in the YAML file."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def load_yaml(path: str | Path) -> dict:
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
    unknown = sorted(set(data) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {unknown}; see aufx/training/config.py for the fields")
    return data


def save_yaml(config: TrainConfig, path: str | Path) -> Path:
    import yaml

    path = Path(path)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    return path


def _base_type(hint) -> tuple[type, bool]:
    """(scalar type, optional) of a field's annotation: ``str | None`` -> (str, True)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in args if a is not type(None)), True
    return hint, False


def parser() -> argparse.ArgumentParser:
    """One flag per TrainConfig field; unset flags stay None so YAML and dataclass defaults win."""
    p = argparse.ArgumentParser(prog="python -m aufx.training.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help=f"YAML with TrainConfig fields (e.g. {DEFAULT_YAML.as_posix()})")
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        kind, optional = _base_type(hints[f.name])
        flag = f"--{f.name}"
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif typing.get_origin(kind) is tuple:
            p.add_argument(flag, nargs="+", default=None)
        elif f.name == "resume":
            p.add_argument(flag, nargs="?", const=LATEST, default=None,
                           help="continue from the newest checkpoint (no value) or from a checkpoint folder")
        else:
            convert = (lambda s, k=kind: None if s.lower() in ("none", "null") else k(s)) if optional else kind
            p.add_argument(flag, type=convert, default=None, help=f"default: {f.default}")
    return p


def from_args(argv: typing.Sequence[str] | None = None) -> TrainConfig:
    args = parser().parse_args(argv)
    values = load_yaml(args.config) if args.config else {}
    values.update({f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None})
    return TrainConfig(**values)
