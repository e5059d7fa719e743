"""Where a real expression's reading comes from: its geometry or its texture, region by region.

Given a neutral and an expressive photo of one person (two frames of a video, say), the neutral photo is warped to the
expression's landmarks (piecewise affine over the MediaPipe mesh, the image border fixed): what an AU reader reads
from that is what the expression's geometry alone shows. Pasting the expression's own pixels back into one region at a
time (mouth, cheeks, eyes) says how much that region's texture adds, and AUFX's own edit of the neutral photo to the
expression as the reader reads it (each AU moved by the change the reader saw between the two photos) says how near
the engine comes. Read with OpenFace 2.x when ``OPENFACE_BIN`` is set, else with AUFX's estimator (the report says
which). It also prints the luminance change across the nasolabial crease (AU12's crease stroke in
aufx/assets/au_appearance.yaml) of the real expression and of AUFX's edit, each against the geometry-only warp: that
is how the smile's broad shadow was measured. And it prints how far a few landmarks moved (lip middles and corners,
chin, inner and outer brows; MediaPipe's mesh with the head pose removed, each relative to a landmark near it, IPD
units) in the real expression and in AUFX's edit: whether the deformation model moves the face as the person did
for the AU change the reader saw.

    python -m eval.transfer --neutral neutral.png --expression smile.png --out results/transfer
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from skimage.transform import PiecewiseAffineTransform, warp

from aufx.au import AUVector
from aufx.engines.photometry import luminance
from aufx.engines.shading import appearance, stroke_polyline
from aufx.face.analysis import FaceAnalysis, FaceNotFoundError, analyze_faces
from aufx.face.topology import topology
from aufx.io.images import load_image, save_image
from aufx.model.estimate import estimate_aus
from aufx.openface_runner import engine_target
from aufx.pipeline import Editor
from eval.fidelity import OPENFACE_AUS, face_crop, labelled, reader_for


@dataclass(frozen=True)
class Region:
    """Landmarks whose convex hull, grown by ``grow`` IPD, is the region (one hull per list)."""

    hulls: tuple[tuple[int, ...], ...]
    grow: float


LIPS = sorted(set(topology().groups["lips_outer_upper"]) | set(topology().groups["lips_outer_lower"]))


@dataclass
class TransferConfig:
    regions: dict[str, Region] = field(default_factory=lambda: {
        "mouth": Region((tuple(LIPS),), 0.05),
        "cheeks": Region(((205, 206, 216, 50, 116, 129, 212, 187, 147), (425, 426, 436, 280, 345, 358, 432, 411, 376)),
                         0.03),
        "eyes": Region((tuple(topology().loop("eye_R")), tuple(topology().loop("eye_L"))), 0.12),
    })
    feather: float = 0.04  # region edges blend over this sigma (IPD)
    crop_size: int = 400  # the reader sees a square crop of the expression's face box...
    crop_margin: float = 0.6  # ...grown by this share of its size per side
    profile_ipd: float = 0.25  # the crease profile reaches this far to each side (IPD)
    # landmark -> the landmark its motion is measured from, nearby so that errors of the head pose cancel: the lower
    # face from the nose base, the brows from the nose bridge between the eyes
    motion_points: dict[str, tuple[int, int]] = field(default_factory=lambda: {
        "upper lip middle": (13, 2), "lower lip middle": (14, 2), "right lip corner": (61, 2),
        "left lip corner": (291, 2), "chin": (152, 2), "right inner brow": (107, 168), "left inner brow": (336, 168),
        "right outer brow": (70, 168), "left outer brow": (300, 168)})
    openface_bin: str | None = None


def _face(image: np.ndarray, name: str) -> FaceAnalysis:
    faces = analyze_faces(image)
    if not faces:
        raise FaceNotFoundError(f"{name}: no face found")
    return faces[0]


def geometry_warp(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) uint8 moved so that its landmarks ``src`` (478, 2) px land on ``dst`` (478, 2) px: piecewise
    affine over the landmarks' triangulation with the image corners and edge midpoints fixed."""
    h, w = image.shape[:2]
    border = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [w / 2, 0], [w / 2, h - 1], [0, h / 2],
                       [w - 1, h / 2]])
    t = PiecewiseAffineTransform.from_estimate(np.vstack([dst, border]), np.vstack([src, border]))  # out -> in
    if not t:
        raise ValueError("the landmarks give no piecewise affine map (degenerate triangles)")
    return np.clip(warp(image, t, order=1, preserve_range=True) + 0.5, 0, 255).astype(np.uint8)


