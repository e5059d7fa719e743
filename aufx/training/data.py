"""Training data: the annotation CSV checked and read, images as tensors, and a resumable (optionally balanced) sampler.

The sampler's order depends only on (seed, epoch), never on global random state, so every process of a multi-GPU
run draws the same order (accelerate shards it) and a resumed run can skip exactly the batches already seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler, WeightedRandomSampler

from aufx.io.images import load_image
from aufx.model.presets import EMOTIONS  # AffectNet's 8 categories in its code order (expression 0 = neutral ... 7)


@dataclass
class AnnotationTable:
    paths: list[Path]  # resolved image files
    aus: np.ndarray  # (N, K) normalised intensities in au_keys order
    au_keys: tuple[str, ...]
    labels: np.ndarray | None  # (N,) index into EMOTIONS, -1 = other/unknown; None = no label column
    rows_in_csv: int = 0
    missing_images: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def class_counts(self) -> dict[str, int]:
        if self.labels is None:
            return {}
        counts = {name: int((self.labels == i).sum()) for i, name in enumerate(EMOTIONS)}
        return {**counts, "other": int((self.labels < 0).sum())}

    def counts(self) -> dict:
        """Data counts for logs and the run card."""
        out = {"rows_in_csv": self.rows_in_csv, "usable": len(self), "missing_images": len(self.missing_images)}
        if self.labels is not None:
            out["classes"] = self.class_counts()
        return out


def parse_label(value) -> int:
    """An AffectNet emotion as its index: a name (any case) or its code 0-7; anything else is -1."""
    text = str(value).strip().lower()
    if text in EMOTIONS:
        return EMOTIONS.index(text)
    try:
        code = float(text)
    except ValueError:
        return -1
    return int(code) if code.is_integer() and 0 <= code < len(EMOTIONS) else -1


def read_annotations(csv: str | Path, img_root: str | Path, au_keys: Sequence[str],
                     label_column: str | None = None) -> AnnotationTable:
    """Read and check an annotation CSV; rows whose image is missing are counted and listed, not used."""
    csv, img_root = Path(csv), Path(img_root)
    table = pd.read_csv(csv)
    missing_cols = [c for c in ("image_path", *au_keys) if c not in table.columns]
    if missing_cols:
        raise ValueError(f"{csv}: missing column(s) {missing_cols}; columns are {list(table.columns)}")
    values = table[list(au_keys)].to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row = int(np.nonzero(np.isnan(values).any(axis=1))[0][0])
        raise ValueError(f"{csv}, line {row + 2}: empty AU value")
    if values.min() < 0 or values.max() > 1:
        raise ValueError(f"{csv}: AU values must be normalised to [0, 1] (OpenFace AUxx_r / 5), found "
                         f"{values.min():g}..{values.max():g}; build the CSV with python -m aufx.training.annotations")
    paths = [img_root / p for p in table["image_path"].astype(str)]
    exists = np.array([p.is_file() for p in paths])
    labels = None
    if label_column and label_column in table.columns:
        labels = np.array([parse_label(v) for v in table[label_column]], dtype=np.int64)[exists]
    return AnnotationTable(
        paths=[p for p, ok in zip(paths, exists) if ok], aus=values[exists].astype(np.float32),
        au_keys=tuple(au_keys), labels=labels, rows_in_csv=len(table),
        missing_images=[str(p) for p, ok in zip(paths, exists) if not ok])


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weight 1 / (count of its class), so each present class is drawn equally often; unknown: 0."""
    weights = np.zeros(len(labels), dtype=np.float64)
    for c in np.unique(labels[labels >= 0]):
        weights[labels == c] = 1.0 / (labels == c).sum()
    if not weights.any():
        raise ValueError("balance: no row has one of the 8 AffectNet emotion labels")
    return weights


class FaceDataset(Dataset):
    """(3, S, S) images in [-1, 1] with their AU vectors; non-square images are centre-cropped."""

    def __init__(self, table: AnnotationTable, resolution: int):
        self.table = table
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        rgb = load_image(self.table.paths[i])
        h, w = rgb.shape[:2]
        side = min(h, w)
        rgb = rgb[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        if side != self.resolution:
            interp = cv2.INTER_AREA if side > self.resolution else cv2.INTER_CUBIC
            rgb = cv2.resize(rgb, (self.resolution, self.resolution), interpolation=interp)
        pixels = torch.tensor(rgb).permute(2, 0, 1).float() / 127.5 - 1.0
        return {"pixel_values": pixels, "au": torch.from_numpy(self.table.aus[i])}


class EpochSampler(Sampler[int]):
    """A permutation (or, with weights, a WeightedRandomSampler draw) seeded by (seed, epoch) alone."""

    def __init__(self, n: int, seed: int, weights: np.ndarray | None = None):
        self.n, self.seed, self.epoch = n, seed, 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            return iter(torch.randperm(self.n, generator=gen).tolist())
        return iter(WeightedRandomSampler(self.weights, self.n, replacement=True, generator=gen))
