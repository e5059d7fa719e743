"""Build a training annotation CSV (``image_path,AU01,...,AU45``) from images and their OpenFace 2.x CSVs.

    python -m aufx.training.annotations --img_dir Train --openface_dir OpenFace_AU_Train --out_csv data/annotations_train.csv

Images and CSVs are paired by base name (``<name>.jpg`` <-> ``<name>.csv`` or ``<name>_of.csv``), compared after
Unicode NFKC normalisation (full-width ``ｆａｃｅ１`` = ``face1``), case folding and whitespace folding, because
datasets assembled on different systems disagree on exactly these. A FeatureExtraction CSV with several frames is
paired with numbered frame images (``clip_000123.jpg``): separator, zero padding and whether image numbers start at 0
or 1 (OpenFace's ``frame`` starts at 1) are detected per video, or given with ``--frame_pattern`` / ``--frame_base``.
Values are normalised (``AUxx_r / 5``). Nothing is dropped silently: every unpaired image and CSV, every excluded row
(success 0, low confidence) and every AU missing from a CSV is listed in a report (printed, and saved next to the
output as ``<out>.report.txt``), ending with one summary line of counts.
"""
from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from aufx.au import au_codes, get_au
from aufx.io.openface import (DEFAULT_MIN_CONFIDENCE, FAILED, LOW_CONFIDENCE, OPENFACE_AUS, OPENFACE_PRESENCE_AUS,
                              OpenFaceFormatError, OpenFaceTable, read_openface_csv)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
_FRAME_NAME = re.compile(r"(?P<stem>.*?)(?P<sep>[_\-. ]?)(?P<num>\d+)")
_CONSOLE_LIMIT = 20  # entries per list printed to the console; the report file has all of them


@dataclass(frozen=True)
class AnnotationConfig:
    img_dir: Path
    openface_dir: Path
    out_csv: Path
    au_keys: tuple[str, ...] = OPENFACE_AUS  # output AU columns, in this order (AUFX catalogue codes)
    use_c: bool = False                      # also write AUxx_c presence columns (0/1)
    min_confidence: float = DEFAULT_MIN_CONFIDENCE  # rows below this OpenFace confidence are excluded
    frame_pattern: str | None = None         # frame image name, e.g. "{stem}_{frame:06d}"; None: detect per video
    frame_base: int | None = None            # number of the first frame image (0 or 1) = OpenFace frame 1; None: detect

    def __post_init__(self):
        object.__setattr__(self, "img_dir", Path(self.img_dir))
        object.__setattr__(self, "openface_dir", Path(self.openface_dir))
        object.__setattr__(self, "out_csv", Path(self.out_csv))
        object.__setattr__(self, "au_keys", tuple(dict.fromkeys(parse_au_key(k) for k in self.au_keys)))
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.frame_base not in (None, 0, 1):
            raise ValueError(f"frame_base must be 0 or 1, got {self.frame_base}")
        if self.frame_pattern is not None:
            try:
                self.frame_pattern.format(stem="clip", frame=1)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"frame_pattern {self.frame_pattern!r} must use only {{stem}} and {{frame}}, "
                                 f"e.g. '{{stem}}_{{frame:06d}}' ({exc})") from None
            if "{frame" not in self.frame_pattern:
                raise ValueError(f"frame_pattern {self.frame_pattern!r} has no {{frame}} field")