def region_mask(shape: tuple[int, int], landmarks: np.ndarray, region: Region, ipd: float,
                feather: float) -> np.ndarray:
    """(h, w, 1) float32 0..1: the region's hulls on ``landmarks`` (478, 2) px, grown and feathered."""
    m = np.zeros(shape, np.uint8)
    for hull in region.hulls:
        cv2.fillConvexPoly(m, cv2.convexHull(np.round(landmarks[list(hull)]).astype(np.int32)), 1)
    k = 2 * max(1, int(round(region.grow * ipd))) + 1
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(np.float32)
    return cv2.GaussianBlur(m, (0, 0), max(0.5, feather * ipd))[..., None]


def crease_profile(diff: np.ndarray, landmarks: np.ndarray, ipd: float, channel: str, reach: float,
                   steps: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``diff`` (h, w) along AU12's crease on ``landmarks`` (478, 2) px, middle 80% of it, at offsets across
    it: (offsets (steps,) IPD, + towards the mouth; values (steps,))."""
    crease = next(st for st in appearance()[channel][0] if st.kind == "fold" and not st.form)
    poly = stroke_polyline(crease.anchors, landmarks)
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(poly, axis=0), axis=1))]
    s = np.linspace(0.1 * arc[-1], 0.9 * arc[-1], 40)
    p = np.column_stack([np.interp(s, arc, poly[:, 0]), np.interp(s, arc, poly[:, 1])])
    t = np.gradient(p, axis=0)
    n = t[:, ::-1] * [-1.0, 1.0] / np.linalg.norm(t, axis=1, keepdims=True)
    mouth = landmarks[LIPS].mean(axis=0)
    if float(((mouth - p) * n).sum()) < 0:
        n = -n
    offsets = np.linspace(-reach, reach, steps)
    vals = []
    for o in offsets:
        q = (p + n * o * ipd).astype(np.float32)
        vals.append(float(cv2.remap(diff, q[None, :, 0], q[None, :, 1], cv2.INTER_LINEAR).mean()))
    return offsets, np.array(vals)


def _exposure_matched(a: np.ndarray, b: np.ndarray, box) -> np.ndarray:
    """Luma difference a - b (h, w) float32 with the median over the face ``box`` removed (a webcam's exposure
    drifts between frames)."""
    d = luminance(a) - luminance(b)
    x0, y0, x1, y1 = box
    return d - np.float32(np.median(d[y0:y1, x0:x1]))


def reader_target(editor: Editor, read_neutral: dict[str, float] | None,
                  read_expression: dict[str, float] | None, fallback: AUVector) -> tuple[AUVector, AUVector]:
    """The edit that asks AUFX for the expression as the AU reader read it: (the target on the reader's scale, the
    engine's target). Started from the reader's reading of the neutral photo, each AU the reader saw change moves by
    that change from AUFX's own estimate of the photo (aufx.openface_runner.engine_target, as the app does in its
    OpenFace mode); ``fallback`` (AUFX's estimate of the expression) where the reader found no face in either."""
    measured = editor.measured()
    if read_neutral is None or read_expression is None:
        return fallback, fallback
    shown = measured.updated(read_neutral)
    target = shown.updated(read_expression)
    return target, engine_target(target, shown, measured)


def transfer(neutral: np.ndarray, expression: np.ndarray, cfg: TransferConfig = TransferConfig(),
             reader=None) -> dict:
    """The variants (name -> (H, W, 3) uint8 image), the crease profiles and the AUFX edit's target; images must be
    the same size. ``reader`` (eval.fidelity's readers; None: ``reader_for``'s default, OpenFace where $OPENFACE_BIN
    names one, else AUFX's estimator) reads the two photos first: the AUFX edit asks for the expression as it reads
    it."""
    if neutral.shape != expression.shape:
        raise ValueError(f"the two photos differ in size: {neutral.shape[:2]} and {expression.shape[:2]}")
    fn, fe = _face(neutral, "neutral"), _face(expression, "expression")
    ipd = fe.pose.scale
    reader = reader or reader_for(None)
    crops = [face_crop(im, fe.box, cfg.crop_size, cfg.crop_margin) for im in (neutral, expression)]
    first = dict(zip(("neutral", "expression"), reader.read(crops)))
    geom = geometry_warp(neutral, fn.landmarks[:, :2], fe.landmarks[:, :2])
    variants = {"neutral": neutral, "expression": expression, "geometry": geom}
    masks = {k: region_mask(neutral.shape[:2], fe.landmarks[:, :2], r, ipd, cfg.feather)
             for k, r in cfg.regions.items()}
    for name, m in masks.items():
        variants[f"geometry + {name}"] = (geom * (1 - m) + expression * m + 0.5).astype(np.uint8)
    everything = np.clip(sum(masks.values()), 0, 1)
    variants["geometry + all regions"] = (geom * (1 - everything) + expression * everything + 0.5).astype(np.uint8)
    editor = Editor(neutral, cache=None)
    target, engine = reader_target(editor, first["neutral"], first["expression"], estimate_aus(fe))
    variants["AUFX edit"] = editor.edit(engine, measure_output=False).image
    aufx_face = _face(variants["AUFX edit"], "AUFX edit")
    # each against the neutral photo warped to its own landmarks: what is left is its texture
    real_diff = _exposure_matched(expression, geom, fe.box)
    aufx_geom = geometry_warp(neutral, fn.landmarks[:, :2], aufx_face.landmarks[:, :2])
    aufx_diff = _exposure_matched(variants["AUFX edit"], aufx_geom, aufx_face.box)
    profiles = {}
    for ch in ("R12", "L12"):
        offsets, real = crease_profile(real_diff, fe.landmarks[:, :2], ipd, ch, cfg.profile_ipd)
        _, ours = crease_profile(aufx_diff, aufx_face.landmarks[:, :2], aufx_face.pose.scale, ch, cfg.profile_ipd)
        profiles[ch] = {"offset_ipd": offsets.round(3).tolist(), "expression": real.round(1).tolist(),
                        "aufx": ours.round(1).tolist()}
    motion = {who: landmark_motion(fn, face, cfg.motion_points)
              for who, face in (("expression", fe), ("aufx", aufx_face))}
    return {"variants": variants, "box": fe.box, "profiles": profiles, "first_readings": first,
            "aufx_target": target.per_au(OPENFACE_AUS, ndigits=3), "landmark_motion": motion}


def landmark_motion(rest: FaceAnalysis, moved: FaceAnalysis, points: dict[str, tuple[int, int]]) -> dict:
    """name -> [dx, dy] (IPD, x to the image right, y down, head pose removed): how far each landmark of ``points``
    (name -> (landmark, reference landmark)) moved from ``rest`` to ``moved`` relative to its reference."""
    d = moved.canonical - rest.canonical
    return {name: (d[i, :2] - d[ref, :2]).round(3).tolist() for name, (i, ref) in points.items()}


def _sheet(variants: dict[str, np.ndarray], box, size: int = 240) -> np.ndarray:
    return np.hstack([labelled(face_crop(im, box, size, 0.15), name) for name, im in variants.items()])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.transfer", description=__doc__.split("\n\n")[0])
    p.add_argument("--neutral", required=True, type=Path, help="the person at rest")
    p.add_argument("--expression", required=True, type=Path, help="the same person, same size photo, expressive")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--openface_bin", help="OpenFace 2.x FeatureExtraction (default: $OPENFACE_BIN)")
    a = p.parse_args(argv)
    cfg = TransferConfig(openface_bin=a.openface_bin)
    reader = reader_for(cfg.openface_bin)
    result = transfer(load_image(a.neutral), load_image(a.expression), cfg, reader)
    rest = {k: v for k, v in result["variants"].items() if k not in result["first_readings"]}
    crops = [face_crop(im, result["box"], cfg.crop_size, cfg.crop_margin) for im in rest.values()]
    readings = {**result["first_readings"], **dict(zip(rest, reader.read(crops)))}
    a.out.mkdir(parents=True, exist_ok=True)
    save_image(a.out / "transfer.png", _sheet(result["variants"], result["box"]))
    report = {"reader": reader.source, "readings": readings, "aufx_target": result["aufx_target"],
              "crease_profiles_luma": result["profiles"], "landmark_motion_ipd": result["landmark_motion"]}
    (a.out / "transfer.json").write_text(json.dumps(report, indent=1))
    print(f"AU reader: {reader.source} (normalised 0..1; OpenFace AUxx_r / 5)")
    print(f"{'':24s}" + " ".join(au[2:].rjust(4) for au in OPENFACE_AUS))
    for name, r in readings.items():
        print(f"{name:24s}" + " ".join(("  --" if r is None else f"{r[au]:4.2f}") for au in OPENFACE_AUS))
    for ch, prof in result["profiles"].items():
        print(f"luma change across the {ch} crease (+ towards the mouth), offsets {prof['offset_ipd'][0]:+.2f}.."
              f"{prof['offset_ipd'][-1]:+.2f} IPD:")
        print("  expression " + " ".join(f"{v:5.1f}" for v in prof["expression"]))
        print("  AUFX       " + " ".join(f"{v:5.1f}" for v in prof["aufx"]))
    print("landmark motion from the neutral photo (IPD, x right, y down; lower face relative to the nose base, "
          "brows to the nose bridge):")
    print(f"{'':20s}{'expression':>16s}{'AUFX edit':>16s}")
    for name in cfg.motion_points:
        real, ours = (result["landmark_motion"][who][name] for who in ("expression", "aufx"))
        print(f"  {name:18s}{real[0]:+8.3f}{real[1]:+8.3f}{ours[0]:+8.3f}{ours[1]:+8.3f}")
    print(f"written: {a.out / 'transfer.json'}, {a.out / 'transfer.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
