"""AU error: how far the AUs measured on the output are from the target AUs (normalised 0..1 scale).

Errors are per AU in the OpenFace view (bilateral AUs: mean of both sides, AUVector.au), over the AUs the measurement
reports: OpenFace has 17, AUFX's estimator may have more. The measurement comes from either a callable
``measure_aus(image_rgb) -> dict | None`` (the app plugs in aufx.model.estimate), OpenFace 2.x CSVs of the outputs,
or the user's OpenFace binary run on the outputs directly (OpenFaceReader); aufx/evaluation/instruments.py says
which of them are outside readers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from aufx.au import AUVector, au_codes, channel_au, resolve_key
from aufx.io.openface import DEFAULT_MIN_CONFIDENCE, OPENFACE_AUS, read_openface_csv

MeasureAUs = Callable[[np.ndarray], "Mapping[str, float] | None"]


def au_error(target: AUVector, measured: Mapping[str, float]) -> dict:
    """Per-AU target, measured and absolute error, plus mean absolute error and RMSE over those AUs."""
    present = {channel_au(ch).code for key in measured for ch in resolve_key(key)}
    codes = [c for c in au_codes() if c in present]
    got = AUVector.clipped(measured)
    t = {c: round(target.au(c), 4) for c in codes}
    m = {c: round(got.au(c), 4) for c in codes}
    err = np.array([abs(target.au(c) - got.au(c)) for c in codes])
    return {"target": t, "measured": m, "abs_error": {c: round(float(e), 4) for c, e in zip(codes, err)},
            "mae": float(err.mean()) if codes else None,
            "rmse": float(np.sqrt((err ** 2).mean())) if codes else None}


def summarize(records: list[dict]) -> dict | None:
    """Per-AU MAE/RMSE over images, and overall MAE/RMSE over every (image, AU) error."""
    errors: dict[str, list[float]] = {}
    for rec in records:
        for code, e in rec["abs_error"].items():
            errors.setdefault(code, []).append(e)
    if not errors:
        return None
    every = np.concatenate([np.asarray(v) for v in errors.values()])
    per_au = {c: {"mae": float(np.mean(v)), "rmse": float(np.sqrt(np.mean(np.square(v)))), "n": len(v)}
              for c, v in ((c, errors[c]) for c in au_codes() if c in errors)}
    return {"mae": float(every.mean()), "rmse": float(np.sqrt((every ** 2).mean())), "n_images": len(records),
            "per_au": per_au}


def openface_aus(image: Path, folder: Path) -> dict[str, float] | None:
    """AUs of an image from its OpenFace output `<stem>.csv` or `<stem>_of.csv` in folder (as OpenFace users name them):
    the most confident row that aufx.io.openface keeps (success 1, confidence >= its threshold), None if no row is
    kept. FileNotFoundError when there is no CSV; aufx.io.openface.OpenFaceFormatError when it is not OpenFace's."""
    for name in (f"{image.stem}.csv", f"{image.stem}_of.csv"):
        if (folder / name).is_file():
            table = read_openface_csv(folder / name)
            kept = table.kept
            if kept.empty:
                return None
            row = kept.loc[kept["confidence"].idxmax()]
            return {au: float(row[au]) for au in table.aus}
    raise FileNotFoundError(f"no OpenFace CSV {image.stem}.csv or {image.stem}_of.csv in {folder}")


def aufx_measure(image: np.ndarray) -> dict[str, float] | None:
    """The project's own estimator on the largest face of an image (None when no face is found)."""
    from aufx.model.estimate import estimate_aus
    from aufx.face.analysis import analyze_faces

    found = analyze_faces(image)
    return estimate_aus(found[0]).per_au() if found else None


class OpenFaceReader:
    """AUs of generated images (paths or RGB arrays) read by the user's OpenFace (aufx.openface_runner), not CSVs: the
    images are read a batch per FeatureExtraction call, on first request. Like ``openface_aus``, a reading below
    OpenFace's usual confidence threshold counts as no reading."""

    def __init__(self, openface, paths: list, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
        from aufx.openface_runner import BATCH_SIZE

        self.openface, self.paths, self.min_confidence, self.batch = openface, paths, min_confidence, BATCH_SIZE
        self._got: dict[int, tuple[dict[str, float] | None, list[str]]] = {}

    def __call__(self, i: int) -> tuple[dict[str, float] | None, list[str]]:
        """(AUs, notes) of image i: the 17 OpenFace AUs (0..1), or None with the reason in notes."""
        if i not in self._got:
            self._read(range(i - i % self.batch, min(len(self.paths), i - i % self.batch + self.batch)))
        return self._got.pop(i)

    def _read(self, indices: range) -> None:
        from aufx.io.images import ImageReadError, load_image
        from aufx.openface_runner import OpenFaceError

        images = {}
        for i in indices:
            try:
                images[i] = load_image(self.paths[i])
            except ImageReadError as exc:
                self._got[i] = None, [str(exc)]
        try:
            readings = self.openface.read(list(images.values()))
        except OpenFaceError as exc:
            self._got.update({i: (None, [str(exc)]) for i in images})
            return
        for i, r in zip(images, readings):
            if r is None:
                self._got[i] = None, ["OpenFace found no face in the output"]
            elif r.confidence < self.min_confidence:
                self._got[i] = None, [f"OpenFace's confidence {r.confidence:.2f} is below {self.min_confidence}: "
                                      "AUs not used"]
            else:
                self._got[i] = {a: r.aus.au(a) for a in OPENFACE_AUS}, []