@dataclass
class AnnotationReport:
    n_images: int = 0
    n_csvs: int = 0
    matched_csvs: int = 0
    matched_images: int = 0
    rows_written: int = 0
    excluded_failed: int = 0
    excluded_low_confidence: int = 0
    images_without_csv: list[str] = field(default_factory=list)
    csvs_without_image: list[str] = field(default_factory=list)
    invalid_csvs: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    exclusions: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    several_faces: list[str] = field(default_factory=list)
    missing_aus: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def summary(self) -> str:
        return (f"summary: images={self.n_images} csvs={self.n_csvs} matched_csvs={self.matched_csvs} "
                f"matched_images={self.matched_images} rows_written={self.rows_written} "
                f"excluded_success0={self.excluded_failed} excluded_low_confidence={self.excluded_low_confidence} "
                f"images_without_csv={len(self.images_without_csv)} csvs_without_image={len(self.csvs_without_image)} "
                f"invalid_csvs={len(self.invalid_csvs)} ambiguous={len(self.ambiguous)}")

    def lines(self, limit: int | None = None) -> list[str]:
        """The full report, the summary last; ``limit`` shortens each list (for the console)."""
        sections = [
            ("videos (frame images paired by number)", self.videos),
            ("images without a CSV", self.images_without_csv),
            ("CSVs without an image", self.csvs_without_image),
            ("CSVs that are not OpenFace output (skipped)", self.invalid_csvs),
            ("ambiguous names (skipped; rename so each name is unique)", self.ambiguous),
            ("rows excluded (success 0 or low confidence)", self.exclusions),
            ("several faces in one image or frame (kept the most confident)", self.several_faces),
            ("AUs missing from CSVs (filled with 0)",
             [_missing_line(au, names, limit) for au, names in self.missing_aus.items()]),
        ]
        out: list[str] = []
        for title, items in sections:
            if not items:
                continue
            out.append(f"{title}: {len(items)}")
            shown = items if limit is None else items[:limit]
            out += [f"  {item}" for item in shown]
            if len(shown) < len(items):
                out.append(f"  ... and {len(items) - len(shown)} more (see the report file)")
        out.append(self.summary())
        return out


def _missing_line(au: str, names: list[str], limit: int | None) -> str:
    shown = names if limit is None else names[:limit]
    more = f", ... and {len(names) - len(shown)} more" if len(shown) < len(names) else ""
    why = "" if au.split("_")[0] in OPENFACE_PRESENCE_AUS else f" (OpenFace does not measure {au.split('_')[0]})"
    return f"{au}{why}: {len(names)} CSV(s): {', '.join(shown)}{more}"


def parse_au_key(key: str) -> str:
    """``"AU1"``, ``"au01"`` or ``"1"`` -> ``"AU01"``; unknown AUs are errors that name the key."""
    m = re.fullmatch(r"(?:AU)?(\d{1,2})", key.strip(), re.IGNORECASE)
    code = f"AU{int(m.group(1)):02d}" if m else key
    return get_au(code).code


def normalise_name(name: str) -> str:
    """Compare names as people read them: NFKC (full-width -> half-width), case folded, whitespace runs folded."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def _scan(root: Path, extensions: frozenset[str] | set[str]) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def _ranges(numbers: Sequence[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7": frame lists stay readable in the report."""
    parts: list[str] = []
    for n in sorted(numbers):
        if parts and n == parts[-1][1] + 1:
            parts[-1] = (parts[-1][0], n)
        else:
            parts.append((n, n))
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)


def _csv_base(stem: str) -> str:
    """The name a CSV annotates: OpenFace runs are often saved as ``<name>_of.csv``."""
    return stem[:-3] if normalise_name(stem).endswith("_of") else stem


def _best_face(rows: pd.DataFrame, by: str | None) -> tuple[pd.DataFrame, int]:
    """One row per image (or per frame): the most confident face. Returns the rows and how many groups had several."""
    if by is None:
        return rows.loc[[rows["confidence"].idxmax()]], int(len(rows) > 1)
    best = rows.loc[rows.groupby(by)["confidence"].idxmax()]
    return best, int((rows.groupby(by).size() > 1).sum())


