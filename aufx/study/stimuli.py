"""Build a controlled stimulus set: identities x conditions x intensities x engines, aligned, masked, measured.

    python -m aufx stimuli --identities faces/ --conditions conditions.yaml --out stimuli/ [--zip]

    config = StimulusConfig(Path("faces"), load_conditions("conditions.yaml"), Path("stimuli"))
    summary = build_stimuli(config, progress=lambda done, total: ...)   # the app passes its own progress

Writes ``stimuli/images/*.png``, ``manifest.csv`` (one row per image, the study's MANIFEST_COLUMNS),
``contact_sheet.png``, ``build.json`` (the settings) and optionally ``stimuli.zip``. The same inputs and settings
give byte-identical files; a run that is interrupted continues where it stopped when started again (see store.py).
An identity whose photo has no detectable face is reported and skipped; the others are still rendered.

AUs and the identity distance are measured on the edited full-resolution photo, before framing: the alignment is a
similarity transform that changes no AU, and the oval mask would hide the face outline the detectors rely on. With
``measure_with="openface"`` the user's OpenFace reads the AUs (the edited face's crop, one FeatureExtraction call
per identity); targets stay on the AUFX scale either way, and params name the source ("measured_by").
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field, fields, replace
from itertools import groupby
from pathlib import Path
from typing import Callable

import numpy as np

from aufx.au import AUError
from aufx.diffusion.config import add_diffusion_args, config_from_args
from aufx.diffusion.errors import EngineUnavailable
from aufx.face.analysis import FaceNotFoundError
from aufx.io.images import ImageReadError, load_image
from aufx.engines import registry
from aufx.pipeline import Editor
from aufx.request import EditRequest
from aufx.study.archive import write_zip
from aufx.study.conditions import load_conditions, target_for
from aufx.study.framing import frame_face
from aufx.study.identity_distance import IdentityMeter
from aufx.study.manifest import StudyError
from aufx.study.sheet import contact_sheet, thumbnail
from aufx.study.stimulus_config import CROPS, MASKS, MEASURE_WITH, Condition, ConditionSet, StimulusConfig
from aufx.io.digest import sha256_file
from aufx.io.files import write_atomic
from aufx.openface_runner import SOURCES, OpenFaceError, face_crop, shared_openface
from aufx.study.store import IMAGES, MANIFEST, RECIPE, StimulusStore, encode_png

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
SHEET = "contact_sheet.png"
OPENFACE_GROUP = 32  # stimuli rendered before one OpenFace call reads them all (1 s of model loading per call)
ZIP = "stimuli.zip"
Progress = Callable[[int, int], None]  # (stimuli done, total): after each, and (0, total) first


@dataclass(frozen=True)
class Item:
    """One stimulus of the plan."""
    identity: str
    condition: Condition
    intensity: float
    engine: str
    file: str


@dataclass
class BuildSummary:
    out: Path
    total: int
    rendered: int = 0  # images made by this run
    reused: int = 0  # images a previous run had finished
    dropped: int = 0  # manifest rows discarded on resume (file missing, altered, or its source photo changed)
    failed: dict[str, str] = field(default_factory=dict)  # identity -> why it was skipped
    sheet: Path | None = None
    archive: Path | None = None

    def report(self) -> str:
        lines = [f"{self.rendered + self.reused} of {self.total} stimuli in {self.out} ({self.rendered} rendered now, "
                 f"{self.reused} from an earlier run" + (f", {self.dropped} manifest rows redone" if self.dropped
                                                         else "") + ")"]
        lines += [f"skipped identity {name}: {why}" for name, why in self.failed.items()]
        return "\n".join(lines)


def find_identities(folder: Path) -> dict[str, Path]:
    """Photos in ``folder`` by identity name (file stem), sorted by name."""
    if not folder.is_dir():
        raise StudyError(f"{folder}: no such folder (--identities needs a folder of face photos)")
    photos = sorted(p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    found: dict[str, Path] = {}
    for p in photos:
        if p.stem in found:
            raise StudyError(f"{found[p.stem].name} and {p.name} would both be identity {p.stem!r}; rename one")
        found[p.stem] = p
    if not found:
        raise StudyError(f"{folder}: no photos ({', '.join(IMAGE_SUFFIXES)})")
    return dict(sorted(found.items()))


def plan(identities: list[str], conditions: ConditionSet) -> list[Item]:
    """Every stimulus, in the order of the manifest: identity, condition, intensity, engine."""
    items, owner = [], {}
    for identity in identities:
        safe = re.sub(r"[^A-Za-z0-9._-]", "-", identity)
        for c in conditions.conditions:
            for intensity in conditions.intensities:
                for engine in conditions.engines:
                    item = Item(identity, c, intensity, engine, f"{safe}_{c.name}_{intensity:.2f}_{engine}.png")
                    if item.file in owner:
                        raise StudyError(f"{item.file} would be written twice (identities {owner[item.file]!r} and "
                                         f"{identity!r}, or intensities equal to two decimals); rename a photo")
                    owner[item.file] = identity
                    items.append(item)
    return items


def column_labels(conditions: ConditionSet) -> list[str]:
    """Contact-sheet column labels, in plan order."""
    several = len(conditions.engines) > 1
    return [f"{c.name}\n{i:.2f}" + (f" {e}" if several else "")
            for c in conditions.conditions for i in conditions.intensities for e in conditions.engines]


class _Source:
    """One identity's photo, analysed and framed once for all of its stimuli."""

    def __init__(self, path: Path, sha: str, config: StimulusConfig, meter: IdentityMeter):
        self.editor = Editor(path, name=path.name)
        self.face = self.editor.face(0)
        self.measured = self.editor.measured(0)
        self.framing = frame_face(self.face, config)
        self.config, self.meter = config, meter
        self.reference = meter.reference(self.editor.image, self.face.box) if meter.available else None
        c = config
        self.shared = {
            "source": {"file": path.name, "sha256": sha, "face": self.face.describe()},
            "frame": {"crop": c.crop, "size": c.size if c.crop == "standard" else None, "mask": c.mask,
                      "background": c.background},
            "base": c.conditions.base,
            "identity": ({"backend": meter.backend, "box": self.reference[2]} if self.reference is not None
                         else f"unavailable: {meter.reason}"),
        }

    def render(self, item: Item):
        """The manifest row (without sha256), the stimulus image, and the edited face's crop for OpenFace (or None;
        the row's measured_aus and params are then left for measure_with_openface to fill)."""
        c = self.config
        target = target_for(self.measured, item.condition, item.intensity, c.conditions.base)
        by_aufx = c.measure_output and c.measure_with == "aufx"
        request = EditRequest(self.editor.image, name=self.editor.name, neutral=True, aus=target,
                              engine=item.engine, engine_options=c.engine_options(item.engine), seed=c.seed,
                              measure=by_aufx)
        result = self.editor.run(request)
        meta = request.describe(result)
        measured = result.measured_output
        params = {**self.shared, "engine": meta["engine_params"],
                  "condition": {"preset": item.condition.preset, "aus": item.condition.aus,
                                "optional": item.condition.optional}}
        if c.measure_output:
            params["measured_by"] = SOURCES[c.measure_with]
        if measured is None and not (c.measure_output and not by_aufx):
            params["measured"] = "not measured" if not c.measure_output else "no face re-detected in the output"
        distance = self.meter.distance(self.reference, result.image) if self.reference is not None else None
        row = {
            "file": item.file, "identity": item.identity, "condition": item.condition.name,
            "intensity": f"{item.intensity:g}", "engine": meta["engine"], "target_aus": meta["au_text"],
            "measured_aus": measured.to_text() if measured is not None else "",
            "identity_distance": f"{distance:.4f}" if distance is not None else "", "seed": meta["seed"],
            "params": params, "aufx_version": meta["aufx_version"], "aufx_code": meta["aufx_code"],
        }
        crop = face_crop(result.image, self.face.box)[0] if c.measure_output and not by_aufx else None
        return row, self.framing.render(result.image), crop


