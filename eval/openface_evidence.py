"""Why OpenFace reads what it reads: its static AU intensities split into appearance (per HOG cell) and geometry.

OpenFace 2.x's static AU intensity models are linear: reading = (x - mean) . w + b over x = [HOG of the 112-px
aligned face (12 x 12 cells x 31), 3D shape of the fitted face model (68 x 3), its 34 shape parameters], clipped to
0..5. So the change of a reading between two photos (a face and its edit, a neutral and an expressive frame) is a
sum of per-cell appearance terms and a geometry term, which splits further by landmark region (jaw, brows, nose,
eyes, mouth). This tool runs the researcher's own FeatureExtraction, reads the models beside it (AUFX ships
neither), and prints that split per AU; the evidence sheet shows where on the aligned face each AU's reading rose
(red) or fell (blue). It is how a user sees that an edit moved the right landmarks but not the texture OpenFace
looks for, or the reverse, or that OpenFace's fit did not follow the edit (its landmarks moved elsewhere).

    python -m eval.openface_evidence --before neutral.png --after edit.png [--after edit2.png] --out results/evidence
    python -m eval.openface_evidence --faces faces/ [--level 0.8] --out results/evidence   # every AU on every face

The second form edits every face in the folder with each of OpenFace's 17 AUs at ``--level`` (the CLI's defaults,
as eval.fidelity does, on the same face crops) and prints, per AU, the mean split of the change over the faces:
where each AU's reading comes from, or why it does not come.

The geometry term uses the shape parameters FeatureExtraction prints (-pdmparams); OpenFace refits them for its AU
models, so the split reproduces its readings to a few hundredths (the report prints both).
"""
from __future__ import annotations

import argparse
import json
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from aufx.io.images import load_image, save_image
from aufx.io.openface import DEFAULT_MIN_CONFIDENCE, OPENFACE_AUS
from aufx.openface_runner import OpenFaceError, feature_extraction, openface_binary
from eval.fidelity import FidelityConfig, face_crop, labelled, make_edits

MODELS = "AU_predictors"  # beside FeatureExtraction, as OpenFace's build lays it out
STATIC_LIST = "AU_all_static.txt"  # which model file OpenFace's static mode uses per AU
PDM = "In-the-wild_aligned_PDM_68.txt"  # the face model whose shape OpenFace's AU models read
STATIC_LINEAR_SVR = 0  # OpenFace's regressor type tag of a static linear SVR
FLAGS = ("-au_static", "-aus", "-pdmparams", "-hogalign", "-simalign")
MAT_TYPES = {4: np.int32, 5: np.float32, 6: np.float64}  # OpenCV depth codes of single-channel matrices
CELL_PX = 8  # OpenFace's HOG cell on its aligned face
REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "mouth": range(48, 68)}  # OpenFace's 68 landmarks


@dataclass(frozen=True)
class StaticModels:
    """OpenFace's static AU intensity models as one linear map."""

    aus: tuple[str, ...]  # "AU01", ...
    mean: np.ndarray  # (D,) feature mean, D = hog + 204 + n_params
    weights: np.ndarray  # (D, n_aus)
    bias: np.ndarray  # (n_aus,)
    components: np.ndarray  # (204, n_params) the face model's shape components (x, y, z of 68 points)

    def weight(self, au: str) -> np.ndarray:
        return self.weights[:, self.aus.index(au)]

    def landmark_weights(self, au: str) -> np.ndarray:
        """(68, 3) what a unit move of each landmark (x, y, z of the face model's shape) adds to the AU's reading:
        the weights on the 3D shape plus those on the shape parameters carried back to the landmarks (the
        components are orthonormal, so the parameters are the shape projected onto them)."""
        w = self.weight(au)
        n = self.components.shape[0]
        geo = w[-(n + self.components.shape[1]):]
        return (geo[:n] + self.components @ geo[n:]).reshape(3, -1).T


@dataclass(frozen=True)
class Features:
    """What OpenFace measured on one image."""

    success: bool
    readings: dict[str, float]  # AUxx_r as printed, 0..5
    hog: np.ndarray  # (rows, cols, 31) HOG of the aligned face
    params: np.ndarray  # (n_params,) shape parameters of the fitted face model
    aligned: np.ndarray  # (112, 112, 3) RGB, the face OpenFace's AU models see
    confidence: float = 1.0  # of OpenFace's landmark fit; below DEFAULT_MIN_CONFIDENCE its AU values are unreliable

    @property
    def usable(self) -> bool:
        return self.success and self.confidence >= DEFAULT_MIN_CONFIDENCE

    def vector(self, models: StaticModels) -> np.ndarray:
        """(D,) the AU models' input: HOG, 3D shape, shape parameters."""
        return np.concatenate([self.hog.ravel(), models.components @ self.params, self.params])

    def shape(self, models: StaticModels) -> np.ndarray:
        """(68, 3) the fitted face model's shape change from its mean (x, y, z per landmark)."""
        return (models.components @ self.params).reshape(3, -1).T


