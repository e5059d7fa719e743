"""Measure AUs with the researcher's own OpenFace 2.x (``FeatureExtraction``, static AU models).

AUFX neither ships nor downloads OpenFace (its licence allows noncommercial research use only): the user builds it
and points ``OPENFACE_BIN`` (or ``--openface_bin``, or the app's setting) to its ``FeatureExtraction``. Every image
of a request goes to one call, since each call spends about a second loading models; readings are cached by image
content. FeatureExtraction follows a single face per input, so several faces are sent as one crop each.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from aufx.au import AUVector
from aufx.model.estimate import SOURCE as AUFX_ESTIMATOR_SOURCE
from aufx.io.digest import array_digest
from aufx.io.images import load_image
from aufx.io.openface import FAILED, OPENFACE_AUS, OpenFaceFormatError, read_openface_csv

SOURCE = "OpenFace 2.x static"  # how every number measured with it is labelled
AUFX_SOURCE = AUFX_ESTIMATOR_SOURCE  # the other measurement: aufx.model.estimate
SOURCES = {"aufx": AUFX_SOURCE, "openface": SOURCE}  # the "measure with" choices of the CLI, app, eval and stimuli
ENV_VAR = "OPENFACE_BIN"
HOW_TO = ("AUFX neither ships nor downloads OpenFace (licence: noncommercial research use only); build OpenFace 2.x "
          "yourself (https://github.com/TadasBaltrusaitis/OpenFace/wiki, see README 'Measuring with OpenFace') and set "
          f"{ENV_VAR}, --openface_bin or the app's setting to its FeatureExtraction")

LANDMARK_MODEL = "model/main_clnf_general.txt"  # relative to the binary's folder, as OpenFace's build lays it out
NEEDED_BESIDE = ("model", "AU_predictors")
FLAGS = ("-au_static", "-aus", "-2Dfp")  # static AU models (single images), AU intensities + presence, 2D landmarks
CROP_SCALE = 1.6      # a face's crop is its landmark box enlarged this much (square): OpenFace's detector needs context
MIN_FACE_PX = 100     # crops whose face is smaller than this many px across are upscaled to it
BATCH_SIZE = 256      # images per FeatureExtraction call (keeps the command line short)
TIMEOUT_S = 60.0      # per call, plus TIMEOUT_PER_IMAGE_S for each image in it
TIMEOUT_PER_IMAGE_S = 2.0

Box = tuple[int, int, int, int]


class OpenFaceError(RuntimeError):
    """OpenFace is not configured, not found, or failed; the message says what to do."""


@dataclass(frozen=True)
class OpenFaceReading:
    aus: AUVector        # AUxx_r / 5 clipped to [0, 1] for the 17 OpenFace AUs (bilateral AUs on both sides)
    raw: dict            # {"AU01_r": .., "AU01_c": ..} as OpenFace printed them
    confidence: float
    success: bool
    box: Box | None      # x0, y0, x1, y1 in the input image, from OpenFace's 2D landmarks

    @property
    def source(self) -> str:
        return SOURCE


def openface_binary(path: str | os.PathLike | None = None) -> Path:
    """The FeatureExtraction to run: ``path`` (the binary or its folder), else $OPENFACE_BIN."""
    given = path if path not in (None, "") else os.environ.get(ENV_VAR, "")
    if not str(given).strip():
        raise OpenFaceError(f"OpenFace is not configured. {HOW_TO}")
    binary = Path(str(given).strip()).expanduser()
    if binary.is_dir():
        binary = binary / "FeatureExtraction"
    if not binary.is_file():
        raise OpenFaceError(f"OpenFace FeatureExtraction not found at {binary}. {HOW_TO}")
    if not os.access(binary, os.X_OK):
        raise OpenFaceError(f"{binary} is not executable (chmod +x it, or point to the FeatureExtraction that "
                            "OpenFace's build wrote)")
    missing = [d for d in NEEDED_BESIDE if not (binary.parent / d).is_dir()]
    if missing or not (binary.parent / LANDMARK_MODEL).is_file():
        raise OpenFaceError(f"OpenFace's models are missing beside {binary} ({', '.join(missing) or LANDMARK_MODEL});"
                            " run OpenFace's download_models script and use the FeatureExtraction in its build's bin"
                            " folder")
    return binary.absolute()


def reading_from_csv(path: str | Path) -> OpenFaceReading | None:
    """One FeatureExtraction CSV of a single image -> its reading; None where OpenFace found no face (success 0).
    Boxes are in the coordinates of the image OpenFace read."""
    table = read_openface_csv(path, min_confidence=0.0)  # confidence is reported, not filtered, here
    if table.rows.empty:
        raise OpenFaceFormatError(f"{path}: no rows")
    row = table.rows.iloc[0]
    if row["status"] == FAILED:
        return None
    printed = pd.read_csv(path, skipinitialspace=True, nrows=1)
    printed.columns = [str(c).strip() for c in printed.columns]
    raw = {c: float(printed[c].iloc[0]) for c in printed.columns if c.startswith("AU")}
    xs = printed.filter(regex=r"^x_\d+$").to_numpy(float).ravel()
    ys = printed.filter(regex=r"^y_\d+$").to_numpy(float).ravel()
    box = None
    if xs.size and ys.size:
        box = (int(np.floor(xs.min())), int(np.floor(ys.min())), int(np.ceil(xs.max())), int(np.ceil(ys.max())))
    return OpenFaceReading(AUVector({a: float(row[a]) for a in table.aus}), raw, float(row["confidence"]), True, box)


def _summary(output: str, lines: int = 3) -> str:
    """The lines of OpenFace's console output that say what went wrong (it prints errors to stdout too)."""
    text = [ln.strip() for ln in output.splitlines() if ln.strip()]
    bad = [ln for ln in text if any(w in ln.lower() for w in ("error", "could not", "fail", "abort", "cannot"))]
    return " | ".join((bad or text)[-lines:]) or "no output"


