"""Sequences: a portrait animated by an AU track, and a video edited frame by frame. The CLI and the app call these.

``animate_portrait``: the portrait is analysed once (an :class:`~aufx.pipeline.Editor`) and every frame is one edit
to that frame's AU vector. Track values are *absolute* targets: an AU the track leaves at 0 is set to 0, so the
portrait's own expression is replaced, not offset.

``edit_video``: every frame is analysed by MediaPipe's tracker, and its landmarks are One-Euro filtered before the
head pose is fitted, so that detector noise does not make the edit shimmer while real head motion passes through.
Frames without a face are written unchanged; the source's audio is kept.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aufx.engines import registry
from aufx.model.deform import deform
from aufx.model.estimate import estimate_aus
from aufx.face.analysis import FaceAnalysis
from aufx.face.detect import LandmarkDetector
from aufx.face.pose import fit_pose
from aufx.io.arkit import read_arkit_jsonl
from aufx.io.keyframes import read_keyframes
from aufx.io.openface import read_openface_csv
from aufx.io.smoothing import OneEuroConfig, OneEuroFilter
from aufx.io.tracks import AUTrack
from aufx.io.video import ProgressCallback, VideoWriter, copy_audio, read_video
from aufx.pipeline import Editor
from aufx.request import EditRequest

TRACK_KINDS = {".jsonl": "ARKit JSONL", ".csv": "OpenFace CSV", ".json": "AU keyframes"}
VIDEO_KINDS = (".mp4", ".gif")


class SequenceError(ValueError):
    """A track or output the sequence tools cannot use; the message names the file."""


def check_output(path: str | Path) -> Path:
    """Fail before any work when the output is not a video format we write."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_KINDS:
        raise SequenceError(f"{path}: write .mp4 or .gif, not {path.suffix or '(no extension)'}")
    return path


@dataclass(frozen=True)
class AnimateConfig:
    fps: float | None = None  # output rate; None: the track's own (keyframes: their fps; recordings: median interval)
    # One-Euro on the AU track before resampling (units: AU intensity 0..1). Recordings jitter; authored keyframes
    # do not, so pass None for them.
    smoothing: OneEuroConfig | None = OneEuroConfig(min_cutoff=1.0, beta=1.0)
    face_index: int = 0  # which face of the portrait (0 = largest)

    def __post_init__(self):
        if self.fps is not None and not self.fps > 0:
            raise SequenceError(f"fps must be positive, got {self.fps}")


@dataclass(frozen=True)
class VideoEditConfig:
    # One-Euro on the landmarks in units of the face's interpupillary distance (IPD), so the settings mean the same
    # at any resolution. At rest (1 Hz cutoff) MediaPipe's ~0.5 px frame-to-frame tracker noise shrinks about
    # fourfold at 30 fps; beta 20 raises the cutoff by 20 Hz per IPD/s of motion, so a head panning at 1 IPD/s lags
    # about 1 % of an IPD. None: no smoothing.
    landmark_smoothing: OneEuroConfig | None = OneEuroConfig(min_cutoff=1.0, beta=20.0)


