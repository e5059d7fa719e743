"""Landmark detection with MediaPipe's face mesh (478 points incl. irises), the model shipped inside its wheel.

MediaPipe is imported lazily: the app and the CLI start without it, and it loads on the first analysis.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from aufx.face.topology import N_LANDMARKS


@dataclass(frozen=True)
class DetectorConfig:
    max_faces: int = 8  # a group photo's faces beyond this are found by aufx/face/find.py's tiled search
    min_detection_confidence: float = 0.5  # MediaPipe's defaults
    min_tracking_confidence: float = 0.5
    # MediaPipe crops each face to 192-256 px internally; detecting on a bounded copy costs nothing in accuracy
    max_side: int = 1600


class LandmarkDetector:
    """Thread-safe wrapper: one MediaPipe graph per (static/video) mode, calls serialised by a lock."""

    def __init__(self, config: DetectorConfig = DetectorConfig(), video: bool = False):
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging: warnings are noise for users
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import mediapipe as mp  # heavy: load only when a face is first analysed

        self.config = config
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video, max_num_faces=config.max_faces, refine_landmarks=True,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence)
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Landmarks of every face in an (H, W, 3) uint8 RGB image: (478, 3) float64 full-resolution px, x right,
        y down, z scaled like x (MediaPipe's depth, relative to the face's centre)."""
        import cv2

        h, w = rgb.shape[:2]
        small = rgb
        if max(h, w) > self.config.max_side:
            f = self.config.max_side / max(h, w)
            small = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        with self._lock:
            result = self._mesh.process(np.ascontiguousarray(small))
        faces = []
        for lm in result.multi_face_landmarks or []:
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lm.landmark], dtype=np.float64)
            if pts.shape[0] == N_LANDMARKS:
                faces.append(pts)
        return faces

    def close(self) -> None:
        """Free the MediaPipe graph (tens of MB); the detector is unusable afterwards."""
        self._mesh.close()


_detectors: dict[bool, LandmarkDetector] = {}
_detectors_lock = threading.Lock()


def shared_detector(video: bool = False) -> LandmarkDetector:
    """Process-wide detector (loading the graph takes ~1 s; every caller shares it)."""
    with _detectors_lock:
        if video not in _detectors:
            _detectors[video] = LandmarkDetector(video=video)
        return _detectors[video]
