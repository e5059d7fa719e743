"""Diffusion engine: refines the warp engine's result with SD1.5 img2img (AU LoRA + AU tokens, optional ControlNet).

Warp-then-refine: ``render`` runs the warp engine's render, then a low-strength img2img pass on the face crop makes
folds, teeth and closed eyes look photographic while the warp keeps geometry and identity. Only the face mask (the
union of the source and target face ovals) is regenerated; pixels outside it are returned unchanged. torch and
diffusers are imported on the first edit, the warp engine when the engine is made, so importing this module
(for its command-line flags) is cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from aufx.au import AUVector
from aufx.diffusion.config import DiffusionConfig, add_diffusion_args, config_from_args
from aufx.diffusion.errors import EngineUnavailable, LoraFileError, ModelUnavailable

if TYPE_CHECKING:
    from aufx.face.analysis import FaceAnalysis
    from aufx.model.deform import Deformation

__all__ = ["DiffusionEngine", "DiffusionConfig", "MaskConfig", "face_mask", "add_diffusion_args",
           "config_from_args", "EngineUnavailable", "ModelUnavailable", "LoraFileError"]


@dataclass(frozen=True)
class MaskConfig:
    blur: float = 0.15  # Gaussian blur of the mask's edge, as a fraction of the face scale (face.pose.scale, px)


def face_mask(face: FaceAnalysis, d: Deformation, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """(H, W) float32 soft mask in [0, 1] of the edited face: the union of the source face oval
    (``face.landmarks``, px) and the target one (``d.target_landmarks`` (478, 2) px), blurred at its edge."""
    import cv2

    from aufx.face.topology import topology

    h, w = face.image_size
    m = np.zeros((h, w), np.uint8)
    oval = list(topology().groups["face_oval"])
    for pts in (face.landmarks[oval, :2], d.target_landmarks[oval]):
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 255)
    k = max(3, int(face.pose.scale * cfg.blur) | 1)
    return cv2.GaussianBlur(m, (k, k), 0).astype(np.float32) / 255.0


class DiffusionEngine:
    """The :class:`~aufx.engines.base.Engine` registered as "diffusion": the warp, refined."""

    name = "diffusion"

    def __init__(self, config: DiffusionConfig | None = None, seed: int | None = None,
                 mask: MaskConfig = MaskConfig()):
        """``seed``: the edit's seed, overriding ``config.seed`` (the registry passes the request's seed here)."""
        from aufx.engines import registry  # here, so that listing the CLI flags imports no renderer

        config = config or DiffusionConfig()
        self.config = config if seed is None else replace(config, seed=int(seed))
        self.mask = mask
        self.warp = registry.engine("warp")  # the process's shared warp engine: its per-face caches too
        self._resolved: dict = {}  # what the last edit ran with: device, dtype, seed, scheduler, LoRA hash

    @classmethod
    def add_cli_args(cls, parser):
        """The ``--model``, ``--lora_path``... flags (one per DiffusionConfig field) in their own argument group."""
        return add_diffusion_args(parser)

    @classmethod
    def options_from_args(cls, args) -> dict:
        """The engine's keyword options from parsed flags."""
        return {"config": config_from_args(args)}

    def render(self, image: np.ndarray, face: FaceAnalysis, target: AUVector, deformation: Deformation,
               out: np.ndarray | None = None) -> np.ndarray:
        """The warp engine's render of ``target``, its masked face regenerated.

        image: (H, W, 3) uint8 RGB; deformation: ``deform(face, target)`` (target_landmarks (478, 2) px); out: where
        the warp may paste (aufx/engines/base.py).
        Returns (H, W, 3) uint8 RGB, equal to the warp result outside the face mask.
        """
        warped = self.warp.render(image, face, target, deformation, out)
        return self.refine(warped, face_mask(face, deformation, self.mask), target, deformation.target_landmarks)

    def load(self):
        """Load (or fetch from the process cache) the pipeline now; raises ModelUnavailable with what to fetch."""
        from aufx.diffusion.loading import get_pipeline

        return get_pipeline(self.config)

    def refine(self, init_rgb: np.ndarray, face_mask: np.ndarray, au_vector: AUVector,
               target_landmarks_px: np.ndarray | None = None, seed: int | None = None) -> np.ndarray:
        """Regenerate the masked face of ``init_rgb`` (the warp result for ``au_vector``); same shape, uint8.

        init_rgb: (H, W, 3) uint8 RGB; face_mask: (H, W) float in [0, 1]; target_landmarks_px: (478, 2) px, needed
        for a mesh ControlNet; seed: this call's seed (None: ``config.seed``).
        """
        from aufx.diffusion import region
        from aufx.diffusion.loading import resolve_runtime
        from aufx.diffusion.sampling import generate

        cfg = self.config
        _check_inputs(init_rgb, face_mask, target_landmarks_px, cfg)
        box = region.face_box(face_mask, cfg.crop_margin)
        if box is None:
            return init_rgb.copy()
        loaded = self.load()
        crop = region.extract(init_rgb, box, cfg.crop_size)
        control = self._control_image(crop, box, target_landmarks_px) if cfg.controlnet_path else None
        seed = cfg.seed if seed is None else int(seed)
        generated = generate(loaded, cfg, crop, au_vector, seed, control)
        note = resolve_runtime(cfg.device, cfg.dtype).note
        self._resolved = {**loaded.info, "seed": seed, "scheduler": type(loaded.pipe.scheduler).__name__,
                          **({"runtime_note": note} if note else {})}
        return region.paste(init_rgb, generated, box, region.blend_weights(face_mask, box, cfg.feather))

    def _control_image(self, crop: np.ndarray, box, landmarks: np.ndarray | None) -> np.ndarray:
        from aufx.diffusion import conditioning, region

        size = self.config.crop_size
        if self.config.cond == "canny":
            return conditioning.canny_edges(crop)
        return conditioning.draw_mesh(region.to_crop(landmarks, box, size), size)

    def params(self) -> dict:
        """JSON-able settings for the output sidecar; after an edit, also what that edit resolved (device, seed...)."""
        cfg = self.config
        out = {"engine": self.name, **cfg.to_dict(),
               "scheduler_steps": cfg.active_steps, "guidance_scale_used": cfg.active_guidance_scale,
               "denoising_steps": int(cfg.active_steps * cfg.strength)}
        return {**out, **self._resolved}


def _check_inputs(init_rgb, face_mask, landmarks, cfg: DiffusionConfig) -> None:
    if init_rgb.dtype != np.uint8 or init_rgb.ndim != 3 or init_rgb.shape[2] != 3:
        raise ValueError(f"init_rgb must be an (H, W, 3) uint8 RGB array, got {init_rgb.dtype} {init_rgb.shape}")
    if face_mask.shape != init_rgb.shape[:2]:
        raise ValueError(f"face_mask shape {face_mask.shape} does not match the image {init_rgb.shape[:2]}")
    if cfg.controlnet_path and cfg.cond == "mesh" and (landmarks is None or len(landmarks) < 468):
        raise ValueError("cond='mesh' draws the target face mesh: pass the (478, 2) target landmarks in pixels, "
                         "or use cond='canny'")
