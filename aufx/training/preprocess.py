"""Align and crop the faces of an annotation CSV for training; the annotation rows follow their crops.

    python -m aufx.training.preprocess --annotations data/annotations_train.csv --img_root . --size 512 --out data/aligned

Each image is analysed with AUFX's own face analysis (MediaPipe mesh + head pose); the largest face is aligned to the
template of aufx/training/align.py and cropped to ``size``. The crops mirror the source paths under ``--out``, and
``<out>/annotations.csv`` holds the same rows and columns as the input with ``image_path`` pointing at the crops
(relative to ``--out``, so train with ``--img_root <out>``). Nothing is dropped silently: images without a face and
unreadable images are listed in ``<out>/preprocess_report.txt`` (and printed), ending with one summary line of counts.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

import cv2
import pandas as pd
from tqdm import tqdm

from aufx.face.analysis import analyze_faces
from aufx.io.images import ImageReadError, load_image
from aufx.training.align import align_face

_CONSOLE_LIMIT = 20


@dataclass
class PreprocessReport:
    rows: int = 0
    written: int = 0
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    several_faces: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"summary: rows={self.rows} written={self.written} no_face={len(self.no_face)} "
                f"unreadable={len(self.unreadable)} several_faces={len(self.several_faces)}")

    def lines(self, limit: int | None = None) -> list[str]:
        out: list[str] = []
        for title, items in (("faces not found (rows left out)", self.no_face),
                             ("unreadable images (rows left out)", self.unreadable),
                             ("several faces (the largest was kept)", self.several_faces)):
            if items:
                shown = items if limit is None else items[:limit]
                out += [f"{title}: {len(items)}", *(f"  {i}" for i in shown)]
                if len(shown) < len(items):
                    out.append(f"  ... and {len(items) - len(shown)} more (see the report file)")
        return out + [self.summary()]


def crop_name(image_path: str, ext: str) -> str:
    """The crop's path under --out: the source path without drive, root or '..' parts, with the new extension."""
    parts = [p for p in PurePosixPath(Path(image_path).as_posix()).parts if p not in ("/", "..", ".") and ":" not in p]
    return PurePosixPath(*parts).with_suffix(f".{ext}").as_posix()


def preprocess(annotations: Path, img_root: Path, size: int, out: Path, ext: str = "jpg",
               progress: bool = True) -> PreprocessReport:
    table = pd.read_csv(annotations)
    if "image_path" not in table.columns:
        raise ValueError(f"{annotations}: no image_path column; build it with python -m aufx.training.annotations")
    report = PreprocessReport(rows=len(table))
    done: dict[str, str | None] = {}  # source path -> crop name (None: no face), so a repeated image is done once
    used: set[str] = set()
    keep, names = [], []
    for i, src in enumerate(tqdm(table["image_path"].astype(str), disable=not progress, desc="align")):
        if src not in done:
            base = PurePosixPath(crop_name(src, ext))
            name, n = base.as_posix(), 1
            while name in used:  # x.jpg and x.png would share a crop name
                name, n = base.with_stem(f"{base.stem}_{n}").as_posix(), n + 1
            used.add(name)
            done[src] = _crop_one(src, name, img_root, size, out, ext, report)
        if done[src] is not None:
            keep.append(i)
            names.append(done[src])
    aligned = table.iloc[keep].copy()
    aligned["image_path"] = names
    out.mkdir(parents=True, exist_ok=True)
    aligned.to_csv(out / "annotations.csv", index=False, float_format="%.6g")
    report.written = len(aligned)
    (out / "preprocess_report.txt").write_text("\n".join(report.lines()) + "\n", encoding="utf-8")
    return report


def _crop_one(src: str, name: str, img_root: Path, size: int, out: Path, ext: str,
              report: PreprocessReport) -> str | None:
    try:
        rgb = load_image(img_root / src)
    except ImageReadError as exc:
        report.unreadable.append(f"{src}: {exc}")
        return None
    faces = analyze_faces(rgb)
    if not faces:
        report.no_face.append(src)
        return None
    if len(faces) > 1:
        report.several_faces.append(f"{src}: {len(faces)} faces")
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    crop = align_face(rgb, faces[0], size)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else []
    if not cv2.imwrite(str(target), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"could not write {target}")
    return name


def main(argv: Sequence[str] | None = None) -> int:
    """Exit code 0: crops written, 1: no face found anywhere, 2: bad input."""
    p = argparse.ArgumentParser(prog="python -m aufx.training.preprocess", description=__doc__.split("\n\n")[0])
    p.add_argument("--annotations", required=True, type=Path, help="annotation CSV (image_path,AU01,...)")
    p.add_argument("--img_root", default=Path("."), type=Path, help="image_path is relative to this folder")
    p.add_argument("--size", default=512, type=int, help="crop side in pixels (default %(default)s)")
    p.add_argument("--out", required=True, type=Path, help="folder for the crops and annotations.csv")
    p.add_argument("--ext", default="jpg", choices=("jpg", "png"), help="crop format (jpg: quality 95)")
    args = p.parse_args(argv)
    if args.size < 8:
        print("error: --size must be at least 8", file=sys.stderr)
        return 2
    try:
        report = preprocess(args.annotations, args.img_root, args.size, args.out, args.ext)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'annotations.csv'} and {args.out / 'preprocess_report.txt'}")
    print("\n".join(report.lines(limit=_CONSOLE_LIMIT)))
    return 0 if report.written else 1


if __name__ == "__main__":
    raise SystemExit(main())
