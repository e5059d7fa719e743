"""Choose each emotion prototype's AU values by what an outside classifier reads: ``python -m eval.preset_search``.

The presets' AUs come from the FACS literature (aufx/presets/emotions.json: each preset's ``admissible`` AUs are
those its sources name for that emotion, prototypical and variant), but their strengths are not given by any
source, and FER2013 reads only half of the presets at 1.0 as intended. This searches the strengths (each AU on a
grid of values, one AU at a time, from the shipped prototype, until a sweep changes nothing; the preset's ``core``
AUs, its EMFACS form, never below ``core_min``, so that a classifier's taste cannot drop a defining AU, e.g.
surprise without raised brows) for the highest mean
log-probability FER2013 gives the intended emotion over every face of a folder at the preset's intensity, under an
identity bound (dlib descriptor distance source -> edit at most ``max_identity`` on every face). The edit is the
one every entry point makes: the whole expression replaced by the prototype (``EditRequest(preset=...)``).

Choosing values on the faces that also judge them flatters them, so the search is cross-validated by person: faces
of one person (dlib distance below ``same_person``: a photo and its mirror image) stay in one fold, each fold's
prototype is chosen on the other folds and judged on it, and the held-out hits are what the report calls
cross-validated. Writes ``trials.csv`` (every prototype tried, per fold) and ``search.json`` into OUT; the chosen
values go into emotions.json by hand, with the numbers that chose them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage

from aufx.au import AUVector
from aufx.evaluation.pairing import IMAGE_EXTS
from aufx.model.presets import emotion_presets
from aufx.pipeline import Editor

FER_PRESETS = ("happy", "sad", "surprise", "fear", "disgust", "anger")  # FER2013 has no contempt; neutral is no AU


@dataclass(frozen=True)
class SearchConfig:
    faces: Path = Path("faces")
    out: Path = Path("results/preset_search")
    presets: tuple[str, ...] = FER_PRESETS
    intensity: float = 1.0  # the preset intensity judged (the fidelity bar's)
    grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # the values each AU may take
    core_min: float = 0.25  # the preset's core AUs (its EMFACS form) stay at least this strong
    sweeps: int = 3  # at most this many passes over the AUs
    min_gain: float = 0.02  # a change is kept when the mean log-probability rises by more than this
    floor: float = 0.01  # FER2013 probabilities below this count as this (one hopeless face does not dominate)
    max_identity: float = 0.55  # dlib distance bound on every face (same person < 0.6, with a margin)
    same_person: float = 0.5  # source photos closer than this by dlib are one person (kept in one fold)
    folds: int = 2


@dataclass
class Face:
    name: str
    editor: Editor
    box: tuple[int, int, int, int]
    descriptor: np.ndarray


class Judges:
    """FER2013 and dlib's descriptor on one face's edits."""

    def __init__(self):
        from aufx.evaluation.emotion import load_fer
        from aufx.evaluation.identity import compare, load_dlib

        self.fer, self.dlib, self._compare = load_fer(), load_dlib(), compare

    def embed(self, image, box) -> np.ndarray:
        return self.dlib.embed(image, box)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return self._compare(a, b)["distance"]

    def judge(self, face: Face, emotion: str, aus: dict[str, float], intensity: float) -> tuple[float, str, float]:
        """(FER2013 probability of ``emotion``, FER2013's label, dlib distance from the source)."""
        out = face.editor.edit(AUVector(aus).scaled(intensity), 0, measure_output=False).image
        got = self.fer.classify(out, face.box)
        return got.scores[emotion], got.label, self.distance(face.descriptor, self.embed(out, face.box))


def load_faces(folder: Path, judges: Judges, progress=print) -> list[Face]:
    faces = []
    for path in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS):
        try:
            ed = Editor(path)
        except ValueError as exc:
            progress(f"skip {path.name}: {exc}")
            continue
        box = ed.face(0).box
        faces.append(Face(path.stem, ed, box, judges.embed(ed.image, box)))
    if not faces:
        raise SystemExit(f"{folder}: no faces found")
    return faces


def people(faces: list[Face], same_person: float) -> list[list[int]]:
    """Groups of face indices whose source photos are one person by dlib (single linkage on the descriptors'
    Euclidean distance, dlib's own scale)."""
    if len(faces) < 2:
        return [list(range(len(faces)))]
    tree = linkage(np.stack([f.descriptor for f in faces]), method="single", metric="euclidean")
    labels = fcluster(tree, t=np.nextafter(same_person, 0), criterion="distance")  # closer than same_person
    return sorted((np.flatnonzero(labels == k).tolist() for k in np.unique(labels)), key=min)  # by first face


def score(judges: Judges, faces: list[Face], emotion: str, aus: dict, cfg: SearchConfig) -> dict:
    got = [judges.judge(f, emotion, aus, cfg.intensity) for f in faces]
    p = np.array([g[0] for g in got])
    return {"logp": float(np.log(np.maximum(p, cfg.floor)).mean()), "hits": sum(g[1] == emotion for g in got),
            "n": len(faces), "identity_max": float(max(g[2] for g in got)), "labels": [g[1] for g in got]}


