"""What every engine is: a name, its parameters, and one call from (image, face, target, deformation) to an image.

The pipeline (aufx/pipeline.py) analyses the image, computes the target AUs and their deformation once, and hands
all four to the engine chosen by name (aufx/engines/registry.py). The warp engine renders them directly; the
diffusion engine renders the warp first and regenerates the face from it; a third engine (learned, remote) plugs in
by implementing this Protocol and registering a factory.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from aufx.au import AUVector
    from aufx.face.analysis import FaceAnalysis
    from aufx.model.deform import Deformation


@runtime_checkable
class Engine(Protocol):
    """An expression renderer.

    ``name``: the registry name, written into every result's metadata as ``engine``.
    """

    name: str

    def params(self) -> dict:
        """JSON-able settings for the result's metadata (``engine_params``); after a render, also what that render
        resolved (device, seed...)."""
        ...

    def render(self, image: np.ndarray, face: FaceAnalysis, target: AUVector,
               deformation: Deformation, out: np.ndarray | None = None) -> np.ndarray:
        """The edited full-resolution image; ``image`` is not modified unless it is ``out``.

        image: (H, W, 3) uint8 RGB, the whole photo or frame.
        face: its analysis (``face.landmarks`` (478, 3) px, ``face.pose``, ``face.box`` (x0, y0, x1, y1) px).
        target: the AUs to show (normalised 0..1 per channel).
        deformation: ``aufx.model.deform.deform(face, target)``: ``target_landmarks`` (478, 2) px,
            ``displacement_px`` (478, 2) px.
        out: an (H, W, 3) uint8 array the engine may paste its result into instead of a copy of ``image``; pass
            ``image`` itself when the input is no longer needed (a 100-megapixel photo then needs one full-size
            array, not two). Use the returned array either way.
        Returns an (H, W, 3) uint8 RGB array of the same size.
        """
        ...