class _Matcher:
    """Pairs CSVs with images; keeps which images are taken so that none is used twice or forgotten."""

    def __init__(self, config: AnnotationConfig, images: list[Path], report: AnnotationReport):
        self.config = config
        by_key: dict[str, list[Path]] = defaultdict(list)
        for p in images:
            by_key[normalise_name(p.stem)].append(p)
        for key, paths in by_key.items():
            if len(paths) > 1:
                report.ambiguous.append(f"images {', '.join(self.show(p) for p in paths)} all read as {key!r}")
        self.images = {k: v[0] for k, v in by_key.items() if len(v) == 1}
        self.taken: set[str] = set()
        # Names ending in a number, parsed once: stem -> [(separator, digits, key)], e.g. "clip" -> ("_", "000123", ...)
        self.numbered: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for key in self.images:
            m = _FRAME_NAME.fullmatch(key)
            if m:
                self.numbered[m["stem"]].append((m["sep"], m["num"], key))

    def show(self, p: Path) -> str:
        """An image's name in the report: relative to the image folder."""
        return p.relative_to(self.config.img_dir).as_posix()

    def free(self, key: str) -> Path | None:
        return self.images.get(key) if key not in self.taken else None

    def exact(self, stem: str) -> str | None:
        """Key of the free image with this CSV's name (``x_of.csv`` pairs with ``x.jpg``, else ``x_of.jpg``)."""
        for key in dict.fromkeys((normalise_name(_csv_base(stem)), normalise_name(stem))):
            if self.free(key):
                return key
        return None

    def frames(self, stem: str, frame_numbers: set[int]) -> tuple[dict[int, str] | None, str]:
        """OpenFace frame number -> image key for a video CSV, and a description of the convention (or a problem)."""
        base_name = _csv_base(stem)
        if self.config.frame_pattern:
            return self._pattern_frames(base_name, frame_numbers)
        base = normalise_name(base_name)
        found: dict[str, list[tuple[int, str]]] = defaultdict(list)  # separator -> [(number, key)]
        widths: set[int] = set()  # digits of zero-padded numbers; 0 for unpadded ones
        for sep, digits, key in self.numbered.get(base, []):
            if key not in self.taken:
                found[sep].append((int(digits), key))
                widths.add(len(digits) if digits.startswith("0") and len(digits) > 1 else 0)
        if not found:
            return None, f"no image named {base_name}.<ext> or numbered like {base_name}_000001.<ext>"
        if len(found) > 1:
            return None, f"frame images use several separators {sorted(found)}; use --frame_pattern"
        sep, numbered = next(iter(found.items()))
        by_number: dict[int, list[str]] = defaultdict(list)
        for n, key in numbered:
            by_number[n].append(key)
        clashes = [keys for keys in by_number.values() if len(keys) > 1]
        if clashes:
            return None, f"several images claim the same frame number ({', '.join(clashes[0])}); use --frame_pattern"
        padding = "%d" if widths == {0} else f"%0{max(widths)}d" if len(widths - {0}) == 1 else "%d (mixed padding)"
        base_no = self._frame_base(set(by_number), frame_numbers)
        mapping = {f: by_number[f - 1 + base_no][0] for f in frame_numbers if f - 1 + base_no in by_number}
        convention = f"{base_name}{sep}{padding}, {base_no}-based"
        if not mapping:
            return None, f"frame images {convention} exist, but none has a frame number of the CSV"
        return mapping, convention

    def _pattern_frames(self, base_name: str, frame_numbers: set[int]) -> tuple[dict[int, str] | None, str]:
        def key(n: int) -> str:
            name = self.config.frame_pattern.format(stem=base_name, frame=n)
            return normalise_name(Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name)

        candidates = {n: key(n) for f in frame_numbers for n in (f - 1, f)}
        numbers = {n for n, k in candidates.items() if self.free(k)}
        base_no = self._frame_base(numbers, frame_numbers)
        mapping = {f: candidates[f - 1 + base_no] for f in frame_numbers if f - 1 + base_no in numbers}
        if not mapping:
            return None, f"no image named like {self.config.frame_pattern.format(stem=base_name, frame=1)!r}"
        return mapping, f"{self.config.frame_pattern} with stem {base_name!r}, {base_no}-based"

    def _frame_base(self, image_numbers: set[int], frame_numbers: set[int]) -> int:
        """0 or 1: the base that pairs more OpenFace frames with images (ties: 1, as ffmpeg and OpenFace count)."""
        if self.config.frame_base is not None:
            return self.config.frame_base
        zero = len(image_numbers & {f - 1 for f in frame_numbers})
        return 0 if zero > len(image_numbers & frame_numbers) else 1


