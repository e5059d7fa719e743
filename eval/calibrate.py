"""Fit the warp engine's per-AU render gains against OpenFace: ``python -m eval.calibrate --faces DIR``.

For each AU, every development face is edited to the fidelity targets of that AU under a grid of (geometry,
appearance) gains, starting where the CLI starts (the measured face), so the gains are fitted the way
``eval.fidelity`` judges them; OpenFace 2.x (static models; one batched call per AU) reads the edits. Kept for every
trial: the dose slope (reading vs target, normalised units, per face then averaged), the off-target change (mean
|change| of the other 16 AUs, OpenFace units 0..5) and the identity cost (dlib descriptor distance source -> edit at
the highest target, worst face) and the mesh folds of the AU alone (aufx.face.mesh.folded_triangles, worst face:
none in the upper face, at most MAX_FOLDS at FOLD_CHECK_LEVEL except the lip-corner AUs, the rule of
test_no_folded_triangles) and the eyes' opening the AU alone leaves at 1.0 (a share of the photo's, median face).
The chosen gains bring the slope nearest the goal while the off-target change, the identity cost, the folds and the
eyes' opening stay within their bounds, nearest the authored model when trials tie. One model for every
face: no per-face gains. ``--write`` stores the gains and all trials in aufx/assets/au_calibration.json (read by
aufx/model/gains.py).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aufx.au import AUVector, get_au
from aufx.model.basis import basis
from aufx.model.deform import deform
from aufx.model.gains import CALIBRATION_FILE, gains_overridden, render_gains
from aufx.model.estimate import estimate_raw
from aufx.engines import registry
from aufx.pipeline import Editor
from aufx.evaluation.identity import compare, load_dlib
from aufx.evaluation.pairing import IMAGE_EXTS
from aufx.face.mesh import CORNER_AUS, FOLD_CHECK_LEVEL, MAX_FOLDS, folded_triangles
from aufx.face.topology import topology
from eval.fidelity import OPENFACE_AUS, OpenFaceReader, face_crop


@dataclass
class CalibrationConfig:
    faces: Path = Path("faces")
    aus: tuple[str, ...] = OPENFACE_AUS
    geometry: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)  # trial multipliers of the AU's mesh motion
    appearance: tuple[float, ...] = (0.5, 1.0, 2.0)  # trial multipliers of the AU's shading
    targets: tuple[float, ...] = (0.2, 0.5, 0.8)
    start: str = "measured"  # "measured": edit as the CLI does; "zero": a known increase from 0 of the AU alone
    goal_slope: float = 1.0  # reading change per unit of requested change
    max_off_target: float = 0.3  # OpenFace units (0..5): a trial moving the other AUs more is not chosen
    # dlib distance (< 0.6 = same person) of one AU at the highest target, worst face: a trial changing the person more
    # is not chosen. Below the 0.6 bar because presets stack several AUs (fear: seven) on top of each other.
    max_identity: float = 0.45
    identity: bool = True  # measure the identity cost (dlib); without it only the off-target bound applies
    # An AU that is not lid closure (AU43, AU45) leaves the eyes at least this share of their opening at 1.0 (median
    # face): AU07 narrows the eye to a squint, and a slit (FACS AU42) or a shut eye (AU43) is another AU. OpenFace
    # read AU07 best at a gain that left 0.20 of it at 0.8: the eyes looked shut, not tightened.
    min_eye_opening: float = 0.35
    gain_cost: float = 0.03  # per unit of gain away from 1: of two trials about as good, the one nearer the authored
    # model (aufx/assets/au_handles.yaml, aufx/assets/au_appearance.yaml) wins, so an AU the reader ignores keeps its
    # look
    openface_bin: str | None = None
    crop_size: int = 400
    crop_margin: float = 0.6


def trials_for_au(au: str, editors: list[Editor], cfg: CalibrationConfig, reader: OpenFaceReader,
                  identity=None) -> list[dict]:
    """Each trial asks every face for each target of ``au``. From the measured face (``start="measured"``) a face that
    shows the AU has it reduced at low targets (at its removal gain, not fitted here), as a user's edit would; with
    ``start="zero"`` the edit starts from 0 for that AU whatever the estimator reads: a known increase.
    ``identity``: a dlib descriptor (aufx.evaluation.identity) for the identity cost, or None."""
    grid = list(itertools.product(cfg.geometry, cfg.appearance))
    b = basis()
    chans = get_au(au).channels()
    idx = [b.index(ch) for ch in chans + tuple(b.ties[c] for c in chans if c in b.ties)]  # AU45 closes AU43's lid
    engine = registry.engine("warp")
    crops, keys, moved = [], [], {}  # moved[(face, trial)]: identity distance at the highest target
    for fi, ed in enumerate(editors):
        face = ed.face(0)
        box = face.box
        ref = None if identity is None else identity.embed(ed.image, box)
        crops.append(face_crop(ed.image, box, cfg.crop_size, cfg.crop_margin))
        keys.append((fi, None, None))
        start = None  # the measured face, as the CLI starts
        if cfg.start == "zero":
            start = estimate_raw(face)
            start[idx] = 0.0
        base = ed.measured(0) if start is None else AUVector.clipped(dict(zip(b.channels, start)))
        for gi, (g, p) in enumerate(grid):
            with gains_overridden({au: {**render_gains().get(au, {}), "geometry": g, "appearance": p}}):
                for t in cfg.targets:
                    target = base.updated({au: t})
                    out = engine.render(ed.image, face, target, deform(face, target, start))
                    crops.append(face_crop(out, box, cfg.crop_size, cfg.crop_margin))
                    keys.append((fi, gi, t))
                    if ref is not None and t == max(cfg.targets):
                        moved[fi, gi] = compare(ref, identity.embed(out, box))["distance"]
    reads = reader.read(crops)
    src = {k[0]: r for k, r in zip(keys, reads) if k[1] is None}
    folds = {g: fold_counts(au, g, editors) for g in sorted({g for g, _ in grid})}
    closes = any(ch in b.closing for ch in chans)  # lid closure shuts the eye by definition
    opening = {g: None if closes else eye_opening_share(au, g, editors) for g in folds}
    allowed = None if au in CORNER_AUS else MAX_FOLDS  # lip-corner AUs: slivers on a closed mouth are forgiven
    trials = []
    for gi, (g, p) in enumerate(grid):
        slopes, offs = [], []
        for fi in range(len(editors)):
            pts = [(k[2], r) for k, r in zip(keys, reads) if k[0] == fi and k[1] == gi and r is not None]
            if len(pts) < 2 or src.get(fi) is None:
                continue
            t = np.array([q[0] for q in pts])
            slopes.append(float(np.polyfit(t, [q[1][au] for q in pts], 1)[0]))
            offs += [np.mean([abs(q[1][o] - src[fi][o]) * 5 for o in OPENFACE_AUS if o != au]) for q in pts]
        if slopes:
            trials.append({"geometry": g, "appearance": p, "slope": round(float(np.mean(slopes)), 3),
                           "slope_min": round(float(np.min(slopes)), 3),
                           "off_target": round(float(np.mean(offs)), 3), "faces": len(slopes)})
            ids = [d for (fi, gj), d in moved.items() if gj == gi]
            if ids:
                trials[-1]["identity_max"] = round(float(np.max(ids)), 3)
            trials[-1].update({"folds": folds[g][0], "folds_upper": folds[g][1], "folds_allowed": allowed})
            if opening[g] is not None:
                trials[-1]["eye_opening"] = round(opening[g], 3)
    return trials


def fold_counts(au: str, geometry: float, editors: list[Editor]) -> tuple[int, int]:
    """(most triangles folded at FOLD_CHECK_LEVEL, most folded in the upper face at FOLD_CHECK_LEVEL or 1.0) over
    the faces, for ``au`` alone from each measured face at this geometry gain (the test_no_folded_triangles rule)."""
    worst = [0, 0]
    with gains_overridden({au: {**render_gains().get(au, {}), "geometry": geometry}}):
        for ed in editors:
            face = ed.face(0)
            for level in (FOLD_CHECK_LEVEL, 1.0):
                n, upper = folded_triangles(face.canonical, deform(face, ed.measured(0).updated({au: level}))
                                            .canonical_target)
                worst = [max(worst[0], n if level == FOLD_CHECK_LEVEL else 0), max(worst[1], upper)]
    return worst[0], worst[1]


def eye_opening_share(au: str, geometry: float, editors: list[Editor]) -> float:
    """The eyes' opening ``au`` alone leaves at 1.0 from each measured face at this geometry gain, as a share of the
    photo's (the widest gap between the lid margins, both eyes together), median over the faces."""
    pairs = [np.asarray(topology().pairs[eye]) for eye in ("eye_R", "eye_L")]

    def opening(points: np.ndarray) -> float:
        return sum(float(np.max(points[p[:, 1], 1] - points[p[:, 0], 1])) for p in pairs)

    shares = []
    with gains_overridden({au: {**render_gains().get(au, {}), "geometry": geometry}}):
        for ed in editors:
            face = ed.face(0)
            moved = deform(face, ed.measured(0).updated({au: 1.0})).canonical_target
            shares.append(opening(moved) / max(opening(face.canonical), 1e-9))
    return float(np.median(shares))