def search(judges: Judges, faces: list[Face], emotion: str, cfg: SearchConfig, trials: list, fold: str,
           progress=print) -> dict[str, float]:
    """Coordinate ascent over the preset's admissible AUs from the shipped prototype."""
    preset = emotion_presets()[emotion]
    best = {au: float(v) for au, v in preset["aus"].items()}
    admissible = preset.get("admissible", sorted(best))
    core = set(preset.get("core", ()))

    def record(aus):
        s = score(judges, faces, emotion, aus, cfg)
        trials.append({"emotion": emotion, "fold": fold, "aus": json.dumps(aus, sort_keys=True),
                       **{k: v for k, v in s.items() if k != "labels"}, "labels": " ".join(s["labels"])})
        ok = s["identity_max"] <= cfg.max_identity
        return (s["logp"] if ok else -np.inf), s

    best_val, s = record(best)
    progress(f"  {emotion} [{fold}] start {s['hits']}/{s['n']} logp {s['logp']:.2f} id {s['identity_max']:.2f}")
    for _ in range(cfg.sweeps):
        changed = False
        for au in admissible:
            for v in cfg.grid:
                if abs(best.get(au, 0.0) - v) < 1e-6 or (au in core and v < cfg.core_min):
                    continue
                cand = {k: x for k, x in {**best, au: v}.items() if x > 0}
                val, s = record(cand)
                if val > best_val + cfg.min_gain:
                    best, best_val, changed = cand, val, True
                    progress(f"  {emotion} [{fold}] {au} {v}: {s['hits']}/{s['n']} logp {s['logp']:.2f} "
                             f"id {s['identity_max']:.2f}")
        if not changed:
            break
    return dict(sorted(best.items()))


def run(cfg: SearchConfig, progress=print) -> dict:
    judges = Judges()
    faces = load_faces(cfg.faces, judges, progress)
    groups = people(faces, cfg.same_person)
    k_folds = min(cfg.folds, len(groups))  # one person: nothing to hold out
    folds = [sorted(i for g in groups[k::k_folds] for i in g) for k in range(k_folds)] if k_folds > 1 else []
    progress(f"{len(faces)} faces, {len(groups)} people, folds: "
             + (" | ".join(", ".join(faces[i].name for i in f) for f in folds) or "none (one person)"))
    trials: list[dict] = []
    result = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "faces": [f.name for f in faces], "folds": [[faces[i].name for i in f] for f in folds], "presets": {}}
    for emotion in cfg.presets:
        t0 = time.time()
        shipped = score(judges, faces, emotion, emotion_presets()[emotion]["aus"], cfg)
        held_out = {"hits": 0, "n": 0, "per_fold": []}
        for k, test in enumerate(folds):
            train = [faces[i] for i in range(len(faces)) if i not in test]
            chosen = search(judges, train, emotion, cfg, trials, f"fold{k}", progress)
            s = score(judges, [faces[i] for i in test], emotion, chosen, cfg)
            held_out["hits"] += s["hits"]
            held_out["n"] += s["n"]
            held_out["per_fold"].append({"aus": chosen, "hits": s["hits"], "n": s["n"], "labels": s["labels"]})
        chosen = search(judges, faces, emotion, cfg, trials, "all", progress)
        final = score(judges, faces, emotion, chosen, cfg)
        result["presets"][emotion] = {"shipped": {"aus": emotion_presets()[emotion]["aus"], **shipped},
                                      "chosen": {"aus": chosen, **final}, "cross_validated": held_out}
        cv = f"cross-validated {held_out['hits']}/{held_out['n']}" if folds else "not cross-validated"
        progress(f"{emotion}: shipped {shipped['hits']}/{shipped['n']}, chosen {final['hits']}/{final['n']} "
                 f"{chosen}, {cv} ({time.time() - t0:.0f} s)")
        if not folds:
            result["presets"][emotion]["cross_validated"] = None
        cfg.out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(trials).to_csv(cfg.out / "trials.csv", index=False)
        (cfg.out / "search.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv=None) -> int:
    d = SearchConfig()
    ap = argparse.ArgumentParser(prog="python -m eval.preset_search", description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, required=True, help="folder of face photos")
    ap.add_argument("--out", type=Path, default=d.out)
    ap.add_argument("--presets", default=",".join(d.presets), help=f"comma-separated (default {','.join(d.presets)})")
    ap.add_argument("--intensity", type=float, default=d.intensity)
    ap.add_argument("--max_identity", type=float, default=d.max_identity)
    ap.add_argument("--folds", type=int, default=d.folds)
    ap.add_argument("--sweeps", type=int, default=d.sweeps)
    ap.add_argument("--grid", default=",".join(str(v) for v in d.grid), help="the values each AU may take")
    a = ap.parse_args(argv)
    unknown = [p for p in a.presets.split(",") if p not in FER_PRESETS]
    if unknown:
        ap.error(f"unknown preset(s) {', '.join(unknown)}; FER2013 judges {', '.join(FER_PRESETS)}")
    if not a.faces.is_dir():
        ap.error(f"--faces {a.faces}: not a folder")
    cfg = SearchConfig(faces=a.faces, out=a.out, presets=tuple(a.presets.split(",")), intensity=a.intensity,
                       max_identity=a.max_identity, folds=a.folds, sweeps=a.sweeps,
                       grid=tuple(float(v) for v in a.grid.split(",")))
    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