def build_annotations(config: AnnotationConfig) -> tuple[pd.DataFrame, AnnotationReport]:
    """Pair images with OpenFace CSVs and return the annotation table and the report (nothing is written)."""
    for d, what in ((config.img_dir, "image"), (config.openface_dir, "OpenFace CSV")):
        if not d.is_dir():
            raise FileNotFoundError(f"{what} folder {d} does not exist")
    images = _scan(config.img_dir, IMAGE_EXTENSIONS)
    csvs = _scan(config.openface_dir, {".csv"})
    report = AnnotationReport(n_images=len(images), n_csvs=len(csvs))
    matcher = _Matcher(config, images, report)

    tables: dict[Path, OpenFaceTable] = {}
    for path in csvs:
        try:
            tables[path] = read_openface_csv(path, config.min_confidence)
        except OpenFaceFormatError as exc:
            report.invalid_csvs.append(str(exc).replace(str(path), _rel(path, config.openface_dir), 1))
    by_base: dict[str, list[Path]] = defaultdict(list)
    for path in tables:
        by_base[normalise_name(_csv_base(path.stem))].append(path)
    for key, paths in by_base.items():
        if len(paths) > 1:
            report.ambiguous.append(f"CSVs {', '.join(_rel(p, config.openface_dir) for p in paths)} "
                                    f"all annotate {key!r}")

    # Single images first, so that a video's frame search never takes an image that has its own CSV.
    unique = sorted((ps[0] for ps in by_base.values() if len(ps) == 1), key=lambda p: not _is_single(tables[p]))
    out_rows: list[dict] = []
    for path in unique:
        out_rows += _annotate(path, tables[path], matcher, config, report)

    taken_paths = {matcher.images[k] for k in matcher.taken}
    ambiguous_paths = set(images) - set(matcher.images.values())
    report.images_without_csv = [matcher.show(p) for p in images if p not in taken_paths | ambiguous_paths]
    report.matched_images = len(taken_paths)
    report.rows_written = len(out_rows)
    columns = ["image_path", *config.au_keys, *([f"{a}_c" for a in config.au_keys] if config.use_c else [])]
    return pd.DataFrame(out_rows, columns=columns), report


def _is_single(table: OpenFaceTable) -> bool:
    """One image's worth of rows: a FaceLandmarkImg CSV, or FeatureExtraction run on one image (one frame)."""
    return table.kind == "image" or table.rows["frame"].nunique() == 1


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _annotate(path: Path, table: OpenFaceTable, matcher: _Matcher, config: AnnotationConfig,
              report: AnnotationReport) -> list[dict]:
    """Rows for one CSV, or none (with the reason in the report)."""
    name = _rel(path, config.openface_dir)
    exact = matcher.exact(path.stem)
    if exact and _is_single(table):
        pairs = {None: exact}
    elif table.kind == "image":
        report.csvs_without_image.append(f"{name}: no image named {_csv_base(path.stem)}.<ext>")
        return []
    else:
        pairs, convention = matcher.frames(path.stem, set(table.rows["frame"]))
        if not pairs:
            reason = (f"{table.rows['frame'].nunique()} frames, but only the single image "
                      f"{matcher.show(matcher.images[exact])} has its name" if exact else convention)
            report.csvs_without_image.append(f"{name}: {reason}")
            return []
        unmatched = sorted(set(table.rows["frame"]) - set(pairs))
        report.videos.append(f"{name}: {len(pairs)} frames paired as {convention}"
                             + (f"; CSV frames without an image: {_ranges(unmatched)}" if unmatched else ""))

    matcher.taken.update(pairs.values())
    report.matched_csvs += 1
    report.excluded_failed += table.n_failed
    report.excluded_low_confidence += table.n_low_confidence
    if table.n_failed or table.n_low_confidence:
        report.exclusions.append(_exclusion_line(name, table))
    for au in config.au_keys:
        if au not in table.aus:
            report.missing_aus[au].append(name)
        if config.use_c and au not in table.presence_aus:
            report.missing_aus[f"{au}_c"].append(name)

    kept = table.kept
    video_frames = None not in pairs
    if video_frames:
        kept = kept[kept["frame"].isin(list(pairs))]
    if kept.empty:
        return []
    best, several = _best_face(kept, "frame" if video_frames else None)
    if several:
        report.several_faces.append(f"{name}: {several} {'frames' if video_frames else 'image'} with several faces")
    rows = []
    for _, r in best.iterrows():
        image = matcher.images[pairs[int(r["frame"])] if video_frames else pairs[None]]
        row = {"image_path": image.as_posix()}
        row.update({au: float(r[au]) if au in table.aus else 0.0 for au in config.au_keys})
        if config.use_c:
            row.update({f"{au}_c": int(r[f"{au}_c"]) if au in table.presence_aus else 0 for au in config.au_keys})
        rows.append(row)
    return rows