@dataclass(frozen=True)
class Evidence:
    """One AU's reading of one image, split (OpenFace units, before clipping to 0..5)."""

    prediction: float  # appearance + geometry + bias
    appearance: float  # sum of cells
    geometry: float
    cells: np.ndarray  # (rows, cols) appearance term per HOG cell

    def minus(self, other: "Evidence") -> "Evidence":
        return Evidence(self.prediction - other.prediction, self.appearance - other.appearance,
                        self.geometry - other.geometry, self.cells - other.cells)


def _read_mat(blob: bytes, offset: int) -> tuple[np.ndarray, int]:
    """An OpenCV matrix as OpenFace writes it in binary models: int32 rows, cols, type, then the data."""
    rows, cols, kind = struct.unpack_from("<iii", blob, offset)
    if kind not in MAT_TYPES or rows < 0 or cols < 0:
        raise OpenFaceError(f"unexpected matrix header ({rows}, {cols}, type {kind}) in an OpenFace model file")
    dtype = np.dtype(MAT_TYPES[kind])
    end = offset + 12 + rows * cols * dtype.itemsize
    if end > len(blob):
        raise OpenFaceError("an OpenFace model file ends early")
    return np.frombuffer(blob, dtype, rows * cols, offset + 12).reshape(rows, cols).astype(np.float64), end


def read_static_svr(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean (D,), weights (D,), bias) of one OpenFace static linear SVR model file."""
    blob = path.read_bytes()
    (kind,) = struct.unpack_from("<i", blob, 0)
    if kind != STATIC_LINEAR_SVR:
        raise OpenFaceError(f"{path.name}: not a static linear SVR (type {kind})")
    mean, offset = _read_mat(blob, 4)
    weights, offset = _read_mat(blob, offset)
    (bias,) = struct.unpack_from("<d", blob, offset)
    return mean.ravel(), weights.ravel(), float(bias)


def read_text_mats(path: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` matrices of an OpenFace text model (rows, cols, type, then values; # comments)."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    tokens = " ".join(lines).split()
    mats, i = [], 0
    while len(mats) < count:
        rows, cols = int(tokens[i]), int(tokens[i + 1])
        i += 3
        mats.append(np.asarray(tokens[i:i + rows * cols], float).reshape(rows, cols))
        i += rows * cols
    return mats


def load_static_models(binary: str | Path | None = None) -> StaticModels:
    """The static AU intensity models of the OpenFace build whose FeatureExtraction is ``binary`` (or
    $OPENFACE_BIN)."""
    folder = openface_binary(binary).parent / MODELS
    listing = folder / STATIC_LIST
    if not listing.is_file():
        raise OpenFaceError(f"{listing} not found: point to the FeatureExtraction of an OpenFace 2.x build")
    aus, means, weights, biases = [], [], [], []
    for line in listing.read_text().splitlines():
        parts = line.split()
        if len(parts) != 2 or not parts[0].startswith("svr"):  # intensity models only (svm = presence)
            continue
        mean, w, b = read_static_svr(folder / parts[0])
        if means and mean.shape != means[0].shape:
            raise OpenFaceError(f"{parts[0]}: its features differ from the other AU models'")
        aus.append(parts[1])
        means.append(mean)
        weights.append(w)
        biases.append(b)
    if not aus:
        raise OpenFaceError(f"{listing} names no static intensity model")
    components = read_text_mats(folder / PDM, 2)[1]
    return StaticModels(tuple(aus), means[0], np.stack(weights, 1), np.asarray(biases), components)


def read_hog(path: Path) -> np.ndarray:
    """(rows, cols, 31) the first frame of an OpenFace .hog file (int32 cols, rows, channels, float32 flag, data)."""
    blob = path.read_bytes()
    cols, rows, chans = struct.unpack_from("<iii", blob, 0)
    return np.frombuffer(blob, np.float32, rows * cols * chans, 16).reshape(rows, cols, chans).astype(np.float64)


def extract(images: list[np.ndarray], binary: str | Path | None = None) -> list[Features]:
    """OpenFace's features of each RGB image (H, W, 3) uint8, in one FeatureExtraction call."""
    exe = openface_binary(binary)
    with tempfile.TemporaryDirectory(prefix="aufx-evidence-") as tmp:
        args = []
        for i, rgb in enumerate(images):
            path = Path(tmp, f"im{i:03d}.png")
            save_image(path, rgb)
            args += ["-f", str(path)]
        out = Path(tmp, "out")
        feature_extraction(exe, args, out, len(images), FLAGS)
        return [_features(out, f"im{i:03d}") for i in range(len(images))]