def choose(trials: list[dict], cfg: CalibrationConfig) -> dict:
    """The trial nearest the goal slope within the off-target, identity, fold and eye-opening bounds; where none keeps
    them, the one that oversteps them least (an AU whose authored motion already changes the person is not pushed
    further)."""
    def excess(t: dict) -> float:
        return (max(0.0, t["off_target"] - cfg.max_off_target)
                + max(0.0, t.get("identity_max", 0.0) - cfg.max_identity)
                + max(0.0, cfg.min_eye_opening - t.get("eye_opening", 1.0))
                + (max(0, t.get("folds", 0) - t["folds_allowed"]) if t.get("folds_allowed") is not None else 0)
                + t.get("folds_upper", 0))

    least = min(excess(t) for t in trials)
    ok = [t for t in trials if excess(t) <= least]
    return min(ok, key=lambda t: abs(t["slope"] - cfg.goal_slope)
               + cfg.gain_cost * (abs(t["geometry"] - 1.0) + abs(t["appearance"] - 1.0)))


def calibrate(cfg: CalibrationConfig, progress=print) -> dict:
    binary = cfg.openface_bin or os.environ.get("OPENFACE_BIN")
    if not binary:
        raise SystemExit("calibration needs OpenFace 2.x FeatureExtraction: set OPENFACE_BIN or --openface_bin")
    reader = OpenFaceReader(binary)
    identity = load_dlib() if cfg.identity else None
    paths = sorted(p for p in Path(cfg.faces).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    editors = [Editor(p) for p in paths]
    fit, gains = {}, {}
    for au in cfg.aus:
        t0 = time.perf_counter()
        trials = trials_for_au(au, editors, cfg, reader, identity)
        best = choose(trials, cfg)
        gains[au] = {"geometry": best["geometry"], "appearance": best["appearance"]}
        fit[au] = {"chosen": best, "trials": trials, "faces": [p.name for p in paths],
                   "date": time.strftime("%Y-%m-%d")}  # refits of some AUs keep the others' records
        progress(f"{au}: gains {gains[au]} slope {best['slope']} (min over faces {best['slope_min']}) off-target "
                 f"{best['off_target']}  [{time.perf_counter() - t0:.0f} s]; all: "
                 + " ".join(f"{t['geometry']:g}/{t['appearance']:g}:{t['slope']:.2f}"
                            + (f"(id {t['identity_max']:.2f})" if "identity_max" in t else "") for t in trials))
    return {"gains": gains, "fit": {"instrument": reader.source, "date": time.strftime("%Y-%m-%d"),
                                    "faces": [p.name for p in paths], "targets": list(cfg.targets), "start": cfg.start,
                                    "goal_slope": cfg.goal_slope, "max_off_target": cfg.max_off_target,
                                    "max_identity": cfg.max_identity if cfg.identity else None,
                                    "min_eye_opening": cfg.min_eye_opening,
                                    "per_au": fit}}


def write(result: dict, path: Path = CALIBRATION_FILE) -> None:
    """Merge a fit into the calibration file. A refit AU's gains are the fit's choice, so a "why" that explained
    gains set by hand against an earlier fit goes with them (its removal gain and that gain's reasons stay)."""
    data = json.loads(path.read_text())
    data["gains"] = _merged(data.get("gains", {}), result["gains"])
    per_au = {au: (rec if au not in result["fit"]["per_au"] else {k: v for k, v in rec.items() if k != "why"})
              for au, rec in (data.get("fit") or {}).get("per_au", {}).items()}
    data["fit"] = result["fit"] if not data.get("fit") else {**data["fit"], **{k: v for k, v in result["fit"].items()
                                                                                if k != "per_au"},
                                                               "per_au": _merged(per_au, result["fit"]["per_au"])}
    path.write_text(json.dumps(data, indent=1) + "\n")


def _merged(old: dict, new: dict) -> dict:
    """Per-AU records updated key by key, so what a refit does not measure (an AU's removal gain) is kept."""
    return {**old, **{au: {**old.get(au, {}), **rec} for au, rec in new.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--faces", required=True, type=Path)
    p.add_argument("--aus", help="comma-separated AU codes (default: the 17 OpenFace AUs)")
    p.add_argument("--geometry", help="trial geometry gains, e.g. 1,1.5,2,3")
    p.add_argument("--appearance", help="trial appearance gains, e.g. 0.5,1,2")
    p.add_argument("--targets", help="comma-separated AU targets (default 0.2,0.5,0.8)")
    p.add_argument("--start", choices=("measured", "zero"), default="measured",
                   help="edit from the measured face as the CLI does (default) or from 0 for the AU")
    p.add_argument("--max_identity", type=float, default=CalibrationConfig.max_identity,
                   help="dlib distance bound of one AU at the highest target (default %(default)s)")
    p.add_argument("--no-identity", dest="identity", action="store_false", help="skip the dlib identity cost")
    p.add_argument("--openface_bin", help="OpenFace 2.x FeatureExtraction (default: $OPENFACE_BIN)")
    p.add_argument("--write", action="store_true", help=f"store the gains and trials in {CALIBRATION_FILE.name}")
    p.add_argument("--save", type=Path, help="also write every trial to this JSON file")
    a = p.parse_args(argv)
    cfg = CalibrationConfig(faces=a.faces, openface_bin=a.openface_bin, start=a.start, identity=a.identity,
                            max_identity=a.max_identity)
    if a.aus:
        cfg.aus = tuple(s.strip().upper() for s in a.aus.split(","))
    if a.geometry:
        cfg.geometry = tuple(float(s) for s in a.geometry.split(","))
    if a.targets:
        cfg.targets = tuple(float(s) for s in a.targets.split(","))
    if a.appearance:
        cfg.appearance = tuple(float(s) for s in a.appearance.split(","))
    print(f"current gains: {render_gains()}")
    result = calibrate(cfg)
    if a.save:
        a.save.write_text(json.dumps(result, indent=1))
    if a.write:
        write(result)
        print(f"written: {CALIBRATION_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