def _exclusion_line(name: str, table: OpenFaceTable) -> str:
    rows = table.rows
    where = "frame" if table.kind == "video" else "face"
    parts = []
    for status, label in ((FAILED, "success=0"), (LOW_CONFIDENCE, f"confidence < {table.min_confidence:g}")):
        ids = rows.loc[rows["status"] == status, where].tolist()
        if ids:
            parts.append(f"{len(ids)} with {label} ({where} {_ranges(ids)})")
    return f"{name}: " + "; ".join(parts)


def write_annotations(config: AnnotationConfig) -> AnnotationReport:
    """Build and write the annotation CSV and its report file (``<out>.report.txt``)."""
    table, report = build_annotations(config)
    config.out_csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(config.out_csv, index=False, float_format="%.6g")
    report_path(config.out_csv).write_text("\n".join(report.lines()) + "\n", encoding="utf-8")
    return report


def report_path(out_csv: Path) -> Path:
    return out_csv.with_name(out_csv.stem + ".report.txt")


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--img_dir", required=True, type=Path, help="folder of images (searched recursively)")
    p.add_argument("--openface_dir", required=True, type=Path, help="folder of OpenFace CSVs (searched recursively)")
    p.add_argument("--out_csv", required=True, type=Path, help="annotation CSV to write")
    p.add_argument("--au_keys", nargs="+", default=list(OPENFACE_AUS), metavar="AU",
                   help=f"AU columns to write, in order (default: OpenFace's 17). Known: {' '.join(au_codes())}")
    p.add_argument("--use_c", action="store_true", help="also write AUxx_c presence columns (0/1)")
    p.add_argument("--min_confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
                   help="exclude rows whose OpenFace confidence is below this (default %(default)s)")
    p.add_argument("--frame_pattern", help="frame image names for video CSVs, e.g. '{stem}_{frame:06d}' "
                                           "(default: detected per video)")
    p.add_argument("--frame_base", type=int, choices=(0, 1),
                   help="number of the first frame image, which shows OpenFace's frame 1: 0 or 1 "
                        "(default: detected per video)")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "python -m aufx.training.annotations") -> int:
    """CLI entry point (also `python -m aufx annotate`). Exit code 0: rows written, 1: nothing paired, 2: bad input."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        config = AnnotationConfig(args.img_dir, args.openface_dir, args.out_csv, tuple(args.au_keys), args.use_c,
                                  args.min_confidence, args.frame_pattern, args.frame_base)
        report = write_annotations(config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {config.out_csv} and {report_path(config.out_csv)}")
    print("\n".join(report.lines(limit=_CONSOLE_LIMIT)))
    return 0 if report.rows_written else 1


if __name__ == "__main__":
    raise SystemExit(main())