def measure_with_openface(openface, rendered: list[tuple[dict, np.ndarray, np.ndarray | None]]) -> None:
    """Fill measured_aus of rendered rows from OpenFace's readings of their crops, one call for all; a failure or
    a face OpenFace cannot find is written into the row's params instead of stopping the build."""
    crops = [crop for _, _, crop in rendered if crop is not None]
    try:
        readings, failed = iter(openface.read(crops) if crops else []), None
    except OpenFaceError as exc:
        readings, failed = iter(()), f"OpenFace failed: {exc}"
    for row, _, crop in rendered:
        if crop is None:
            continue
        reading = None if failed else next(readings)
        if reading is None:
            row["params"]["measured"] = failed or "OpenFace found no face in the output"
        row["measured_aus"] = reading.aus.to_text() if reading is not None else ""


def _finish_row(row: dict) -> dict:
    return {**row, "params": json.dumps(row["params"], sort_keys=True, separators=(",", ":"))}


def build_stimuli(config: StimulusConfig, progress: Progress | None = None) -> BuildSummary:
    """Render every stimulus not already finished in ``config.out``; then the manifest, contact sheet and zip."""
    photos = find_identities(config.identities)
    openface = _openface(config)  # before the output folder is touched
    sources = {name: sha256_file(path) for name, path in photos.items()}
    items = plan(list(photos), config.conditions)
    store = StimulusStore(config.out, config.recipe())
    done, dropped = store.reconcile({it.file: sources[it.identity] for it in items})
    summary = BuildSummary(config.out, len(items), dropped=dropped)
    count = 0

    def tick():
        nonlocal count
        count += 1
        if progress:
            progress(count, len(items))

    if progress:
        progress(0, len(items))
    meter, thumbs = None, {}
    for identity, group in groupby(items, key=lambda it: it.identity):
        group = list(group)
        todo = [it for it in group if it.file not in done]
        summary.reused += len(group) - len(todo)
        for _ in range(len(group) - len(todo)):
            tick()
        if not todo:
            continue
        if meter is None:  # loads the identity model only when something is left to render
            meter = IdentityMeter(config.identity_backend)
        try:
            source = _Source(photos[identity], sources[identity], config, meter)
        except (FaceNotFoundError, ImageReadError) as exc:
            summary.failed[identity] = str(exc)
            for _ in todo:
                tick()
            continue
        step = OPENFACE_GROUP if openface is not None else 1  # with OpenFace, one call per group, then stored
        for start in range(0, len(todo), step):
            rendered = [source.render(item) for item in todo[start:start + step]]
            if openface is not None:
                measure_with_openface(openface, rendered)
            for item, (row, image, _) in zip(todo[start:start + step], rendered):
                done[item.file] = store.add(_finish_row(row), image)
                thumbs[item.file] = thumbnail(image, config.sheet.cell)
                summary.rendered += 1
                tick()
    rows = [done[it.file] for it in items if it.file in done]
    if not rows:
        raise StudyError("no stimuli were made: " + "; ".join(summary.failed.values()))
    store.finish(rows)
    summary.sheet = _write_sheet(config, items, done, thumbs)
    if config.make_zip:
        names = [MANIFEST, RECIPE, SHEET] + [f"{IMAGES}/{row['file']}" for row in rows]
        summary.archive = write_zip(config.out / ZIP, config.out, names)
    elif summary.rendered or summary.dropped:  # a zip from an earlier run no longer matches the folder
        (config.out / ZIP).unlink(missing_ok=True)
    return summary


