"""One face followed through a video: a MediaPipe graph of its own in tracking mode, landmarks One-Euro smoothed.

Why one per stream: MediaPipe's video mode keeps the previous frame's face as the next frame's search region. A graph
shared by several webcams mixes their faces (an identical frame came back different when another session's face was
at the same place), so every live session owns a tracker, created when it starts and closed when it stops.

Why smoothed: tracked landmarks shimmer by a pixel or so from frame to frame; the edit amplifies that into visible
jitter. The One-Euro filter (aufx/io/smoothing.py) holds a still face still and follows fast moves without lag.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aufx.face.analysis import FaceAnalysis
from aufx.face.detect import DetectorConfig, LandmarkDetector
from aufx.face.pose import fit_pose
from aufx.io.smoothing import OneEuroConfig, OneEuroFilter


@dataclass(frozen=True)
class TrackerConfig:
    """Live-video analysis: smaller, smoothed and per-stream, where a photo's is exhaustive (aufx/face/find.py)."""

    # MediaPipe crops the face to 192-256 px inside; at 480 px on the long side a 640x480 frame's landmarks move by
    # 0.4 px on average (measured on Grace Hopper), and an HD camera costs no more than a VGA one.
    analysis_max_side: int = 480
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    # Landmarks are in pixels: min_cutoff 1 Hz at rest, beta 0.05 per px/s lets a head turn through promptly.
    smoothing: OneEuroConfig = OneEuroConfig(min_cutoff=1.0, beta=0.05)


class FaceTracker:
    """The largest face of each frame, tracked from the previous one; ``close()`` frees the graph (~80 MB)."""

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self._detector = LandmarkDetector(
            DetectorConfig(max_faces=1, min_detection_confidence=config.min_detection_confidence,
                           min_tracking_confidence=config.min_tracking_confidence,
                           max_side=config.analysis_max_side), video=True)
        self._filter = OneEuroFilter(config.smoothing)
        self._last_t = -np.inf

    def track(self, rgb: np.ndarray, t: float) -> FaceAnalysis | None:
        """The face in an (H, W, 3) uint8 frame captured at ``t`` seconds (increasing), or None when none is seen.

        The same frames with the same times give the same result: nothing depends on the wall clock.
        """
        t = max(float(t), self._last_t + 1e-3)  # a repeated timestamp (a resent frame) must not stop the filter
        self._last_t = t
        faces = self._detector.detect(rgb)
        if not faces:
            self._filter.reset()  # a face found again must not be pulled towards where the last one was
            return None
        landmarks = self._filter(faces[0], t)
        h, w = rgb.shape[:2]
        return FaceAnalysis(landmarks, fit_pose(landmarks), (h, w))

    def close(self) -> None:
        """Free the tracker's own MediaPipe graph; a stopped live session must not keep it."""
        self._detector.close()
