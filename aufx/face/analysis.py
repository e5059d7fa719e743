"""Face analysis of one image, computed once and cached: landmarks, pose, canonical shape, box.

Everything a slider move needs is here, so an edit re-runs only the engine and the composite.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from aufx.face.align import attach_appearance
from aufx.face.find import faces_near, find_faces, smallest_face_px
from aufx.face.pose import Pose, fit_pose


class FaceNotFoundError(ValueError):
    """No face in the image (or not the requested one); the message names the image."""


@dataclass(eq=False)
class FaceAnalysis:
    """One face of one image: what every edit of it starts from (compared by identity, never by value)."""

    landmarks: np.ndarray  # (478, 3) float64 px, x right, y down, z scaled like x (MediaPipe's 468 mesh + 10 iris)
    pose: Pose
    image_size: tuple[int, int]  # (height, width) px of the analysed image
    canonical: np.ndarray = field(init=False)  # (478, 3) IPD units: the observed face with the head pose removed
    cache: dict = field(default_factory=dict, repr=False)  # per-engine precomputation, keyed by engine

    def __post_init__(self):
        self.canonical = self.pose.to_canonical(self.landmarks)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) int px of the landmarks, clipped to the image."""
        h, w = self.image_size
        x0, y0 = np.floor(self.landmarks[:, :2].min(0)).astype(int)
        x1, y1 = np.ceil(self.landmarks[:, :2].max(0)).astype(int)
        return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))

    @property
    def area(self) -> int:
        """Box area in px^2: faces are ranked by it (the largest is the default face)."""
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    def describe(self) -> dict:
        """JSON-ready summary for metadata: box (px), inter-pupil distance ``ipd_px``, pose in degrees (a fresh dict
        per call; the pose's angles are computed once)."""
        if "pose_deg" not in self.cache:
            self.cache["pose_deg"] = self.pose.euler_degrees()
        return {"box": list(self.box), "ipd_px": round(self.pose.scale, 2), "pose_deg": dict(self.cache["pose_deg"])}


def analyze_faces(rgb: np.ndarray, near: tuple[int, int, int, int] | None = None) -> list[FaceAnalysis]:
    """All faces in an (H, W, 3) image, largest first; with ``near`` (a box x0, y0, x1, y1), only the face there
    (re-measuring an edited face looks at its own region, not the whole photo)."""
    h, w = rgb.shape[:2]
    landmarks = find_faces(rgb) if near is None else faces_near(rgb, near)
    faces = [attach_appearance(FaceAnalysis(lm, fit_pose(lm), (h, w)), rgb) for lm in landmarks]
    return sorted(faces, key=lambda f: -f.area)


def no_face_message(name: str, image_size: tuple[int, int]) -> str:
    """Why no face was found, with the real size limit for an image of (height, width)."""
    h, w = image_size
    return (f"{name}: no face found; in a {w}x{h} image a face must be at least {smallest_face_px(h, w)} px across, "
            "roughly frontal and not heavily occluded")


class AnalysisCache:
    """LRU of analyses keyed by the image's content hash: the same photo is never detected twice."""

    def __init__(self, size: int = 16):
        self._items: OrderedDict[str, list[FaceAnalysis]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self.misses = 0

    @staticmethod
    def key(rgb: np.ndarray) -> str:
        """Hex digest of an (H, W, 3) image's bytes and shape: equal pixels, one analysis."""
        h = hashlib.blake2b(digest_size=16)
        h.update(str(rgb.shape).encode())
        h.update(np.ascontiguousarray(rgb).data)
        return h.hexdigest()

    def get(self, rgb: np.ndarray) -> list[FaceAnalysis]:
        """The analyses of an (H, W, 3) uint8 image, largest face first; detected on a miss only."""
        k = self.key(rgb)
        with self._lock:
            if k in self._items:
                self._items.move_to_end(k)
                return self._items[k]
        faces = analyze_faces(rgb)
        with self._lock:
            self.misses += 1
            self._items[k] = faces
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return faces


analysis_cache = AnalysisCache()
