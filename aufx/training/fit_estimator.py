"""Fit the AU estimator's calibration to OpenFace's scale on your own annotated faces (CPU, seconds).

    python -m aufx.training.fit_estimator --annotations data/annotations_train.csv --img_root . --out results/estimator.json

Reads the annotation CSV written by ``aufx.training.annotations`` (``image_path,AU01,...,AU45``, values 0..1), measures
the raw AUs of the largest face in every image (``aufx.model.estimate.estimate_raw``), keeps a seeded share of the images
out, fits one ridge model per annotated AU on the rest, and reports each AU's Pearson r and MAE on the held-out
images beside the raw estimator's, so you see where calibration helps. The saved JSON is the model that was
evaluated (fitted on the training part only). Use it with ``python -m aufx estimate --estimator <file>``.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from aufx import __version__
from aufx.au import au_codes
from aufx.model.calibration import AUModel, Calibration, feature_names, features, own_feature
from aufx.model.estimate import estimate_raw
from aufx.face.analysis import analyze_faces
from aufx.io.images import ImageReadError, load_image
from aufx.training.ridge import fit_ridge, pearson_r

SPLITS = ("image", "video")
_FRAME_SUFFIX = re.compile(r"[_\-. ]?\d+$")
_MIN_TRAIN, _MIN_TEST = 3, 2


@dataclass(frozen=True)
class FitConfig:
    annotations: Path
    img_root: Path = Path(".")            # image_path in the CSV is relative to this
    out: Path = Path("results/estimator.json")
    alpha: float | None = None            # ridge penalty; None: per AU, the value with the lowest leave-one-out error
    holdout: float = 0.2                  # share of images (or videos) kept out of fitting, for honest r and MAE
    seed: int = 0                         # same data and seed give the same split
    split_by: str = "image"               # "video": frames of one video (clip_000123.jpg) never straddle the split

    def __post_init__(self):
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must be between 0 and 1, got {self.holdout}")
        if self.split_by not in SPLITS:
            raise ValueError(f"split_by must be one of {SPLITS}, got {self.split_by!r}")
        if self.alpha is not None and not self.alpha > 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")


@dataclass(frozen=True, eq=False)  # holds arrays
class Measured:
    paths: list[str]   # image_path of each kept row
    x: np.ndarray      # (n, n_features) raw estimates
    y: np.ndarray      # (n, n_aus) annotations
    aus: tuple[str, ...]
    skipped: list[str]  # "<image_path>: reason"


def read_annotations(path: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The annotation table and its AU columns; values must be normalised intensities (OpenFace _r / 5)."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation CSV {path} does not exist")
    table = pd.read_csv(path)
    if "image_path" not in table.columns:
        raise ValueError(f"{path}: no image_path column; write it with python -m aufx.training.annotations")
    aus = tuple(c for c in table.columns if c in au_codes())
    if not aus:
        raise ValueError(f"{path}: no AU columns (AU01 ... AU45)")
    values = table[list(aus)].apply(pd.to_numeric, errors="coerce")
    bad = values.isna() | (values < 0) | (values > 1)
    if bad.any().any():
        row, col = (int(i[0]) for i in np.nonzero(bad.to_numpy()))
        raise ValueError(f"{path}, line {row + 2}: {aus[col]} = {str(table[aus[col]].iloc[row])!r}; annotations are "
                         "normalised intensities in [0, 1] (OpenFace AUxx_r / 5)")
    table[list(aus)] = values
    return table, aus


def measure(table: pd.DataFrame, aus: tuple[str, ...], img_root: Path) -> Measured:
    """Raw AU estimates of the largest face in each image; unreadable images and images without a face are skipped."""
    paths, xs, ys, skipped = [], [], [], []
    rows = table.itertuples(index=False)
    for row in tqdm(rows, total=len(table), desc="measuring", unit="img", file=sys.stderr):
        rel = str(row.image_path)
        try:
            faces = analyze_faces(load_image(img_root / rel))
        except ImageReadError as exc:
            skipped.append(f"{rel}: {exc}")
            continue
        if not faces:
            skipped.append(f"{rel}: no face found")
            continue
        paths.append(rel)
        xs.append(features(estimate_raw(faces[0])))
        ys.append([getattr(row, au) for au in aus])
    n_f = len(feature_names())
    return Measured(paths, np.array(xs).reshape(-1, n_f), np.array(ys).reshape(-1, len(aus)), aus, skipped)


def split(paths: Sequence[str], config: FitConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test indices; with split_by="video" whole videos (names minus the frame number) go one way."""
    if config.split_by == "video":
        keys = [str(Path(p).with_name(_FRAME_SUFFIX.sub("", Path(p).stem))) for p in paths]
    else:
        keys = list(paths)
    groups = list(dict.fromkeys(keys))
    rng = np.random.default_rng(config.seed)
    n_test = int(round(config.holdout * len(groups)))
    test_groups = {groups[i] for i in rng.permutation(len(groups))[:n_test]}
    is_test = np.array([k in test_groups for k in keys], bool)
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    if len(train) < _MIN_TRAIN or len(test) < _MIN_TEST:
        raise ValueError(f"{len(paths)} images with a face in {len(groups)} {config.split_by} group(s) give "
                         f"{len(train)} to fit and {len(test)} to test; need at least {_MIN_TRAIN} and {_MIN_TEST}")
    return train, test


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(v, nd)


