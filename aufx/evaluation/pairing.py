"""Pair each generated image with its source image, its target AUs and its intended emotion.

Rules for a generated image ``G`` (any of IMAGE_EXTS, found recursively under the gens folder):
1. Source. With a sidecar ``G.json`` (AUFX writes one beside every output, e.g. ``out.png.json``): its ``"input"``
   path as written, else relative to the sidecar, else a file of that name in refs, else by base name in refs.
   Without one: the part of G's stem before ``__`` (``name__happy_0.50.png`` -> ``name``) must equal the stem of
   exactly one image in refs (any extension, any subfolder).
2. Targets. The sidecar's ``"target_aus"`` (AU names as in the text form, per-side L/R keys allowed); else the
   annotations CSV row whose ``image_path`` stem equals G's full stem, else G's base name (so a CSV can list targets
   per output or per source).
3. Intended emotion. The sidecar's ``"preset"`` or ``"emotion"`` when it names one of the 8 categories; else the
   first word after ``__`` when it does (``name__happy_0.50`` -> happy); else the evaluator takes the nearest
   prototype of the targets.
4. Face. The sidecar's ``"face": {"box": [x0, y0, x1, y1]}`` (the edited face in the source) is the face region and
   picks the face in photos of several; without it the detector's most confident face is used.
A generated image without a source is reported in ``unpaired`` with the reason; one with a source but no targets is
still paired (image metrics need no targets) and its AU error is left empty.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from aufx.au import AUError, AUVector, resolve_key
from aufx.evaluation.emotion import category

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
SUFFIX_SEP = "__"


@dataclass
class Pair:
    gen: Path
    source: Path
    targets: AUVector | None
    target_from: str | None  # "sidecar" | "csv" | None
    intended: str | None
    intended_from: str | None  # "sidecar" | "filename" | None (the evaluator may add "target_aus")
    face_box: tuple[int, int, int, int] | None = None  # from the sidecar


@dataclass
class Pairing:
    pairs: list[Pair]
    unpaired: list[dict]  # {"path": ..., "reason": ...}
    unused_refs: list[str]


def base_name(path: Path) -> str:
    return path.stem.split(SUFFIX_SEP, 1)[0]


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def read_annotations(path: Path) -> dict[str, AUVector]:
    """Annotation CSV ``image_path,AU01,...`` (normalised 0..1) -> {image stem: targets}. Values are clipped to [0, 1]
    as OpenFace-derived data can overshoot; non-AU columns are ignored; a repeated stem is an error."""
    df = pd.read_csv(path, skipinitialspace=True)
    if "image_path" not in df.columns:
        raise ValueError(f"{path}: an annotations CSV needs an 'image_path' column")
    au_cols = []
    for col in df.columns:
        try:
            resolve_key(col)
            au_cols.append(col)
        except AUError:
            continue
    stems = df["image_path"].map(lambda p: Path(str(p)).stem)
    dupes = sorted(set(stems[stems.duplicated()]))
    if dupes:
        raise ValueError(f"{path}: image names appear more than once: {', '.join(dupes[:5])}")
    values = df[au_cols].fillna(0.0).to_numpy(float)
    return {s: AUVector.clipped(dict(zip(au_cols, row))) for s, row in zip(stems, values)}


def _source_from_sidecar(sidecar: Path, data: dict, refs: dict[str, list[Path]], refs_dir: Path | None,
                         roots: tuple[Path, ...] = ()) -> Path | None:
    raw = data.get("input")
    if not raw:
        return None
    given = Path(str(raw))
    candidates = [given, sidecar.parent / given] + ([refs_dir / given.name] if refs_dir else [])
    for c in candidates:
        if roots and not any(c.resolve().is_relative_to(r) for r in roots):
            continue  # a sidecar may name any path; the app reads only inside its allowed folders
        if c.is_file():
            return c
    found = refs.get(base_name(given), [])
    return found[0] if len(found) == 1 else None


def _sidecar_box(data: dict) -> tuple[int, int, int, int] | None:
    face = data.get("face")
    try:
        x0, y0, x1, y1 = (int(v) for v in face["box"])
    except (TypeError, KeyError, ValueError):  # no face entry, or not four numbers
        return None
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _intended_from_name(gen: Path) -> str | None:
    _, sep, suffix = gen.stem.partition(SUFFIX_SEP)
    return category(suffix.split("_", 1)[0]) if sep and suffix else None


def pair_images(gens_dir: Path, refs_dir: Path | None = None,
                annotations: dict[str, AUVector] | None = None, source_roots: tuple[Path, ...] = ()) -> Pairing:
    if not gens_dir.is_dir():
        raise FileNotFoundError(f"generated-images folder {gens_dir} does not exist")
    if refs_dir is not None and not refs_dir.is_dir():
        raise FileNotFoundError(f"reference folder {refs_dir} does not exist")
    refs: dict[str, list[Path]] = {}
    for p in images_in(refs_dir) if refs_dir else []:
        refs.setdefault(p.stem, []).append(p)
    annotations = annotations or {}
    pairs, unpaired, used = [], [], set()
    for gen in images_in(gens_dir):
        sidecar = gen.with_name(gen.name + ".json")
        source = targets = target_from = intended = intended_from = face_box = None
        if sidecar.is_file():
            try:
                data = json.loads(sidecar.read_text())
                source = _source_from_sidecar(sidecar, data, refs, refs_dir, source_roots)
                if data.get("target_aus") is not None:
                    targets, target_from = AUVector(data["target_aus"]), "sidecar"
            except (OSError, ValueError) as exc:  # JSONDecodeError and AUError are ValueErrors
                unpaired.append({"path": str(gen), "reason": f"unreadable sidecar {sidecar.name}: {exc}"})
                continue
            face_box = _sidecar_box(data)
            hint = data.get("preset") or data.get("emotion")
            if isinstance(hint, str) and category(hint):
                intended, intended_from = category(hint), "sidecar"
            if source is None:
                unpaired.append({"path": str(gen), "reason": f"sidecar input {data.get('input')!r} not found"})
                continue
        else:
            found = refs.get(base_name(gen), [])
            if len(found) != 1:
                why = "no" if not found else f"{len(found)} ambiguous"
                unpaired.append({"path": str(gen), "reason": f"{why} source image named {base_name(gen)!r} in refs"})
                continue
            source = found[0]
        if targets is None:
            for key in (gen.stem, base_name(gen)):
                if key in annotations:
                    targets, target_from = annotations[key], "csv"
                    break
        if intended is None and _intended_from_name(gen):
            intended, intended_from = _intended_from_name(gen), "filename"
        used.add(source.resolve())
        pairs.append(Pair(gen, source, targets, target_from, intended, intended_from, face_box))
    unused = [str(p) for ps in refs.values() for p in ps if p.resolve() not in used]
    return Pairing(pairs, unpaired, sorted(unused))
