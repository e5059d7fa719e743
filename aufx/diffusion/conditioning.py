"""ControlNet condition images: the AU-deformed face mesh drawn as lines, or the edges of the warp result.

The mesh drawing is AUFX's own convention (a ControlNet for it is trained on exactly these drawings): black
background, tessellation in grey, feature contours on top in fixed colours, left and right features in different
colours so a one-sided AU (a wink, a smirk) is visible to the network.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

TESSELATION_COLOUR = (96, 96, 96)
# (mediapipe face_mesh_connections name, RGB colour), drawn in this order over the tessellation
CONTOURS = (
    ("FACEMESH_FACE_OVAL", (255, 255, 255)),
    ("FACEMESH_LEFT_EYEBROW", (0, 255, 0)),
    ("FACEMESH_RIGHT_EYEBROW", (255, 255, 0)),
    ("FACEMESH_LEFT_EYE", (0, 128, 255)),
    ("FACEMESH_RIGHT_EYE", (255, 0, 255)),
    ("FACEMESH_LEFT_IRIS", (0, 255, 255)),
    ("FACEMESH_RIGHT_IRIS", (255, 128, 0)),
    ("FACEMESH_LIPS", (255, 0, 0)),
)


def _as_array(edges) -> np.ndarray:
    return np.array(sorted(edges), dtype=np.int32).reshape(-1, 2)


@lru_cache(maxsize=1)
def mesh_layers() -> tuple[tuple[np.ndarray, tuple[int, int, int]], ...]:
    """(edges (E, 2), colour) per layer, from MediaPipe's face-mesh connection lists (imported on first use)."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    layers = [(_as_array(fmc.FACEMESH_TESSELATION), TESSELATION_COLOUR)]
    layers += [(_as_array(getattr(fmc, name)), colour) for name, colour in CONTOURS]
    return tuple(layers)


def draw_mesh(points: np.ndarray, size: int, edges: np.ndarray | None = None) -> np.ndarray:
    """Draw landmarks given in crop pixels as a (size, size, 3) uint8 line drawing.

    ``edges`` (E, 2) draws only those lines in white instead of the MediaPipe layers; edges that use points past
    the end of ``points`` (iris points when only 468 are given) are skipped.
    """
    layers = mesh_layers() if edges is None else ((np.asarray(edges, dtype=np.int32), (255, 255, 255)),)
    canvas = np.zeros((size, size, 3), np.uint8)
    pts = np.rint(np.asarray(points, dtype=np.float64)[:, :2] * 16).astype(np.int32)  # 4 fractional bits
    thickness = max(1, round(size / 512))
    for layer_edges, colour in layers:
        layer_edges = layer_edges[(layer_edges < len(pts)).all(axis=1)]
        lines = pts[layer_edges]  # (E, 2, 2)
        cv2.polylines(canvas, list(lines), False, colour, thickness, cv2.LINE_AA, shift=4)
    return canvas


def canny_edges(rgb: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges of an RGB crop as a (H, W, 3) uint8 white-on-black image (the usual canny ControlNet input)."""
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high)
    return np.repeat(edges[..., None], 3, axis=2)
