"""The built-in AU estimator: speed per face and agreement with OpenFace 2.x (a benchmark, not a test).

    python eval/bench_estimator.py                       # speed + agreement on the committed OpenFace fixtures
    python eval/bench_estimator.py --faces DIR           # + agreement on every face in DIR, read by $OPENFACE_BIN

Speed: median ms of one estimate on a fresh analysis (aligned crop, HOG, regressor, mesh solve), one core.
Agreement: Pearson r and mean |error| against OpenFace's static reading (AUxx_r / 5) over the 17 OpenFace AUs, pooled
over faces and AUs, for the regressor (what AUFX now reports) and the mesh estimator alone (what it reported before).
Faces in DIR should be held out from the fit (aufx/assets/au_estimator.md lists what it was fitted on).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from eval.bench import _median_ms  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "openface"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def test_faces() -> dict[str, np.ndarray]:
    """The two public-domain faces that have committed OpenFace readings."""
    import matplotlib.cbook
    import skimage.data

    from aufx.io.images import load_image

    return {"astronaut": skimage.data.astronaut(),
            "grace_hopper": load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))}


def speed_ms(rgb: np.ndarray, repeats: int = 50) -> float:
    """Median ms of crop + features + regressor + mesh solve for one face (detection excluded: done once anyway)."""
    from aufx.face.align import attach_appearance
    from aufx.model.estimate import estimate_aus
    from aufx.face.analysis import FaceAnalysis, analyze_faces

    face = analyze_faces(rgb)[0]

    def once():
        fresh = attach_appearance(FaceAnalysis(face.landmarks, face.pose, face.image_size), rgb)
        estimate_aus(fresh)

    return _median_ms(once, repeats)


def readings(face) -> tuple[np.ndarray, np.ndarray]:
    """(regressor, mesh estimator) readings of the 17 OpenFace AUs, each (17,) on the normalised scale."""
    from aufx.model.regressor import AU_NAMES
    from aufx.au import get_au
    from aufx.model.basis import basis
    from aufx.model.estimate import estimate_aus, mesh_raw

    b = basis()
    mesh = mesh_raw(face)
    reg = estimate_aus(face)
    return (np.array([reg.au(a) for a in AU_NAMES]),
            np.clip([mesh[[b.index(c) for c in get_au(a).channels()]].mean() for a in AU_NAMES], 0, 1))


def fixture_agreement() -> dict:
    from aufx.model.regressor import AU_NAMES
    from aufx.face.analysis import analyze_faces
    from aufx.openface_runner import reading_from_csv

    rows = []
    for name, rgb in test_faces().items():
        truth = reading_from_csv(FIXTURES / f"{name}.csv")
        rows.append((*readings(analyze_faces(rgb)[0]), np.array([truth.aus.au(a) for a in AU_NAMES])))
    return _summary(rows)


def folder_agreement(folder: Path, openface_bin: str | None) -> dict:
    from aufx.model.regressor import AU_NAMES
    from aufx.face.analysis import analyze_faces
    from aufx.io.images import load_image
    from aufx.openface_runner import OpenFace

    of = OpenFace(openface_bin)
    items, names = [], []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            rgb = load_image(p)
            faces = analyze_faces(rgb)
            items.append((rgb, faces))
            names += [f"{p.name}#{k}" for k in range(len(faces))]
    rows = []
    for (rgb, faces), read in zip(items, of.read_many_faces(items)):
        for face, r in zip(faces, read):
            if r is not None:
                rows.append((*readings(face), np.array([r.aus.au(a) for a in AU_NAMES])))
    return _summary(rows)


def _summary(rows: list) -> dict:
    from aufx.model.regressor import agreement

    reg, mesh, truth = (np.stack(c) for c in zip(*rows))
    return {"faces": len(rows), "aufx_estimator": _short(agreement(reg, truth)),
            "mesh_estimator_before": _short(agreement(mesh, truth))}


def _short(a: dict) -> dict:
    return {"r": a["r"], "mae": a["mae"], "per_au_mae": {k: v["mae"] for k, v in a["per_au"].items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, help="a folder of face images to read with OpenFace and the estimator")
    ap.add_argument("--openface_bin", default=None, help="FeatureExtraction (default: $OPENFACE_BIN)")
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args(argv)
    out = {"speed_ms_median": {n: round(speed_ms(rgb, args.repeats), 2) for n, rgb in test_faces().items()},
           "openface_fixtures": fixture_agreement()}
    if args.faces:
        out["folder"] = {"path": str(args.faces), **folder_agreement(args.faces, args.openface_bin)}
    report = json.loads((Path(__file__).resolve().parents[1] / "assets" / "au_estimator.json").read_text())
    out["fit_report_cv"] = {k: {p: {m: report[k][p][m] for m in ("r", "mae")} for p in ("all", "real", "edits", "photos")}
                            for k in ("full", "shape")}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