@dataclass(frozen=True)
class SequenceSummary:
    output: str
    frames: int
    fps: float
    duration: float          # seconds: frames / fps
    edited: int              # frames with an edited face
    passed_through: int = 0  # frames without a face, written unchanged
    audio_kept: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def load_track(path: str | Path) -> AUTrack:
    """An AU track from an ARKit JSONL recording, an OpenFace FeatureExtraction CSV or an AU keyframe JSON."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in TRACK_KINDS:
        known = ", ".join(f"{k} ({v})" for k, v in TRACK_KINDS.items())
        raise SequenceError(f"{path}: unknown track type {path.suffix or '(no extension)'}; use {known}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if kind == ".jsonl":
        return read_arkit_jsonl(path).to_au_track()
    if kind == ".csv":
        return read_openface_csv(path).to_au_track()
    return read_keyframes(path)


def _sample_interval(track: AUTrack) -> float | None:
    if track.fps:
        return 1.0 / track.fps
    return float(np.median(np.diff(track.times))) if len(track) > 1 else None


def frames_at(track: AUTrack, fps: float | None = None) -> AUTrack:
    """One AU vector per output frame, linearly interpolated, the track's last value held to the end.

    Each sample of a track lasts one sample interval, so N samples at 30 fps (N / 30 s) give N / 30 s of video at any
    output rate: N frames at 30 fps, 2N at 60.
    """
    step = _sample_interval(track)
    fps = fps or (round(1.0 / step, 2) if step else 30.0)  # 29.97 and 60 survive; timestamp jitter does not
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    n = max(1, int(round((track.duration + (step or 1.0 / fps)) * fps)))
    times = track.times[0] + np.arange(n) / fps
    values = np.stack([np.interp(times, track.times, col) for col in track.values.T], axis=1)
    return AUTrack(times, values, fps)


def animate_portrait(portrait: Editor, track: AUTrack, output: str | Path, config: AnimateConfig = AnimateConfig(),
                     progress: ProgressCallback | None = None) -> SequenceSummary:
    """Render ``portrait`` driven by ``track`` into an .mp4 or .gif; ``progress(done, total)`` after every frame."""
    check_output(output)
    portrait.face(config.face_index)  # fail before writing anything if the face does not exist
    if config.smoothing is not None:
        track = track.smoothed(config.smoothing)
    frames = frames_at(track, config.fps)
    with VideoWriter(output, frames.fps, progress=progress, total=len(frames)) as writer:
        for vector in frames.vectors():  # absolute targets: from all AUs at 0, the frame's vector
            request = EditRequest(face_index=config.face_index, neutral=True, aus=vector, measure=False)
            writer.write(portrait.run(request).image)
    return SequenceSummary(str(output), writer.n_frames, frames.fps, writer.n_frames / frames.fps, writer.n_frames)


class LandmarkSmoother:
    """One-Euro filter on (478, 3) landmarks in units of the face's IPD, restarted whenever the face is lost."""

    def __init__(self, config: OneEuroConfig):
        self._filter = OneEuroFilter(config)
        self._scale: float | None = None

    def reset(self) -> None:
        self._filter.reset()
        self._scale = None

    def __call__(self, landmarks: np.ndarray, t: float) -> np.ndarray:
        if self._scale is None:  # the IPD at the start of a tracked stretch: one unit for the whole stretch
            self._scale = fit_pose(landmarks).scale
        return self._filter(landmarks / self._scale, t) * self._scale


def _follow(faces: list[np.ndarray], previous: np.ndarray | None) -> np.ndarray:
    """The face to edit: the one nearest the face of the previous frame, else the largest."""
    if previous is None:
        return max(faces, key=lambda lm: np.prod(np.ptp(lm[:, :2], axis=0)))
    centre = previous[:, :2].mean(0)
    return min(faces, key=lambda lm: float(np.linalg.norm(lm[:, :2].mean(0) - centre)))


def edit_video(source: str | Path, output: str | Path, request: EditRequest,
               config: VideoEditConfig = VideoEditConfig(),
               progress: ProgressCallback | None = None) -> SequenceSummary:
    """Edit one face through a video: each frame's target is ``request.target(that frame's measured AUs)`` (as in the
    webcam mirror), rendered by the request's engine.

    Output: same frame count, rate and size as the source (.mp4 with the source's audio, or .gif).
    """
    source, output = Path(source), check_output(output)
    if output.exists() and output.resolve() == source.resolve():
        raise SequenceError(f"{output} is the input video; AUFX never overwrites its input")
    frames, meta = read_video(source)
    detector = LandmarkDetector(video=True)  # a tracker of its own: no state shared with other videos or the webcam
    smoother = LandmarkSmoother(config.landmark_smoothing) if config.landmark_smoothing else None
    engine = registry.engine(request.engine, request.seed, **request.engine_options)
    previous, edited, passed = None, 0, 0
    try:
        with VideoWriter(output, meta.fps, progress=progress, total=meta.n_frames) as writer:
            for i, frame in enumerate(frames):
                faces = detector.detect(frame)
                if not faces:
                    previous = None
                    if smoother:
                        smoother.reset()
                    writer.write(frame)
                    passed += 1
                    continue
                previous = _follow(faces, previous)
                landmarks = smoother(previous, i / meta.fps) if smoother else previous
                face = FaceAnalysis(landmarks, fit_pose(landmarks), frame.shape[:2])
                target = request.target(estimate_aus(face))
                writer.write(engine.render(frame, face, target, deform(face, target)))
                edited += 1
    finally:
        detector.close()
    audio = output.suffix.lower() == ".mp4" and meta.has_audio and copy_audio(source, output, output)
    return SequenceSummary(str(output), writer.n_frames, meta.fps, writer.n_frames / meta.fps, edited, passed, audio)
