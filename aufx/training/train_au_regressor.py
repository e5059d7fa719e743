"""Train the AU regressor used by the LoRA training's AU loss, on the same (aligned) annotations.

    python -m aufx.training.train_au_regressor --annotations data/aligned/annotations.csv --img_root data/aligned \
        --out runs/au_lora

Writes ``au_regressor.safetensors`` + ``au_regressor.json`` into ``--out`` (put it beside the LoRA run). The JSON
records the validation MSE next to that of always predicting the training mean, so a useless regressor is visible.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from aufx.io.openface import OPENFACE_AUS
from aufx.training.annotations import parse_au_key
from aufx.training.au_regressor import AURegressor, save_regressor
from aufx.training.data import FaceDataset, read_annotations


@dataclass(frozen=True)
class RegressorConfig:
    annotations: str
    img_root: str
    out: str
    au_keys: tuple[str, ...] | None = None  # None: every OpenFace AU column the CSV has
    input_size: int = 128
    width: int = 32
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    val_fraction: float = 0.1
    seed: int = 0
    num_workers: int = 4
    device: str = "auto"


def _au_columns(csv: str, au_keys: Sequence[str] | None) -> tuple[str, ...]:
    if au_keys:
        return tuple(dict.fromkeys(parse_au_key(k) for k in au_keys))
    import pandas as pd

    header = pd.read_csv(csv, nrows=0).columns
    keys = tuple(a for a in OPENFACE_AUS if a in header)
    if not keys:
        raise ValueError(f"{csv}: no AU columns (AU01 ... AU45)")
    return keys


def _mse(model: AURegressor, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            pred = model(batch["pixel_values"].to(device))
            total += F.mse_loss(pred, batch["au"].to(device), reduction="sum").item() / pred.shape[1]
            n += pred.shape[0]
    model.train()
    return total / max(n, 1)


def train_regressor(cfg: RegressorConfig, progress: bool = True) -> dict:
    """Train, save, and return the history: per-epoch train and validation MSE, and the mean-prediction baseline."""
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          "cpu" if cfg.device == "auto" else cfg.device)
    keys = _au_columns(cfg.annotations, cfg.au_keys)
    table = read_annotations(cfg.annotations, cfg.img_root, keys)
    if table.missing_images:
        print(f"warning: {len(table.missing_images)} image(s) listed in {cfg.annotations} are missing, e.g. "
              f"{table.missing_images[0]}")
    dataset = FaceDataset(table, cfg.input_size)
    order = np.random.default_rng(cfg.seed).permutation(len(dataset))
    n_val = int(round(len(dataset) * cfg.val_fraction)) if len(dataset) > 1 else 0
    val, train = Subset(dataset, order[:n_val].tolist()), Subset(dataset, order[n_val:].tolist())
    gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                              num_workers=cfg.num_workers, drop_last=len(train) > cfg.batch_size)
    val_loader = DataLoader(val, batch_size=cfg.batch_size, num_workers=cfg.num_workers)

    model = AURegressor(keys, cfg.input_size, cfg.width).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * len(train_loader))
    history: dict = {"train_mse": [], "val_mse": [], "step_loss": []}
    for _ in tqdm(range(cfg.epochs), disable=not progress, desc="AU regressor"):
        epoch_loss, seen = 0.0, 0
        for batch in train_loader:
            x, y = batch["pixel_values"].to(device), batch["au"].to(device)
            flip = torch.rand(x.shape[0], generator=gen) < 0.5  # AU labels are bilateral: a mirror keeps them
            x = torch.where(flip.to(device)[:, None, None, None], x.flip(-1), x)
            loss = F.mse_loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            history["step_loss"].append(loss.item())
            epoch_loss, seen = epoch_loss + loss.item() * x.shape[0], seen + x.shape[0]
        history["train_mse"].append(epoch_loss / max(seen, 1))
        if n_val:
            history["val_mse"].append(_mse(model, val_loader, device))
    train_mean = table.aus[order[n_val:]].mean(axis=0)
    baseline = float(((table.aus[order[:n_val]] - train_mean) ** 2).mean()) if n_val else None
    summary = {"trained_on": str(cfg.annotations), "n_train": len(train), "n_val": n_val,
               "final_val_mse": history["val_mse"][-1] if n_val else None, "val_mse_predict_mean": baseline,
               "final_train_mse": history["train_mse"][-1], "settings": asdict(cfg)}
    save_regressor(model.cpu(), cfg.out, extra=summary)
    return {**history, **summary}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aufx.training.train_au_regressor", description=__doc__.split("\n\n")[0])
    p.add_argument("--annotations", required=True, help="annotation CSV (aligned crops: aufx.training.preprocess)")
    p.add_argument("--img_root", required=True, help="image_path is relative to this folder")
    p.add_argument("--out", required=True, help="folder for au_regressor.safetensors/.json (the LoRA run folder)")
    p.add_argument("--au_keys", nargs="+", help="AU columns to learn (default: every OpenFace AU in the CSV)")
    defaults = RegressorConfig("", "", "")
    for name in ("input_size", "width", "epochs", "batch_size", "lr", "val_fraction", "seed", "num_workers",
                 "device"):
        value = getattr(defaults, name)
        p.add_argument(f"--{name}", type=type(value), default=value, help=f"default: {value}")
    args = vars(p.parse_args(argv))
    args["au_keys"] = tuple(args["au_keys"]) if args["au_keys"] else None
    try:
        result = train_regressor(RegressorConfig(**args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = ("n_train", "n_val", "final_train_mse", "final_val_mse", "val_mse_predict_mean")
    print(json.dumps({k: result[k] for k in keys}))
    print(f"wrote {Path(args['out']) / 'au_regressor.safetensors'} and au_regressor.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
