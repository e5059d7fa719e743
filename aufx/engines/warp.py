"""The warp engine: training-free, CPU, real time.

render(image, face, target AUs, deformation), in the order the data flows: the photo's spectacle frames lifted out
(rigid.py) -> the photo's own folds eased where the edit takes their AU away (relax.py) -> dense backward warp of
the face region along the target landmarks (field.py; the landmarks come from aufx/model/deform.py; nothing under
the frames' top rims is lifted) -> skin squeezed hard folds under, softly resampled and in shadow (squeeze.py) ->
the photo's texture at its own size where the warp stretched skin (texture.py) ->
eyes and lids (eyes.py) -> mouth interior where lips part (mouth.py, mouth_layers.py) -> each AU's relief shaded in
(shading.py: drawn once per photo and carried by the same warp, lit with the photo's light, blur and grain from
photometry.py) -> the frames put back unbent (rigid.py) -> composite into the full-resolution original, untouched
outside the face region.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from dataclasses import field as dc_field

import cv2
import numpy as np

from aufx.au import AUVector
from aufx.model.deform import Deformation, deform
from aufx.engines.field import FieldConfig, FrameHold, WarpField
from aufx.engines.eyes import render_eyes
from aufx.engines.interiors import InteriorConfig
from aufx.engines.mouth import render_mouth
from aufx.engines.photometry import PhotometryConfig, photometry
from aufx.engines.relax import RelaxConfig, relax_folds
from aufx.engines.rigid import RigidConfig, frame_hold, keep_rigid, without_frames
from aufx.engines.shading import ShadingConfig, render_shading
from aufx.engines.squeeze import SqueezeConfig, fold_squeezed
from aufx.engines.texture import TextureConfig, restore_texture
from aufx.face.analysis import FaceAnalysis


@dataclass(frozen=True)
class WarpConfig:
    field: FieldConfig = dc_field(default_factory=FieldConfig)
    interiors: InteriorConfig = dc_field(default_factory=InteriorConfig)
    shading: ShadingConfig = dc_field(default_factory=ShadingConfig)
    relax: RelaxConfig = dc_field(default_factory=RelaxConfig)  # the photo's folds eased where their AU is taken away
    rigid: RigidConfig = dc_field(default_factory=RigidConfig)
    texture: TextureConfig = dc_field(default_factory=TextureConfig)  # texture at its size where skin stretches
    squeeze: SqueezeConfig = dc_field(default_factory=SqueezeConfig)  # a fold where skin is squeezed hard
    photometry: PhotometryConfig = dc_field(default_factory=PhotometryConfig)  # the photo's light, blur, grain, skin
    resample: str = "cubic"  # how the warp samples the photo ("cubic" | "linear"): bilinear weights average the
    # neighbours of every sub-pixel shift, softening the whole moved face next to the untouched rest of the photo


RESAMPLING = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}


class WarpEngine:
    """The :class:`~aufx.engines.base.Engine` registered as "warp"."""

    name = "warp"

    def __init__(self, config: WarpConfig = WarpConfig()):
        self.config = config
        self._params = json.dumps(asdict(config))  # the config is frozen; asdict's deep copy cost 0.2 ms per edit

    def params(self) -> dict:
        """The WarpConfig as a JSON-able dict (the result's ``engine_params``), a fresh one per call."""
        return json.loads(self._params)

    def prepare(self, face: FaceAnalysis) -> WarpField:
        """Per-face precomputation (the warp field over the face's region of interest, px), cached on the analysis so
        slider moves skip it."""
        key = ("warp_field", self.config.field)
        if key not in face.cache:
            face.cache[key] = WarpField(face, self.config.field)
        return face.cache[key]

    def motion(self, image: np.ndarray, face: FaceAnalysis) -> FrameHold | None:
        """The share of the lifting motion each field pixel takes: 0 under the top rims of spectacle frames (None
        without frames), cached on the analysis."""
        key = ("frame_motion", self.config.rigid, self.config.field)
        if key not in face.cache:
            held = frame_hold(image, face, self.config.rigid, self.config.photometry)
            face.cache[key] = None if held is None else FrameHold.of(1.0 - self.prepare(face).low_res(*held))
        return face.cache[key]

    def render(self, image: np.ndarray, face: FaceAnalysis, target: AUVector,
               deformation: Deformation | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """The edited full-resolution image, in ``out`` (a copy of ``image`` when None; ``image`` itself when the
        caller no longer needs the input).

        image: (H, W, 3) uint8 RGB; face: its analysis (landmarks (478, 3) px); target: AUs 0..1;
        deformation: ``deform(face, target)`` (target_landmarks (478, 2) px), computed here when None.
        Returns (H, W, 3) uint8 RGB, equal to ``image`` outside the warp field's region.
        """
        d = deformation or deform(face, target)
        if d.is_identity:
            return _copy_into(out, image)
        wf = self.prepare(face)
        mx, my = wf.backward_maps(d.displacement_px, self.motion(image, face))
        rx0, ry0, rx1, ry1 = wf.roi
        cfg = self.config
        face_only = without_frames(image, face, cfg.rigid, cfg.photometry)  # frames are put back, unbent, at the end
        # the photo's own folds eased where the edit takes their AU away, before the warp squeezes them
        sampled, (ox, oy) = relax_folds(face_only, face, d, wf.roi, cfg.relax, cfg.photometry)
        mx -= ox  # the maps (fresh per edit) address the sampled region; whole-pixel shifts are exact in float32
        my -= oy
        roi = cv2.remap(sampled, mx, my, RESAMPLING[cfg.resample], borderMode=cv2.BORDER_REPLICATE)
        pm = photometry(image, face, cfg.photometry)
        # skin squeezed hard (a brow taken down onto its lid) folds under: resampled softly, in shadow
        roi = fold_squeezed(roi, (sampled, (ox, oy)), (mx, my), face, d, wf.roi, pm, cfg.squeeze)
        mx += ox
        my += oy
        # the photo's texture at its own size where the warp stretched skin, not streaks
        roi = restore_texture(roi, face_only, face, wf.roi, pm, (mx, my),
                              max(4, int(round(1.0 / wf.scale))), cfg.texture)
        # lids from skin, not frames
        roi = render_eyes(roi, face_only, face, d, wf.roi, cfg.interiors, cfg.photometry, (mx, my))
        roi = render_mouth(roi, image, face, d, wf.roi, cfg.interiors, cfg.photometry, (mx, my))
        roi = render_shading(roi, image, face, d, wf.roi, (mx, my), cfg.shading, cfg.photometry)
        roi = keep_rigid(roi, image, face, wf.roi, cfg.rigid, cfg.photometry)  # spectacle frames do not bend
        out = _copy_into(out, image)  # the last read of ``image``: it may be ``out``
        cv2.copyTo(roi, wf.region, out[ry0:ry1, rx0:rx1])  # into the view: only the pixels inside the ring
        return out


def _copy_into(out: np.ndarray | None, image: np.ndarray) -> np.ndarray:
    """``image``'s pixels in ``out`` (a new copy when None; nothing to do when ``out`` is ``image``)."""
    if out is None:
        return image.copy()
    if out is not image:
        np.copyto(out, image)
    return out