def _features(out: Path, stem: str) -> Features:
    table = pd.read_csv(out / f"{stem}.csv", skipinitialspace=True)
    row = table.iloc[0]
    params = row.filter(regex=r"^p_\d+$").to_numpy(float)
    aligned = sorted((out / f"{stem}_aligned").glob("*.bmp"))
    face = load_image(aligned[0]) if aligned else np.zeros((112, 112, 3), np.uint8)
    return Features(bool(row["success"]), {a: float(row[f"{a}_r"]) for a in OPENFACE_AUS if f"{a}_r" in row},
                    read_hog(out / f"{stem}.hog"), params, face, float(row["confidence"]))


def evidence(models: StaticModels, features: Features, au: str) -> Evidence:
    """One AU's reading of ``features`` split into per-cell appearance and geometry (OpenFace units)."""
    terms = (features.vector(models) - models.mean) * models.weight(au)
    n_hog = features.hog.size
    cells = terms[:n_hog].reshape(features.hog.shape).sum(-1)
    geometry = float(terms[n_hog:].sum())
    return Evidence(float(cells.sum() + geometry + models.bias[models.aus.index(au)]), float(cells.sum()), geometry,
                    cells)


def geometry_by_region(models: StaticModels, before: Features, after: Features, au: str) -> dict[str, float]:
    """The change of the AU's geometry term between two images, landmark region by region (they sum to it)."""
    terms = ((after.shape(models) - before.shape(models)) * models.landmark_weights(au)).sum(1)
    return {name: float(terms[list(idx)].sum()) for name, idx in REGIONS.items()}


