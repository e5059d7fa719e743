"""Per-frame editing for webcam streams: landmarks from MediaPipe's tracking mode, no cache, no re-measurement.

A still photo is analysed once and edited many times; a video frame is analysed once and edited once, so the
frame path skips the content-hash cache and uses the tracker (it follows the face from the previous frame instead
of searching the whole image).
"""
from __future__ import annotations

from typing import Mapping

import cv2
import numpy as np

from aufx.au import AUVector, channels
from aufx.estimate import estimate_aus
from aufx.face.analysis import FaceAnalysis
from aufx.face.detect import shared_detector
from aufx.face.pose import fit_pose
from aufx.pipeline import Editor, build_target, shared_engine


def bounded(frame: np.ndarray, max_side: int) -> np.ndarray:
    """A webcam frame at most ``max_side`` pixels on its long side (phones send 1080p and more)."""
    h, w = frame.shape[:2]
    if max(h, w) <= max_side:
        return frame
    f = max_side / max(h, w)
    return cv2.resize(frame, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def analyze_frame(frame: np.ndarray) -> FaceAnalysis | None:
    """The largest face in a video frame, or None."""
    h, w = frame.shape[:2]
    faces = [FaceAnalysis(lm, fit_pose(lm), (h, w)) for lm in shared_detector(video=True).detect(frame)]
    return max(faces, key=lambda f: f.area) if faces else None


def offset_target(measured: AUVector, offsets: Mapping[str, float]) -> AUVector:
    """Measured AUs plus per-channel offsets, clipped to [0, 1]."""
    return AUVector.clipped({c: measured[c] + offsets.get(c, 0.0) for c in channels()})


def preset_target(measured: AUVector, preset: str, intensity: float) -> AUVector:
    """The preset's AUs set on the live face, every other AU follows it; Neutral sets every AU to 0."""
    if preset == "neutral":
        return AUVector()
    return build_target(measured, preset=preset, intensity=intensity)


def mirror(frame: np.ndarray, target_for) -> tuple[np.ndarray, AUVector | None]:
    """Edit the live face: ``target_for(measured AUs) -> target AUs``. Returns the frame unchanged without a face."""
    face = analyze_frame(frame)
    if face is None:
        return frame, None
    measured = estimate_aus(face)
    return shared_engine("warp").edit(frame, face, target_for(measured)), measured


def puppet(frame: np.ndarray, portrait: Editor, face_index: int = 0) -> tuple[np.ndarray, AUVector | None]:
    """Drive a portrait with the AUs measured on the live face. Returns the portrait unchanged without a face."""
    face = analyze_frame(frame)
    if face is None:
        return portrait.image, None
    measured = estimate_aus(face)
    return portrait.edit(measured, face_index, measure_output=False).image, measured
