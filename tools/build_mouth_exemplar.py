"""Regenerate aufx/assets/mouth_exemplar.png and aufx/assets/mouth_exemplar.json: a photographed set of teeth for mouths
that open from closed.

Why: a drawn set of teeth looks drawn. scikit-image's ``astronaut`` (NASA portrait of Eileen Collins, public
domain) smiles with her upper teeth showing; the pixels inside her inner lip contour are cut out as they are (no
retouching), with an alpha channel that marks them, and the JSON keeps what placing them needs: her landmarks in
exemplar pixels, her face frame and IPD (teeth are scaled uniformly by the IPD ratio), the lip/skin colours
measured the way the engine measures the person's (colour match), and the photo's blur and noise (sharpness and
grain match).

Usage:  python tools/build_mouth_exemplar.py [--out PREFIX]   (deterministic: same scikit-image data, same bytes;
        PREFIX defaults to aufx/assets/mouth_exemplar, .png and .json are added)
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

from aufx.engines.mouth_layers import EXEMPLAR, face_frame, mouth_colours  # noqa: E402
from aufx.engines.photometry import luminance, measure  # noqa: E402
from aufx.face.analysis import analyze_faces  # noqa: E402
from aufx.face.topology import topology  # noqa: E402

PAD = 3  # pixels of context around the inner lip contour
SUPERSAMPLE = 8
ERODE_PX = 0.5  # the alpha stops this far inside the lip contour, so no lip pixels come along
DARKEST_PCT = 3  # the cavity colour: median of the darkest this-many percent of the interior (the mouth corners)


def main(argv: list[str] | None = None) -> None:
    from skimage import data

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=EXEMPLAR, help="path prefix of the .png and .json written")
    out = p.parse_args(argv).out

    image = data.astronaut()
    face = analyze_faces(image)[0]
    topo = topology()
    loop = face.landmarks[topo.loop("lips_inner"), :2]
    x0, y0 = np.floor(loop.min(0)).astype(int) - PAD
    x1, y1 = np.ceil(loop.max(0)).astype(int) + PAD + 1
    crop = image[y0:y1, x0:x1]
    big = np.zeros(((y1 - y0) * SUPERSAMPLE, (x1 - x0) * SUPERSAMPLE), np.uint8)
    cv2.fillPoly(big, [np.round(((loop - [x0, y0]) * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2) * 16).astype(np.int32)],
                 255, lineType=cv2.LINE_AA, shift=4)
    k = 2 * int(ERODE_PX * SUPERSAMPLE) + 1
    big = cv2.erode(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    alpha = cv2.resize(big, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)

    frame = face_frame(face)
    lip, skin = mouth_colours(image, face)
    inside = alpha > 127
    y = luminance(crop)[inside]
    cavity = np.median(crop[inside][y <= np.percentile(y, DARKEST_PCT)], axis=0)
    photo = measure(image, face)
    off = np.array([x0, y0], float)
    meta = {
        "description": "Teeth and mouth interior cut from a public-domain photo for AUFX's warp engine "
                       "(aufx/engines/mouth_layers.py); alpha marks the pixels inside the inner lip contour.",
        "source": "scikit-image skimage.data.astronaut(): NASA portrait of astronaut Eileen Collins "
                  "(https://commons.wikimedia.org/wiki/File:Eileen_Collins.jpg)",
        "licence": "public domain (work of NASA, a US government agency)",
        "source_sha256": hashlib.sha256(np.ascontiguousarray(image).data).hexdigest(),
        "made_by": "tools/build_mouth_exemplar.py",
        "crop_box_in_source": [int(x0), int(y0), int(x1), int(y1)],
        "ipd_px": round(float(frame.ipd), 4),
        "centre_px": np.round(frame.centre - off, 4).tolist(),
        "axes": np.round(frame.axes.T, 6).tolist(),
        "inner_upper_px": np.round(face.landmarks[list(topo.groups["lips_inner_upper"]), :2] - off, 3).tolist(),
        "inner_lower_px": np.round(face.landmarks[list(topo.groups["lips_inner_lower"]), :2] - off, 3).tolist(),
        "lip_rgb": np.round(lip, 2).tolist(),
        "skin_rgb": np.round(skin, 2).tolist(),
        "cavity_rgb": np.round(cavity, 2).tolist(),
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