class OpenFace:
    """One FeatureExtraction binary with an LRU cache of readings keyed by image content."""

    def __init__(self, binary: str | os.PathLike | None = None, cache_size: int = 4096):
        self.binary = openface_binary(binary)
        self.cache_size = cache_size
        self.calls = 0  # FeatureExtraction runs so far
        self._cache: OrderedDict[str, OpenFaceReading | None] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, images: Sequence[np.ndarray | str | Path]) -> list[OpenFaceReading | None]:
        """images: RGB uint8 arrays (H, W, 3) or paths. One FeatureExtraction call for all uncached ones (cache keyed
        by content digest); None where OpenFace found no face."""
        rgbs = [load_image(im) for im in images]
        keys = [array_digest(rgb) for rgb in rgbs]
        with self._lock:
            have = {k: self._cache[k] for k in keys if k in self._cache}
            for k in have:
                self._cache.move_to_end(k)
        todo = {k: rgb for k, rgb in zip(keys, rgbs) if k not in have}
        found = self._run(todo) if todo else {}
        with self._lock:
            self._cache.update(found)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        have.update(found)
        return [have[k] for k in keys]

    def read_faces(self, image: np.ndarray | str | Path, faces: Sequence) -> list[OpenFaceReading | None]:
        """One reading per AUFX face (FaceAnalysis list, AUFX's order), each from its own crop (face box enlarged,
        other faces greyed out, upscaled if small), all in one call; boxes come back in ``image`` coordinates."""
        return self.read_many_faces([(image, faces)])[0]

    def read_many_faces(self, items: Sequence[tuple]) -> list[list[OpenFaceReading | None]]:
        """read_faces for several (image, faces) pairs in one call (e.g. every output of a stimulus set)."""
        plans = []
        for image, faces in items:
            rgb = load_image(image)
            boxes = [tuple(int(v) for v in f.box) for f in faces]
            crops = [face_crop(rgb, b, [o for j, o in enumerate(boxes) if j != i]) for i, b in enumerate(boxes)]
            plans.append((rgb.shape[:2], crops))
        readings = iter(self.read([c for _, crops in plans for c, _ in crops]))
        return [[None if (r := next(readings)) is None else replace(r, box=_to_image(r.box, origin, size))
                 for _, origin in crops] for size, crops in plans]

    def _run(self, images: dict[str, np.ndarray]) -> dict[str, OpenFaceReading | None]:
        """FeatureExtraction on every image (keyed by digest) in a private temp folder, removed afterwards."""
        keys = list(images)
        out: dict[str, OpenFaceReading | None] = {}
        with tempfile.TemporaryDirectory(prefix="aufx-openface-") as tmp:
            src, dst = Path(tmp, "in"), Path(tmp, "out")
            src.mkdir()
            for start in range(0, len(keys), BATCH_SIZE):
                chunk = keys[start:start + BATCH_SIZE]
                args = []
                for k in chunk:
                    path = src / f"{k}.png"
                    if not cv2.imwrite(str(path), cv2.cvtColor(images[k], cv2.COLOR_RGB2BGR)):
                        raise OpenFaceError(f"could not write a temporary image to {src}")
                    args += ["-f", str(path)]
                self._call(args, dst, len(chunk))
                for k in chunk:
                    csv = dst / f"{k}.csv"
                    if not csv.is_file():
                        raise OpenFaceError(f"OpenFace ({self.binary}) wrote no CSV for {len(chunk)} image(s) it was "
                                            "given; run it by hand on one image to see why")
                    try:
                        out[k] = reading_from_csv(csv)
                    except OpenFaceFormatError as exc:
                        raise OpenFaceError(f"OpenFace ({self.binary}) wrote an unreadable CSV: {exc}") from None
        return out

    def _call(self, image_args: list[str], out_dir: Path, n: int) -> None:
        self.calls += 1
        feature_extraction(self.binary, image_args, out_dir, n)


