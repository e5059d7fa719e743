"""Evaluate generated images against their sources:
``python -m aufx.evaluation.evaluate --refs Test --gens outputs ...``.

:class:`Evaluator` scores one source/output pair (the app's Evaluate tab can use it directly); :func:`evaluate`
pairs folders (aufx/evaluation/pairing.py), scores every pair with a ``progress(i, n)`` callback, aggregates, and
writes ``metrics.json`` and ``report.html`` beside it, with the instrument behind each metric
(aufx/evaluation/instruments.py). Models load once per process (aufx/evaluation/backends.py); a metric whose model
cannot load is reported as unavailable with the reason.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, Mapping

import cv2
import numpy as np

from aufx import __version__
from aufx.au import AUVector
from aufx.io.images import ImageReadError, load_image
from aufx.io.openface import OpenFaceFormatError
from aufx.evaluation import aggregate, backends, faces, identity, image_quality, instruments
from aufx.evaluation.au_error import MeasureAUs, OpenFaceReader, au_error, aufx_measure, openface_aus
from aufx.evaluation.config import AU_BACKENDS, METRICS, EvalConfig
from aufx.evaluation.emotion import PrototypeMatcher
from aufx.evaluation.pairing import pair_images, read_annotations

Progress = Callable[[int, int], None]
_MEASURE = object()  # pair_metrics default: measure the output with the Evaluator's measure_aus
PACKAGES = ("numpy", "scipy", "scikit-image", "opencv-python-headless", "pillow", "pandas", "matplotlib", "torch",
            "dlib-bin", "face_recognition_models", "fer", "h5py", "lpips", "facenet-pytorch")


def package_versions() -> dict[str, str | None]:
    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), "aufx": __version__, **{p: version(p) for p in PACKAGES}}


@dataclass
class _Face:
    """Where the face is in a pair: ``box`` for the models (the detector's box, near the caller's face if given),
    ``region`` for the face-region pixel metrics (the caller's box/mask, else the detector box grown by face_margin)."""
    box: faces.Box | None
    region_box: faces.Box | None
    region: np.ndarray | None
    origin: str | None  # "caller box" | "caller mask" | "detector" | None


class Evaluator:
    """Loads the requested backends once and scores source/output pairs with them."""

    def __init__(self, config: EvalConfig | None = None, measure_aus: MeasureAUs | None = None):
        self.config = c = config or EvalConfig()
        self.measure_aus = measure_aus
        if c.identity_backend not in backends.names("identity"):
            raise ValueError(f"identity backend must be one of {backends.names('identity')}, "
                             f"got {c.identity_backend!r}")
        bad = [b for b in c.emotion_backends if b not in backends.names("emotion")]
        if bad:
            raise ValueError(f"emotion backends must be among {backends.names('emotion')}, got {bad}")
        self.backend_status: dict[str, dict] = {}
        self.metric_status: dict[str, dict] = {}
        self._sources: dict[str, dict] = {}  # source key -> {"box": ..., backend name: embedding}
        self._matcher = PrototypeMatcher()  # intended emotion from the targets; needs no model
        self.detector = self._load("dlib_hog")
        want = set(c.metrics)
        self.openface, openface_failed, self._fallback = None, None, ""
        if c.au_backend != "aufx" and c.gens_openface_dir is None and ({"au", "emotion"} & set(c.metrics)):
            from aufx.openface_runner import OpenFaceError, shared_openface

            try:
                self.openface = shared_openface(c.openface_bin)
                self.measure_aus = measure_aus = None  # the outside reader wins over the estimator
            except OpenFaceError as exc:
                if c.au_backend == "openface":
                    openface_failed = str(exc)
                else:
                    self._fallback = f"OpenFace was not used: {str(exc).split('. ')[0]}"  # its first sentence
        has_aus = measure_aus is not None or c.gens_openface_dir is not None or self.openface is not None
        no_aus = openface_failed or ("no AU measurement: pass measure_aus (the app plugs in aufx.model.estimate), "
                                     "--au_backend openface or --gens_openface_dir")
        if "au" in want:
            self.metric_status["au"] = ({"status": "ok", "measured_by": self.measured_by()} if has_aus
                                        else {"status": "unavailable", "reason": no_aus})
        self.identity = self._metric("identity", c.identity_backend) if "identity" in want else None
        self.lpips = self._metric("lpips", "lpips") if "lpips" in want else None
        region = ("caller box/mask, else the dlib detector box" if self.detector else
                  f"caller box/mask only, else whole image ({self.backend_status['dlib_hog'].get('reason')})")
        for m in want & {"psnr", "ssim"}:
            self.metric_status[m] = {"status": "ok", "face_region": region}
        self.emotion = {}
        for name in c.emotion_backends if "emotion" in want else ():
            if name == "prototype" and not has_aus:
                self.metric_status["emotion:prototype"] = {
                    "status": "unavailable", "backend": name, "reason": f"needs measured AUs; {no_aus}"}
            elif (model := self._metric(f"emotion:{name}", name)) is not None:
                self.emotion[name] = model

    def measured_by(self) -> str | None:
        """The instrument that reads the outputs' AUs, as every report names it."""
        if self.config.gens_openface_dir is not None:
            return instruments.OPENFACE_CSVS
        if self.openface is not None:
            return instruments.OPENFACE_RUN
        if self.measure_aus is None:
            return None
        return instruments.AUFX_ESTIMATOR if self.measure_aus is aufx_measure else instruments.CALLER

    def instruments(self) -> dict[str, dict]:
        """Per metric: the instrument behind its numbers and whether it is self-referential (metrics.json)."""
        has_aus = "au" not in self.metric_status or self.metric_status["au"]["status"] == "ok"
        au = instruments.au_instrument(self.measured_by() if has_aus else None, self._fallback)
        return instruments.describe(self.metric_status, au)

    def _load(self, name: str):
        self.backend_status[name] = entry = backends.status(name)
        return backends.load(name) if entry["status"] == "ok" else None

    def _metric(self, metric: str, backend: str):
        model = self._load(backend)
        entry = self.backend_status[backend]
        self.metric_status[metric] = {"status": entry["status"], "backend": backend,
                                      **({"reason": entry["reason"]} if "reason" in entry else {})}
        return model

    def emotion_labels(self) -> dict[str, tuple[str, ...]]:
        return {name: model.labels for name, model in self.emotion.items()}

    def _source(self, image: np.ndarray, key: str | None, near: faces.Box | None) -> dict:
        """The source's detector box (and later its embeddings), cached by key: sources repeat across outputs."""
        key = None if key is None else f"{key}|{near}"
        if key is not None and key in self._sources:
            return self._sources[key]
        entry = {"box": self.detector(image, self.config.detector_upsample, near) if self.detector else None}
        if key is not None:
            self._sources[key] = entry
        return entry

    def _face(self, shape, face_box, face_mask, src: dict) -> _Face:
        if face_mask is not None:
            box = faces.bounding_box(face_mask)
            return _Face(src["box"] or box, box, face_mask.astype(bool), "caller mask")
        if face_box is not None:
            box = faces.clip(face_box, shape)
            return _Face(src["box"] or box, box, faces.mask(box, shape), "caller box")
        if src["box"] is not None:
            grown = faces.grow(src["box"], self.config.face_margin, shape)
            return _Face(src["box"], grown, faces.mask(grown, shape), "detector")
        return _Face(None, None, None, None)

    def pair_metrics(self, source: np.ndarray, output: np.ndarray, *, targets: AUVector | None = None,
                     intended: str | None = None, face_box: faces.Box | None = None,
                     face_mask: np.ndarray | None = None, measured: Mapping[str, float] | None | object = _MEASURE,
                     source_key: str | None = None) -> dict:
        """Every requested metric for one pair (RGB uint8 arrays). ``face_box``/``face_mask``: the face when the
        caller knows it (the face-region metrics use it as given; the models use the detector's box on that face);
        ``measured``: AUs of the output measured elsewhere (OpenFace), by default measured here with
        ``measure_aus``; ``source_key`` caches the source's box and embedding."""
        c, want = self.config, set(self.config.metrics)
        rec: dict = {"notes": [], "timing_ms": {}}
        clock = time.perf_counter()

        def lap(name):
            nonlocal clock
            now = time.perf_counter()
            rec["timing_ms"][name] = round((now - clock) * 1000, 2)
            clock = now

        generated = output  # AUs are measured on the output as generated; the rest compares it to the source
        if output.shape != source.shape:
            output = cv2.resize(output, (source.shape[1], source.shape[0]), interpolation=cv2.INTER_AREA)
            rec["notes"].append("output resized to the source size for pixel metrics")
        caller = faces.bounding_box(face_mask) if face_mask is not None else face_box
        src = self._source(source, source_key, None if caller is None else faces.clip(caller, source.shape))
        face = self._face(source.shape, face_box, face_mask, src)
        rec["face_box"], rec["face_box_from"] = (list(face.region_box) if face.region_box else None), face.origin
        if face.box is None:
            rec["notes"].append("no face found: face-region metrics, identity and fer skipped")
        lap("face_box")

        if "au" in want or "prototype" in self.emotion:
            if measured is _MEASURE:
                if self.measure_aus is None and self.openface is not None:
                    measured, more = OpenFaceReader(self.openface, [generated])(0)
                    rec["notes"] += more
                else:
                    measured = self.measure_aus(generated) if self.measure_aus else None
            rec["measured_aus"] = dict(measured) if measured is not None else None
        if "au" in want:
            rec["au"] = au_error(targets, measured) if targets is not None and measured is not None else None
            if targets is None:
                rec["notes"].append("no target AUs: AU error skipped")
            elif measured is None and self.metric_status["au"]["status"] == "ok":
                rec["notes"].append("AU measurement found no face in the output")
            lap("au")

        out_box = face.box  # the output's own face where the detector finds it (an edit may move the head)
        if self.detector and face.box is not None and (self.identity or "fer" in self.emotion):
            out_box = self.detector(output, c.detector_upsample, near=face.box)
            if out_box is None:
                out_box = face.box
                rec["notes"].append("no face detected in the output: used the source's face box")
            lap("output_face")

        if "identity" in want:
            rec["identity"] = self._identity(source, output, face.box, out_box, src) if self.identity else None
            lap("identity")
        if "lpips" in want:
            rec["lpips"] = self.lpips(source, output) if self.lpips is not None else None
            lap("lpips")
        if "psnr" in want:
            rec["psnr"] = {"image": image_quality.psnr(source, output),
                           "face": image_quality.psnr(source, output, face.region) if face.region is not None else None}
            lap("psnr")
        if "ssim" in want:
            whole, region = image_quality.ssim(source, output, face.region)
            rec["ssim"] = {"image": whole, "face": region}
            lap("ssim")
        if "emotion" in want:
            if intended is None and targets is not None:
                intended = self._matcher.classify(targets, c.neutral_max).label
                rec["intended_from"] = "target_aus"
            rec["intended"] = intended
            rec["emotion"] = self._emotion(output, out_box, rec.get("measured_aus"), intended, rec["notes"])
            lap("emotion")
        return rec

    def _identity(self, source, output, box, out_box, src: dict) -> dict | None:
        if box is None:
            return None
        name = self.config.identity_backend
        if src.get(name) is None:
            src[name] = self.identity.embed(source, box)
        result = identity.compare(src[name], self.identity.embed(output, out_box))
        limit = self.backend_status[name].get("same_person_distance")
        if limit is not None:
            result["same_person"] = result["distance"] < limit
        return result

    def _emotion(self, output, out_box, measured, intended, notes: list[str]) -> dict:
        out = {}
        for name, model in self.emotion.items():
            if name == "fer" and out_box is not None:
                got = model.classify(output, faces.grow(out_box, self.config.face_margin, output.shape))
            elif name == "prototype" and measured is not None:
                got = model.classify(measured, self.config.neutral_max)
            else:
                notes.append(f"emotion ({name}): no {'face' if name == 'fer' else 'measured AUs'}")
                continue
            correct = got.label == intended if intended in model.labels else None  # None: not judged
            out[name] = {"label": got.label, "correct": correct, "scores": got.scores}
        return out


def _jsonable(obj):
    """JSON has no inf/nan: write them as strings (PSNR of identical images is inf)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else str(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def evaluate(config: EvalConfig, measure_aus: MeasureAUs | None = None, progress: Progress | None = None) -> dict:
    """Pair, score, aggregate and write ``config.report`` (+ report.html beside it). Returns the metrics dict.

    ``progress(i, n)`` is called with i pairs of n done: before each pair and once at the end."""
    annotations = read_annotations(config.au_csv) if config.au_csv else None
    pairing = pair_images(config.gens, config.refs, annotations, config.source_roots)
    ev = Evaluator(config, measure_aus)
    records, n = [], len(pairing.pairs)
    read_openface = OpenFaceReader(ev.openface, [p.gen for p in pairing.pairs]) if ev.openface else None
    started = time.perf_counter()
    for i, p in enumerate(pairing.pairs):
        if progress:
            progress(i, n)
        try:
            source, output = load_image(p.source), load_image(p.gen)
        except ImageReadError as exc:
            pairing.unpaired.append({"path": str(p.gen), "reason": str(exc)})
            continue
        measured, notes = _MEASURE, []
        if config.gens_openface_dir is not None:
            try:
                measured = openface_aus(p.gen, config.gens_openface_dir)
            except (FileNotFoundError, OpenFaceFormatError) as exc:
                measured, notes = None, [str(exc)]
        elif read_openface is not None:
            measured, notes = read_openface(i)
        rec = ev.pair_metrics(source, output, targets=p.targets, intended=p.intended, face_box=p.face_box,
                              measured=measured, source_key=str(p.source))
        rec["notes"] = notes + rec["notes"]
        head = {"gen": str(p.gen), "source": str(p.source), "targets": p.targets.compact() if p.targets else None,
                "target_from": p.target_from, "intended_from": p.intended_from,
                "measured_from": ev.measured_by()}
        records.append({**head, **rec})  # rec's intended_from ("target_aus") overrides the pairing's
    if progress:
        progress(n, n)
    elapsed = time.perf_counter() - started
    result = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": asdict(config),
        "versions": package_versions(),
        "metrics": ev.metric_status,
        "instruments": ev.instruments(),
        "backends": ev.backend_status,
        "summary": aggregate.summarize(records, ev.emotion_labels()),
        "throughput_images_per_s": n / elapsed if n and elapsed > 0 else None,
        "unpaired": pairing.unpaired,
        "unused_refs": pairing.unused_refs,
        "per_image": records,
    }
    result = _jsonable(result)
    config.report.parent.mkdir(parents=True, exist_ok=True)
    config.report.write_text(json.dumps(result, indent=2, allow_nan=False))
    if config.write_html:
        from aufx.evaluation.report import write_report

        write_report(result, config.report.with_name("report.html"))
    return result


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = EvalConfig()
    ap = argparse.ArgumentParser(
        prog="python -m aufx.evaluation.evaluate",
        description="Score generated images against their sources (AU error, identity, LPIPS, PSNR, SSIM, emotion "
                    "accuracy) and write metrics.json and report.html.",
        epilog="Pairing: a sidecar <image>.json ('input', 'target_aus') wins; otherwise the part of the name before "
               "'__' must match one image in --refs, and --au_csv rows give the targets (see "
               "aufx/evaluation/pairing.py).")
    ap.add_argument("--gens", type=Path, default=d.gens, help="folder of generated images (default %(default)s)")
    ap.add_argument("--refs", type=Path, help="folder of source images, matched by base name")
    ap.add_argument("--metrics", default=",".join(d.metrics), help=f"comma list from {','.join(METRICS)}")
    ap.add_argument("--au_csv", type=Path, help="annotations CSV image_path,AU01,...,AU45 (0..1) with target AUs")
    ap.add_argument("--report", type=Path, default=d.report, help="metrics JSON; report.html goes beside it")
    ap.add_argument("--gens_openface_dir", type=Path, help="OpenFace 2.x CSVs of the generated images (<stem>.csv)")
    ap.add_argument("--au_backend", default=d.au_backend, choices=AU_BACKENDS,
                    help="what reads the outputs' AUs: 'openface' (your OpenFace, run here: an outside reader), "
                         "'aufx' (AUFX's estimator: self-referential), 'auto' (OpenFace where --openface_bin or "
                         "$OPENFACE_BIN is set, else the estimator; default %(default)s)")
    ap.add_argument("--openface_bin", type=Path, help="OpenFace 2.x FeatureExtraction (default: $OPENFACE_BIN)")
    ap.add_argument("--identity_backend", default=d.identity_backend, choices=backends.names("identity"))
    ap.add_argument("--emotion_backend", default=",".join(d.emotion_backends),
                    help=f"comma list from {','.join(backends.names('emotion'))} (default %(default)s)")
    ap.add_argument("--detector_upsample", type=int, default=d.detector_upsample,
                    help="dlib detector upsampling: 1 finds faces smaller than ~80 px, 4x slower")
    ap.add_argument("--no_html", action="store_true", help="write metrics.json only")
    ap.add_argument("--list_backends", action="store_true", help="print each backend's status and licence, then exit")
    return ap.parse_args(argv)


def _split(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.list_backends:
        for name in backends.names():
            s = backends.status(name)
            print(f"{name:10s} {s['kind']:10s} {s['status']:12s} {s['licence']}")
            if "reason" in s:
                print(f"{'':34s}reason: {s['reason']}")
        return 0
    try:
        config = EvalConfig(gens=args.gens, refs=args.refs, au_csv=args.au_csv, report=args.report,
                            metrics=_split(args.metrics), gens_openface_dir=args.gens_openface_dir,
                            au_backend=args.au_backend, openface_bin=args.openface_bin,
                            identity_backend=args.identity_backend, emotion_backends=_split(args.emotion_backend),
                            detector_upsample=args.detector_upsample, write_html=not args.no_html)
        from tqdm import tqdm

        with tqdm(desc="evaluating", unit="img", file=sys.stderr) as bar:
            def progress(i, n):
                bar.total, bar.n = n, i
                bar.refresh()

            measure = None if config.gens_openface_dir or config.au_backend == "openface" else aufx_measure
            result = evaluate(config, measure_aus=measure, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from aufx.evaluation.report import self_referential, summary_rows

    rows = summary_rows(result)
    width = max(len(label) for label, _ in rows) if rows else 0
    for label, value in rows:
        print(f"{label:{width}s}  {value}")
    for name, why in self_referential(result):
        print(f"{name}: {why}")
    for name, m in result["metrics"].items():
        if m["status"] != "ok":
            print(f"{name}: unavailable — {m['reason']}")
    if result["unpaired"]:
        print(f"{len(result['unpaired'])} generated image(s) unpaired (see 'unpaired' in the JSON)")
    print(f"wrote {config.report}" + ("" if args.no_html else f" and {config.report.with_name('report.html')}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