def _openface(config: StimulusConfig):
    """The OpenFace that measures the outputs, checked before any work (a clear StudyError when it is missing)."""
    if not (config.measure_output and config.measure_with == "openface"):
        return None
    try:
        return shared_openface(config.openface_bin)
    except OpenFaceError as exc:
        raise StudyError(str(exc)) from None


def _write_sheet(config: StimulusConfig, items: list[Item], done: dict[str, dict],
                 thumbs: dict[str, np.ndarray]) -> Path:
    """The contact sheet; thumbnails of images finished by an earlier run are made from their files."""
    def cell(it: Item) -> np.ndarray | None:
        if it.file in done and it.file not in thumbs:
            thumbs[it.file] = thumbnail(load_image(config.out / IMAGES / it.file), config.sheet.cell)
        return thumbs.get(it.file)

    grid = [(identity, [cell(it) for it in group]) for identity, group in groupby(items, key=lambda it: it.identity)]
    grid = [(identity, cells) for identity, cells in grid if any(c is not None for c in cells)]
    sheet = contact_sheet(grid, column_labels(config.conditions), config.sheet)
    path = config.out / SHEET
    write_atomic(path, encode_png(sheet))
    return path


# Command line --------------------------------------------------------------------------------------------------------
def _default(name: str):
    return StimulusConfig.__dataclass_fields__[name].default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aufx stimuli", description="Render a controlled stimulus set "
                                "(identities x conditions x intensities x engines) with a manifest for studies.")
    keep = argparse.SUPPRESS  # options left out take their default from StimulusConfig
    p.add_argument("--identities", required=True, type=Path, help="folder of face photos, one identity per file")
    p.add_argument("--conditions", required=True, type=Path,
                   help="conditions YAML (see aufx/presets/conditions_example.yaml)")
    p.add_argument("--out", required=True, type=Path, help="stimulus folder to create or resume")
    p.add_argument("--engine", action="append", choices=registry.names(),
                   help="engine(s), repeatable; replaces the YAML's 'engines'")
    p.add_argument("--size", type=int, default=keep, help=f"side of the standard crop in px ({_default('size')})")
    p.add_argument("--crop", choices=CROPS, default=keep,
                   help=f"standard: aligned square; none: the photo's own frame ({_default('crop')})")
    p.add_argument("--mask", choices=MASKS, default=keep, help=f"feathered face oval or none ({_default('mask')})")
    p.add_argument("--background", default=keep,
                   help=f"gray, keep (needs --mask none) or #rrggbb ({_default('background')})")
    p.add_argument("--seed", type=int, default=keep, help=f"seed for every edit ({_default('seed')})")
    p.add_argument("--zip", dest="make_zip", action="store_true", default=keep, help="also write stimuli.zip")
    p.add_argument("--no-measure", dest="measure_output", action="store_false", default=keep,
                   help="skip measuring AUs on each output (one face detection per image)")
    p.add_argument("--measure-with", dest="measure_with", choices=MEASURE_WITH, default=keep,
                   help=f"what measures the outputs' AUs: the AUFX estimator or your OpenFace 2.x "
                   f"({_default('measure_with')})")
    p.add_argument("--openface_bin", type=Path, default=keep,
                   help="OpenFace 2.x FeatureExtraction for --measure-with openface (default: $OPENFACE_BIN)")
    p.add_argument("--no-identity", dest="identity_backend", action="store_const", const=None, default=keep,
                   help="skip the identity distance (about 0.1 s per image with dlib)")
    return add_diffusion_args(p)  # used when diffusion is among the engines


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    ns = build_parser().parse_args(argv)
    own = {f.name for f in fields(StimulusConfig)}
    try:
        conditions = load_conditions(ns.conditions)
        if ns.engine:
            conditions = replace(conditions, engines=tuple(dict.fromkeys(ns.engine)))
        options = {k: v for k, v in vars(ns).items() if k in own and k != "conditions"}
        config = StimulusConfig(conditions=conditions, diffusion=config_from_args(ns), **options)
        with tqdm(desc="stimuli", unit="img", disable=None) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            summary = build_stimuli(config, progress)
    except (StudyError, AUError, EngineUnavailable) as exc:
        print(f"aufx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aufx: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    print(summary.report())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
