"""Regenerate aufx/assets/mouth_exemplar.png and aufx/assets/mouth_exemplar.json: a photographed set of teeth for mouths
that open from closed.

Why: a drawn set of teeth looks drawn. A public-domain portrait that smiles with its upper teeth showing is cut
inside its inner lip contour as it is (no retouching), with an alpha channel that marks those pixels, and the JSON
keeps what placing them needs: the landmarks in exemplar pixels, the face frame and IPD (teeth are scaled uniformly
by the IPD ratio), the level and colour of its light measured the way the engine measures the person's
(colour match), and the photo's blur and noise (sharpness and grain match). The larger the source's IPD, the fewer
faces the exemplar must be enlarged for: the shipped one is cut from a portrait at 108 px IPD (scikit-image's
astronaut, the first source, has 41 px).

Known sources, with where to get them and their licences, are in tools/mouth_exemplar_sources.json (keyed by the
file's SHA-256); any other photo needs --credit and --licence.

Usage:  python tools/build_mouth_exemplar.py --source PHOTO|astronaut [--out PREFIX] [--credit TEXT --licence TEXT]
        (deterministic: same photo, same bytes; PREFIX defaults to aufx/assets/mouth_exemplar, .png and .json are
        added)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aufx.engines.mouth_layers import EXEMPLAR, face_frame  # noqa: E402
from aufx.engines.photometry import luminance, measure  # noqa: E402
from aufx.face.analysis import analyze_faces  # noqa: E402
from aufx.face.topology import topology  # noqa: E402
from aufx.io.digest import sha256_file  # noqa: E402
from aufx.io.images import load_image  # noqa: E402

SOURCES = Path(__file__).with_name("mouth_exemplar_sources.json")  # known photos, their sources and licences
PAD = 3  # pixels of context around the inner lip contour
SUPERSAMPLE = 8
ERODE_PX = 0.5  # the alpha stops this far inside the lip contour, so no lip pixels come along
DARKEST_PCT = 15  # the cavity colour: median of the darkest this-many percent of the interior, the mouth's shadow
# (luma 35 on the portrait shipped, the astronaut's darkest 3% were 38; the darkest 3% of a sharp portrait are its
# black corners, which the engine darkens towards on its own)
EDGE_HALF_PX = 2  # the incisal edge under a lower-lip landmark: the median over columns this far either side
RUN_GAP_PX = 1  # a column's teeth run on over gaps this high (a glint's edge); a wider gap ends them (lip below)


def lip_loop_mask(loop: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 alpha of the closed contour ``loop`` (k, 2) crop pixels, anti-aliased, ERODE_PX inside it."""
    big = np.zeros((shape[0] * SUPERSAMPLE, shape[1] * SUPERSAMPLE), np.uint8)
    cv2.fillPoly(big, [np.round((loop * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2) * 16).astype(np.int32)],
                 255, lineType=cv2.LINE_AA, shift=4)
    k = 2 * int(ERODE_PX * SUPERSAMPLE) + 1
    big = cv2.erode(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return cv2.resize(big, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def first_run_end(column: np.ndarray) -> float | None:
    """The row under the first run of True in a (h,) bool column, gaps of up to RUN_GAP_PX rows bridged (the line
    between two teeth); None if the column has no True."""
    rows = np.flatnonzero(column)
    if not len(rows):
        return None
    breaks = np.flatnonzero(np.diff(rows) > RUN_GAP_PX + 1)
    return float(rows[breaks[0]] if len(breaks) else rows[-1]) + 1.0


def incisal_edge(crop: np.ndarray, alpha: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The inner lower lip contour ``lower`` (k, 2) crop pixels raised to the upper teeth's incisal edge where the
    lower lip shows below them (MediaPipe's contour runs along the lip's visible inner edge, which can lie below the
    teeth): the end of the run of tooth pixels that starts under the upper lip (brighter and less saturated than
    the rest inside ``alpha`` (h, w), by Otsu's thresholds on luma and, among the bright, on HSV saturation: a
    glossy lip is as bright as teeth, but pink), the median over nearby columns; where a column shows no teeth
    (the dark corners) the landmark stays."""
    inside = alpha > 127

    def otsu(channel: np.ndarray, where: np.ndarray) -> float:
        return cv2.threshold(channel[where].astype(np.uint8).reshape(-1, 1), 0, 255,
                             cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0]

    y, sat = luminance(crop), cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)[..., 1]
    bright = inside & (y > otsu(y, inside))
    tooth = bright & (sat < otsu(sat, bright))
    out = lower.copy()
    for i, (x, v) in enumerate(lower):
        cols = range(max(int(round(x)) - EDGE_HALF_PX, 0), min(int(round(x)) + EDGE_HALF_PX + 1, tooth.shape[1]))
        rows = [r for r in (first_run_end(tooth[:, c]) for c in cols) if r is not None]
        if len(rows) > EDGE_HALF_PX:
            out[i, 1] = min(v, float(np.median(rows)))
    return out



def load_source(source: str, credit: str | None, licence: str | None) -> tuple[np.ndarray, str, dict]:
    """(RGB (H, W, 3) uint8, the photo's digest, {"source", "licence"}) for ``source``: 'astronaut' or a path."""
    known = json.loads(SOURCES.read_text())
    if source == "astronaut":
        from skimage import data

        image, key = data.astronaut(), "skimage:astronaut"
        digest = hashlib.sha256(np.ascontiguousarray(image).data).hexdigest()
    else:
        path = Path(source)
        if not path.is_file():
            raise SystemExit(f"error: no photo at {path}")
        key = digest = sha256_file(path)
        image = load_image(path)
    if credit and licence:
        return image, digest, {"source": credit, "licence": licence}
    if key not in known:
        raise SystemExit(f"error: {source} is not a known source (tools/mouth_exemplar_sources.json); "
                         "name its --credit and --licence")
    return image, digest, {k: known[key][k] for k in ("source", "licence")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="the photo: a path, or 'astronaut' (scikit-image)")
    p.add_argument("--out", type=Path, default=EXEMPLAR, help="path prefix of the .png and .json written")
    p.add_argument("--credit", help="where another photo comes from (with --licence)")
    p.add_argument("--licence", help="its licence: it must allow redistribution")
    args = p.parse_args(argv)
    out = args.out

    image, digest, origin = load_source(args.source, args.credit, args.licence)
    faces = analyze_faces(image)
    if not faces:
        raise SystemExit(f"error: no face found in {args.source}")
    face = faces[0]
    topo = topology()
    loop = face.landmarks[topo.loop("lips_inner"), :2]
    x0, y0 = np.floor(loop.min(0)).astype(int) - PAD
    x1, y1 = np.ceil(loop.max(0)).astype(int) + PAD + 1
    crop = image[y0:y1, x0:x1]
    off = np.array([x0, y0], float)
    local = face.landmarks[:, :2] - off
    lower_idx = list(topo.groups["lips_inner_lower"])
    local[lower_idx] = incisal_edge(crop, lip_loop_mask(loop - off, crop.shape[:2]), local[lower_idx])
    alpha = lip_loop_mask(local[topo.loop("lips_inner")], crop.shape[:2])

    frame = face_frame(face)
    inside = alpha > 127
    y = luminance(crop)[inside]
    cavity = np.median(crop[inside][y <= np.percentile(y, DARKEST_PCT)], axis=0)
    photo = measure(image, face)
    meta = {
        "description": "Teeth and mouth interior cut from a public-domain photo for AUFX's warp engine "
                       "(aufx/engines/mouth_layers.py); alpha marks the pixels inside the inner lip contour.",
        **origin,
        "source_sha256": digest,
        "made_by": "tools/build_mouth_exemplar.py",
        "crop_box_in_source": [int(x0), int(y0), int(x1), int(y1)],
        "ipd_px": round(float(frame.ipd), 4),
        "centre_px": np.round(frame.centre - off, 4).tolist(),
        "axes": np.round(frame.axes.T, 6).tolist(),
        "inner_upper_px": np.round(local[list(topo.groups["lips_inner_upper"])], 3).tolist(),
        "inner_lower_px": np.round(local[lower_idx], 3).tolist(),
        "cavity_rgb": np.round(cavity, 2).tolist(),
        "highlight": round(photo.highlight, 2),
        "light_rgb": np.round(photo.light_rgb.astype(float), 4).tolist(),
        "blur_px": round(photo.blur_px, 4),
        "noise": round(photo.noise, 4),
    }
    rgba = np.dstack([crop, alpha])
    cv2.imwrite(str(out.with_suffix(".png")), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    text = json.dumps(meta, indent=1)
    text = re.sub(r"\[\s+([-\d.,\s]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    out.with_suffix(".json").write_text(text + "\n")
    print(f"wrote {out}.png ({x1 - x0}x{y1 - y0}) and .json")


if __name__ == "__main__":
    main()
