"""Two ``eval.fidelity`` runs side by side: ``python -m eval.compare_fidelity BEFORE_DIR AFTER_DIR``.

An engine change is judged by how the outside reader's numbers move, and OpenFace moves on its own too. A face whose
fit flips between renders that look alike, or an image read in one run and left unread in the other, can move an
AU's mean slope by several hundredths. This tool prints what moved and where:
- which code made each run (``aufx_code``: a run labelled "final" that was made before the last change shows here)
  and the headline numbers of both runs (mean slope, mean of the per-face medians, the faces read in every image,
  r, off-target, FER2013 accuracy, dlib);
- per AU, the slope before and after and the faces whose own slope moved by more than ``--face_change``;
- the images one run read and the other left unread (they move the means without any change an eye sees);
- the preset edits FER2013 reads differently.
Both folders hold what ``eval.fidelity --out`` wrote (``metrics.json``, ``edits.csv``). ``--json`` writes the same
comparison as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ["face", "kind", "name", "level"]  # what identifies one image in edits.csv


def load(run: Path) -> tuple[dict, pd.DataFrame]:
    """(metrics.json, edits.csv) of one eval.fidelity run folder."""
    for name in ("metrics.json", "edits.csv"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run}: no {name} (not an eval.fidelity output folder)")
    return json.loads((run / "metrics.json").read_text()), pd.read_csv(run / "edits.csv")


def headline(m: dict) -> dict[str, float | None]:
    """The numbers a run is summed up by."""
    au, emo, ident = m.get("au") or {}, m.get("emotion") or {}, m.get("identity") or {}
    return {"mean slope": au.get("slope_mean"), "per-face medians": au.get("slope_median_mean"),
            "faces read in every image": au.get("slope_fully_read_mean"), "r": au.get("r"),
            "off-target (0..5)": au.get("off_target_openface_units"), "FER2013 at 1.0": emo.get("accuracy_at_1"),
            "dlib mean": ident.get("mean"), "dlib presets at 1.0": ident.get("mean_presets_1"),
            "dlib max": ident.get("max")}


def au_changes(before: dict, after: dict, face_change: float) -> list[dict]:
    """Per AU: the slopes before and after and the faces whose own slope moved by more than ``face_change``
    (a face with a slope in only one run counts as moved)."""
    out = []
    pa, pb = before["au"]["per_au"], after["au"]["per_au"]
    for code in pa:
        if code not in pb:
            continue
        fa, fb = pa[code].get("slope_per_face", {}), pb[code].get("slope_per_face", {})
        moved = {}
        for face in sorted(set(fa) | set(fb)):
            a, b = fa.get(face), fb.get(face)
            if a is None or b is None or abs(b - a) > face_change:
                moved[face] = (a, b)
        out.append({"au": code, "before": pa[code].get("slope"), "after": pb[code].get("slope"), "faces": moved})
    return out


def _read(edits: pd.DataFrame) -> pd.Series:
    """Per image (indexed by KEYS): whether the reader read it (any AU value present)."""
    aus = [c for c in edits.columns if c.startswith("AU")]
    return edits.set_index(KEYS)[aus].notna().any(axis=1)


def read_flips(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, list[tuple]]:
    """The images read in one run and unread in the other, as (face, kind, name, level)."""
    a, b = _read(before), _read(after)
    both = a.index.intersection(b.index)
    a, b = a[both], b[both]
    return {"unread after": [tuple(k) for k in both[a.to_numpy() & ~b.to_numpy()]],
            "unread before": [tuple(k) for k in both[~a.to_numpy() & b.to_numpy()]]}


def emotion_changes(before: dict, after: dict, intensity: str = "1") -> list[tuple[str, str, str, str]]:
    """(preset, face, label before, label after) for every preset edit FER2013 reads differently."""
    pa = (before.get("emotion") or {}).get("per_preset", {})
    pb = (after.get("emotion") or {}).get("per_preset", {})
    out = []
    for preset in sorted(set(pa) & set(pb)):
        la = pa[preset].get(intensity, {}).get("read_as", {})
        lb = pb[preset].get(intensity, {}).get("read_as", {})
        out += [(preset, face, la[face], lb[face]) for face in sorted(set(la) & set(lb)) if la[face] != lb[face]]
    return out


def compare(before_dir: Path, after_dir: Path, face_change: float = 0.05) -> dict:
    """The comparison of two eval.fidelity run folders (see the module's doc)."""
    (ma, ea), (mb, eb) = load(before_dir), load(after_dir)
    if ma.get("reader") != mb.get("reader"):
        raise ValueError(f"the runs were read by different readers: {ma.get('reader')!r} / {mb.get('reader')!r}")
    ha, hb = headline(ma), headline(mb)
    return {"before": str(before_dir), "after": str(after_dir), "reader": ma.get("reader"),
            "code": (ma.get("aufx_code"), mb.get("aufx_code")),
            "headline": {k: (ha[k], hb[k]) for k in ha}, "aus": au_changes(ma, mb, face_change),
            "reads": read_flips(ea, eb), "emotion": emotion_changes(ma, mb)}


def _num(x) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def report(c: dict, face_change: float) -> str:
    """The comparison as text."""
    a, b = c["code"]
    same = ("the same code: what moved is the reader's and the renders' own noise" if a and a == b else
            "different code" if a and b else "not recorded: a run from before 2026-12-08")
    lines = [f"reader: {c['reader']}", f"before: {c['before']}", f"after:  {c['after']}",
             f"code:   {a or '-'} -> {b or '-'} ({same})", ""]
    lines += [f"{k:28s} {_num(a):>7s} -> {_num(b):>7s}" for k, (a, b) in c["headline"].items()]
    lines += ["", f"per AU: slope before -> after; faces whose own slope moved by more than {face_change}"]
    for row in c["aus"]:
        faces = ", ".join(f"{f} {_num(a)} -> {_num(b)}" for f, (a, b) in row["faces"].items())
        lines.append(f"{row['au']}  {_num(row['before'])} -> {_num(row['after'])}" + (f"   [{faces}]" if faces else ""))
    for side, items in c["reads"].items():
        lines.append("")
        lines.append(f"{side} ({len(items)}): " + ("; ".join(" ".join(map(str, k)) for k in items) or "none"))
    lines += ["", f"FER2013 reads differently at 1.0 ({len(c['emotion'])}): "
              + ("; ".join(f"{p} on {f}: {a} -> {b}" for p, f, a, b in c["emotion"]) or "none")]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.compare_fidelity", description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path, help="an eval.fidelity --out folder")
    p.add_argument("after", type=Path, help="another one, read by the same reader")
    p.add_argument("--face_change", type=float, default=0.05, help="list a face's slope change above this")
    p.add_argument("--json", type=Path, help="also write the comparison to this JSON file")
    a = p.parse_args(argv)
    try:
        c = compare(a.before, a.after, a.face_change)
    except (FileNotFoundError, ValueError) as e:
        print(f"compare_fidelity: error: {e}", file=sys.stderr)
        return 2
    print(report(c, a.face_change))
    if a.json:
        a.json.write_text(json.dumps(c, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