def overlay(face: np.ndarray, cells: np.ndarray, scale: float, zoom: int = 3) -> np.ndarray:
    """(112*zoom, 112*zoom, 3) the aligned face with each cell tinted red where the reading rose, blue where it
    fell (full tint at ``scale`` OpenFace units per cell). OpenFace's HOG cells start one cell in from the edge."""
    big = cv2.resize(face, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST).astype(np.float32)
    grid = np.zeros((face.shape[0] // CELL_PX, face.shape[1] // CELL_PX), np.float32)
    r, c = cells.shape
    grid[1:1 + r, 1:1 + c] = cells
    tint = cv2.resize(np.clip(grid / scale, -1, 1), big.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    big[..., 0] += 160 * np.clip(tint, 0, 1)
    big[..., 2] += 160 * np.clip(-tint, 0, 1)
    return np.clip(big, 0, 255).astype(np.uint8)


def split(models: StaticModels, before: Features, after: Features, au: str) -> dict:
    """One AU's readings of two images and the split of its change: appearance (all cells, the upper and the lower
    half of the aligned face) and geometry (all, and by landmark region)."""
    b, a = evidence(models, before, au), evidence(models, after, au)
    d = a.minus(b)
    half = d.cells.shape[0] // 2
    return {"au": au, "read_before": before.readings.get(au), "read_after": after.readings.get(au),
            "model_before": b.prediction, "model_after": a.prediction,
            "appearance": d.appearance, "app_upper": float(d.cells[:half].sum()),
            "app_lower": float(d.cells[half:].sum()), "geometry": d.geometry,
            **{f"geo_{k}": v for k, v in geometry_by_region(models, before, after, au).items()}}


def compare(before: Features, afters: list[Features], models: StaticModels) -> list[dict]:
    """One row per (after image, AU): see ``split``."""
    return [{"after": n, **split(models, before, after, au)} for n, after in enumerate(afters) for au in models.aus]


def survey(faces: Path, level: float, binary: str | Path | None = None,
           aus: tuple[str, ...] = OPENFACE_AUS) -> pd.DataFrame:
    """Every face in the folder edited with each AU at ``level`` (from its measured AUs, as the CLI does), read by
    OpenFace in one call on eval.fidelity's face crops: one row per (face, AU) with the AU's split (``split``);
    images OpenFace does not find or fits with too little confidence, before or after, are left out (as
    eval.fidelity leaves them out)."""
    models = load_static_models(binary)
    cfg = FidelityConfig(faces=Path(faces), aus=aus, targets=(level,), presets=(), noise=False)
    edits = make_edits(cfg, progress=lambda *_: None)  # each face's source, then its AU edits
    if not edits:
        raise OpenFaceError(f"{faces}: no face found in any image")
    images = [face_crop(e.image, e.box, cfg.crop_size, cfg.crop_margin) for e in edits]
    keys = [(e.face, e.name) for e in edits]
    feats = dict(zip(keys, extract(images, binary)))
    rows = [{"face": face, **split(models, feats[(face, "")], f, au)} for (face, au), f in feats.items()
            if au and f.usable and feats[(face, "")].usable]
    return pd.DataFrame(rows)


def sheet(before: Features, afters: list[Features], models: StaticModels, aus: list[str], scale: float,
          names: list[str]) -> np.ndarray:
    """Rows of AUs, columns of after images (``names``): where each reading changed."""
    rows = []
    for au in aus:
        tiles = []
        for after, name in zip(afters, names):
            d = evidence(models, after, au).minus(evidence(models, before, au))
            tiles.append(labelled(overlay(after.aligned, d.cells, scale),
                                  f"{name[:14]} {au} {d.prediction:+.2f} (app {d.appearance:+.2f} "
                                  f"geo {d.geometry:+.2f})"))
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def main_survey(args) -> int:
    try:
        table = survey(args.faces, args.level, args.openface_bin)
    except (OpenFaceError, OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    if table.empty:
        raise SystemExit(f"error: OpenFace found none of the faces in {args.faces}")
    cols = ["read_after", "model_after", "appearance", "app_upper", "app_lower", "geometry",
            *[f"geo_{k}" for k in REGIONS]]
    change = table.assign(read_after=table.read_after - table.read_before,
                          model_after=table.model_after - table.model_before)
    mean = change.groupby("au")[cols].mean().rename(columns={"read_after": "read", "model_after": "model"})
    pd.set_option("display.width", 200)
    print(f"OpenFace 2.x static, each AU at {args.level:g} on {table.face.nunique()} faces of {args.faces}: mean "
          "change of the reading (0..5, clipped), of the model's unclipped output, and its split")
    print(mean.round(2).to_string())
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "survey.csv", index=False)
    print(f"written: {args.out / 'survey.csv'} (one row per face and AU)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.openface_evidence", description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, help="the reference photo (a face at rest, or the source)")
    p.add_argument("--after", type=Path, action="append", help="a changed photo (repeatable)")
    p.add_argument("--faces", type=Path, help="instead: a folder of photos, each edited with every AU at --level")
    p.add_argument("--level", type=float, default=0.8, help="the AU target of --faces (default 0.8)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--aus", default="", help="AUs for the evidence sheet, e.g. AU06,AU12 (default: the 4 that "
                                             "changed most)")
    p.add_argument("--scale", type=float, default=0.15, help="OpenFace units per cell at full tint")
    p.add_argument("--openface_bin", help="OpenFace 2.x FeatureExtraction (default: $OPENFACE_BIN)")
    args = p.parse_args(argv)
    if args.faces is not None:
        if args.before or args.after:
            p.error("--faces or --before/--after, not both")
        return main_survey(args)
    if args.before is None or not args.after:
        p.error("give --before and --after, or --faces")
    try:
        models = load_static_models(args.openface_bin)
        images = [load_image(path) for path in [args.before, *args.after]]
        feats = extract(images, args.openface_bin)
    except (OpenFaceError, OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    missing = [str(path) for path, f in zip([args.before, *args.after], feats) if not f.success]
    if missing:
        raise SystemExit(f"error: OpenFace found no face in {', '.join(missing)}")
    for path, f in zip([args.before, *args.after], feats):
        if not f.usable:
            print(f"note: OpenFace fitted {path} with confidence {f.confidence:.2f} (< {DEFAULT_MIN_CONFIDENCE}): its "
                  "readings are unreliable")
    table = pd.DataFrame(compare(feats[0], feats[1:], models))
    pd.set_option("display.width", 200)
    print(f"OpenFace 2.x static, {args.before.name} -> {', '.join(a.name for a in args.after)}; "
          "change of the model's reading = appearance (HOG) + geometry (face shape)")
    print(table.round(2).to_string(index=False))
    aus = [a.strip().upper() for a in args.aus.split(",") if a.strip()]
    if not aus:
        change = table.assign(size=(table.model_after - table.model_before).abs()).groupby("au")["size"].max()
        aus = list(change.sort_values(ascending=False).index[:4])
    unknown = [a for a in aus if a not in models.aus]
    if unknown:
        raise SystemExit(f"error: no static model for {', '.join(unknown)} (have {', '.join(models.aus)})")
    args.out.mkdir(parents=True, exist_ok=True)
    save_image(args.out / "evidence.png", sheet(feats[0], feats[1:], models, aus, args.scale,
                                                [a.stem for a in args.after]))
    (args.out / "evidence.json").write_text(json.dumps(
        {"before": str(args.before), "after": [str(a) for a in args.after], "instrument": "OpenFace 2.x static",
         "rows": table.to_dict("records")}, indent=1))
    print(f"written: {args.out / 'evidence.png'}, {args.out / 'evidence.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