def fit(data: Measured, config: FitConfig) -> Calibration:
    """One ridge model per AU on the training part, scored on the held-out part against the raw estimator."""
    train, test = split(data.paths, config)
    names = feature_names()
    models = {}
    for j, au in enumerate(data.aus):
        y = data.y[:, j]
        model = fit_ridge(data.x[train], y[train], config.alpha)
        pred = np.clip(model.predict(data.x[test]), 0.0, 1.0)
        raw = np.clip(data.x[test, own_feature(au)], 0.0, 1.0)
        heldout = {"n": len(test),
                   "pearson_r": _round(pearson_r(pred, y[test])), "mae": _round(float(np.abs(pred - y[test]).mean())),
                   "pearson_r_raw": _round(pearson_r(raw, y[test])),
                   "mae_raw": _round(float(np.abs(raw - y[test]).mean()))}
        models[au] = AUModel(round(model.intercept, 6), {f: round(float(w), 6) for f, w in zip(names, model.coef)},
                             model.alpha, len(train), heldout)
    info = {"aufx_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data": {"annotations": str(config.annotations), "img_root": str(config.img_root),
                     "images_used": len(data.paths), "images_skipped": len(data.skipped)},
            "split": {"by": config.split_by, "holdout": config.holdout, "seed": config.seed,
                      "n_train": len(train), "n_test": len(test)}}
    return Calibration(models, info, str(config.out))


def report(calibration: Calibration, data: Measured) -> list[str]:
    """One line per AU: held-out r and MAE, calibrated and raw; then what was skipped and the summary."""
    def fmt(v):
        return "  n/a" if v is None else f"{v:5.2f}"

    lines = ["AU    alpha    r (raw)        MAE (raw)      held-out n"]
    for au, m in calibration.models.items():
        h = m.heldout
        lines.append(f"{au}  {m.alpha:7.3g}  {fmt(h['pearson_r'])} ({fmt(h['pearson_r_raw'])})  "
                     f"{fmt(h['mae'])} ({fmt(h['mae_raw'])})  {h['n']}")
    if data.skipped:
        lines.append(f"skipped images: {len(data.skipped)}")
        lines += [f"  {s}" for s in data.skipped[:20]]
        if len(data.skipped) > 20:
            lines.append(f"  ... and {len(data.skipped) - 20} more")
    s = calibration.info["split"]
    lines.append(f"summary: images_used={len(data.paths)} skipped={len(data.skipped)} train={s['n_train']} "
                 f"test={s['n_test']} split_by={s['by']} seed={s['seed']} aus={len(calibration.models)}")
    return lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aufx.training.fit_estimator", description=__doc__.split("\n\n")[0])
    p.add_argument("--annotations", required=True, type=Path, help="annotation CSV (python -m aufx annotate)")
    p.add_argument("--img_root", type=Path, default=Path("."), help="folder image_path is relative to (default .)")
    p.add_argument("--out", type=Path, default=FitConfig.out, help="calibration JSON to write (default %(default)s)")
    p.add_argument("--alpha", type=float, help="ridge penalty for every AU (default: chosen per AU by "
                                               "leave-one-out error on the training images)")
    p.add_argument("--holdout", type=float, default=FitConfig.holdout, help="share held out (default %(default)s)")
    p.add_argument("--seed", type=int, default=FitConfig.seed, help="seed of the split (default %(default)s)")
    p.add_argument("--split_by", choices=SPLITS, default=FitConfig.split_by,
                   help="'video' keeps all frames of a video (clip_000123.jpg) on one side of the split")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Exit code 0: calibration written; 2: bad input."""
    args = _parser().parse_args(argv)
    try:
        config = FitConfig(args.annotations, args.img_root, args.out, args.alpha, args.holdout, args.seed,
                           args.split_by)
        table, aus = read_annotations(config.annotations)
        data = measure(table, aus, config.img_root)
        calibration = fit(data, config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    calibration.save(config.out)
    print("\n".join(report(calibration, data)))
    print(f"wrote {config.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