def feature_extraction(binary: Path, image_args: list[str], out_dir: Path, n: int,
                       flags: Sequence[str] = FLAGS) -> None:
    """One FeatureExtraction run of ``binary`` (checked by openface_binary) on ``image_args`` ("-f PATH" pairs of
    ``n`` images) with ``flags``, writing into ``out_dir``; a clear OpenFaceError if it fails or overruns."""
    cmd = [str(binary), "-mloc", str(binary.parent / LANDMARK_MODEL), *flags, *image_args, "-out_dir", str(out_dir)]
    timeout = TIMEOUT_S + TIMEOUT_PER_IMAGE_S * n
    try:
        done = subprocess.run(cmd, cwd=binary.parent, capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise OpenFaceError(f"OpenFace ({binary}) took longer than {timeout:.0f} s on {n} image(s)") from None
    except OSError as exc:
        raise OpenFaceError(f"could not run OpenFace ({binary}): {exc}") from None
    if done.returncode != 0:
        raise OpenFaceError(f"OpenFace ({binary}) failed with exit code {done.returncode} on {n} image(s): "
                            f"{_summary(done.stderr + chr(10) + done.stdout)}")


def face_crop(rgb: np.ndarray, box: Box, others: Sequence[Box] = ()) -> tuple[np.ndarray, tuple[int, int, float]]:
    """The square crop OpenFace gets for one face: (crop (h, w, 3), (x0, y0, scale) mapping crop px to image px as
    x_image = x0 + x_crop / scale). Other faces inside it are filled with the crop's mean colour, so OpenFace's
    single-face tracker cannot pick them."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    half = side * CROP_SCALE / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a0, b0 = max(0, int(cx - half)), max(0, int(cy - half))
    a1, b1 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
    crop = rgb[b0:b1, a0:a1].copy()
    if others:
        mask = np.zeros(crop.shape[:2], bool)
        for ox0, oy0, ox1, oy1 in others:
            mask[max(0, oy0 - b0):max(0, oy1 - b0), max(0, ox0 - a0):max(0, ox1 - a0)] = True
        mask[max(0, y0 - b0):max(0, y1 - b0), max(0, x0 - a0):max(0, x1 - a0)] = False
        if mask.any():
            crop[mask] = crop[~mask].mean(0).astype(np.uint8) if (~mask).any() else 128
    scale = max(1.0, MIN_FACE_PX / max(1, side))
    if scale > 1.0:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return crop, (a0, b0, scale)


def _to_image(box: Box | None, origin: tuple[int, int, float], size: tuple[int, int]) -> Box | None:
    """A box in crop pixels -> the input image's pixels, clipped to it (size is (height, width))."""
    if box is None:
        return None
    a0, b0, s = origin
    h, w = size
    x0, y0, x1, y1 = box
    return (min(w, max(0, int(np.floor(a0 + x0 / s)))), min(h, max(0, int(np.floor(b0 + y0 / s)))),
            min(w, max(0, int(np.ceil(a0 + x1 / s)))), min(h, max(0, int(np.ceil(b0 + y1 / s)))))


_shared: dict[Path, OpenFace] = {}
_shared_lock = threading.Lock()


def shared_openface(binary: str | os.PathLike | None = None) -> OpenFace:
    """One OpenFace per binary and process, so every caller shares its cache."""
    path = openface_binary(binary)
    with _shared_lock:
        if path not in _shared:
            _shared[path] = OpenFace(path)
        return _shared[path]


def openface_start(reading: OpenFaceReading | None, estimated: AUVector) -> AUVector:
    """What a face reads in OpenFace mode: OpenFace's 17 AUs, the AUFX estimate for the AUs OpenFace does not
    measure (AU16, AU24, AU27, AU43); the estimate alone where OpenFace found no face."""
    if reading is None:
        return estimated
    return estimated.updated({a: reading.aus.au(a) for a in OPENFACE_AUS})


def engine_target(target: AUVector, shown: AUVector, estimated: AUVector) -> AUVector:
    """The editor's target for a request made on another instrument's scale: ``shown`` is the face as that
    instrument reads it, ``target`` what the user asks for. Each channel the user changed moves by the same amount
    from the AUFX estimate (the engine's own start); untouched channels stay at the estimate, so they are no edit."""
    moved = {ch: estimated[ch] + target[ch] - shown[ch] for ch in target if abs(target[ch] - shown[ch]) > 1e-9}
    return AUVector({**estimated.as_dict(), **{ch: min(1.0, max(0.0, v)) for ch, v in moved.items()}})
