"""Live sessions: webcam frames edited one by one, each session with its own face tracker, under a cap and a limit.

A still photo is analysed once and edited many times; a video frame is analysed once and edited once, so the frame
path skips the content-hash cache, follows the face with the session's tracker (aufx/face/tracker.py) and builds
a warp field no finer than 160 px (the field is smooth; for a face filling a 640x480 frame it builds in about
4 ms instead of 6 ms at the Edit tab's 256 px; a smaller face is below both and unchanged). What a still photo
measures once and every frame would measure again is left out where a frame does not show it: the easing of the
face's own folds where an edit takes their AU away (aufx/engines/relax.py) builds its bands from each frame, 9 ms
of a Mirror frame's 46 on this project's 2-core machine, for shading a moving webcam face hardly shows.

``LiveHub`` owns every session of one server: at most ``max_sessions`` at once (each holds a MediaPipe graph and
about one core at camera rate), each closed at its time limit or when no frame came for ``idle_timeout_s``.
The transport (aufx/ui/live_stream.py) and the /live_frame API both go through it.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping

import cv2
import numpy as np

from aufx.au import AUVector, channels
from aufx.engines import registry
from aufx.engines.base import Engine
from aufx.engines.field import FieldConfig
from aufx.engines.relax import RelaxConfig
from aufx.engines.warp import WarpConfig
from aufx.face.tracker import FaceTracker, TrackerConfig
from aufx.model.deform import deform
from aufx.model.estimate import estimate_aus
from aufx.pipeline import Editor
from aufx.request import EditRequest

EDIT_OFFSETS = "edit"  # the mirror source that adds the Edit tab's slider offsets instead of a preset


def bounded(frame: np.ndarray, max_side: int) -> np.ndarray:
    """A frame or portrait at most ``max_side`` pixels on its long side (phones send 1080p and more)."""
    h, w = frame.shape[:2]
    if max(h, w) <= max_side:
        return frame
    f = max_side / max(h, w)
    return cv2.resize(frame, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def offset_target(measured: AUVector, offsets: Mapping[str, float]) -> AUVector:
    """Measured AUs plus per-channel offsets, clipped to [0, 1]."""
    return AUVector.clipped({c: measured[c] + offsets.get(c, 0.0) for c in channels()})


def preset_target(measured: AUVector, preset: str, intensity: float) -> AUVector:
    """The preset's AUs set on the live face, every other AU follows it; Neutral sets every AU to 0."""
    if preset == "neutral":
        return AUVector()
    return EditRequest(preset=preset, intensity=intensity).target(measured)


@dataclass(frozen=True)
class LiveSettings:
    """What a session does with each frame; replaced whole when a control changes (frames read it lock-free)."""

    mode: str = "Mirror"  # "Mirror": edit the live face; "Puppet": the live face's AUs drive the portrait
    source: str = "happy"  # mirror: a preset key, or EDIT_OFFSETS
    intensity: float = 1.0  # mirror: the preset's intensity
    offsets: Mapping[str, float] = field(default_factory=dict)  # mirror with EDIT_OFFSETS: per-AU additions
    portrait: Editor | None = None  # puppet: analysed once, bounded to the live size

    def target(self, measured: AUVector) -> AUVector:
        """The AUs to show, given those measured on the live face."""
        if self.mode == "Puppet":
            return measured
        if self.source == EDIT_OFFSETS:
            return offset_target(measured, self.offsets)
        return preset_target(measured, self.source, self.intensity)


@dataclass(frozen=True)
class FrameResult:
    image: np.ndarray  # (H, W, 3) uint8: the edited frame (mirror) or the driven portrait (puppet)
    measured: AUVector | None  # the live face's AUs; None when no face was seen
    needs_portrait: bool = False  # puppet mode without a portrait: the frame comes back unchanged


def time_limit_reason(seconds: float) -> str:
    """Why a stream stopped at its time limit: one wording, whichever side (the reaper or the stream) sees it first."""
    return f"time limit reached ({seconds:g} s): press Start to go on"


class SessionClosed(RuntimeError):
    """The session was closed (stopped, timed out or at its time limit); the message says which."""


class LiveSession:
    """One live stream: its tracker, its settings and its clock. Frames are processed one at a time."""

    def __init__(self, token: str, settings: LiveSettings, tracker: FaceTracker, engine: Engine,
                 deadline: float):
        self.token = token
        self.settings = settings
        self.deadline = deadline  # time.monotonic() at which the time limit ends the session
        self.last_seen = time.monotonic()
        self.connected = False  # a transport is attached (a closed connection closes the session)
        self.closed_because: str | None = None
        self._tracker = tracker
        self._engine = engine
        self._lock = threading.Lock()

    def process(self, frame: np.ndarray, t: float) -> FrameResult:
        """Edit one (H, W, 3) uint8 RGB frame captured at ``t`` seconds (the sender's clock, increasing)."""
        with self._lock:
            if self.closed_because:
                raise SessionClosed(self.closed_because)
            self.last_seen = time.monotonic()
            face = self._tracker.track(frame, t)
        s = self.settings
        if s.mode == "Puppet" and s.portrait is None:
            return FrameResult(frame, estimate_aus(face) if face else None, needs_portrait=True)
        if face is None:
            return FrameResult(s.portrait.image if s.mode == "Puppet" else frame, None)
        measured = estimate_aus(face)
        if s.mode == "Puppet":  # the portrait's face region moves; its analysis and warp field are kept
            return FrameResult(self._render(s.portrait.image, s.portrait.face(0), s.target(measured)), measured)
        return FrameResult(self._render(frame, face, s.target(measured)), measured)

    def _render(self, image: np.ndarray, face, target: AUVector) -> np.ndarray:
        return self._engine.render(image, face, target, deform(face, target))

    def close(self, reason: str) -> None:
        """Free the tracker; a frame being tracked finishes first."""
        with self._lock:
            if not self.closed_because:
                self.closed_because = reason
                self._tracker.close()


class SessionsFull(RuntimeError):
    """Every live slot is taken; the message says how many and what to do."""


class LiveHub:
    """Every live session of one server, keyed by an unguessable token; a reaper thread enforces the limits."""

    def __init__(self, max_sessions: int = 2, time_limit_s: float = 120.0, idle_timeout_s: float = 10.0,
                 tracker: TrackerConfig = TrackerConfig(), field_max_side: int = 160):
        self.max_sessions = max_sessions
        self.time_limit_s = time_limit_s
        self.idle_timeout_s = idle_timeout_s
        self.tracker_config = tracker
        self.engine = registry.engine("warp", config=WarpConfig(field=FieldConfig(field_max_side=field_max_side),
                                                                relax=RelaxConfig(enabled=False)))
        self._sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None

    def open(self, settings: LiveSettings) -> LiveSession:
        """A new session with its own tracker, or SessionsFull with a message for the user."""
        self.reap()
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise SessionsFull(f"all {self.max_sessions} live slots of this server are in use (each runs at "
                                   f"camera rate on about one core): try again when one stops; a stream ends after "
                                   f"at most {self.time_limit_s:g} s")
            token = secrets.token_urlsafe(16)
            self._sessions[token] = None  # the slot is ours while the tracker loads
        try:
            session = LiveSession(token, settings, FaceTracker(self.tracker_config), self.engine,
                                  time.monotonic() + self.time_limit_s)
        except BaseException:
            with self._lock:
                self._sessions.pop(token, None)
            raise
        with self._lock:
            self._sessions[token] = session
        self._start_reaper()
        return session

    def get(self, token: str | None) -> LiveSession | None:
        with self._lock:
            return self._sessions.get(token) if token else None

    def close(self, token: str | None, reason: str = "stopped") -> None:
        with self._lock:
            session = self._sessions.pop(token, None) if token else None
        if session is not None:
            session.close(reason)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._sessions)

    def reap(self) -> None:
        """Close the sessions past their time limit, and the unconnected ones idle for ``idle_timeout_s``."""
        now = time.monotonic()
        with self._lock:
            sessions = [s for s in self._sessions.values() if s is not None]
        for s in sessions:
            if now >= s.deadline:
                self.close(s.token, time_limit_reason(self.time_limit_s))
            elif not s.connected and now - s.last_seen > self.idle_timeout_s:
                self.close(s.token, f"no frame for {self.idle_timeout_s:g} s")

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is not None:
                return
            self._reaper = threading.Thread(target=self._reap_forever, name="aufx-live-reaper", daemon=True)
        self._reaper.start()

    def _reap_forever(self) -> None:
        while True:
            time.sleep(min(1.0, self.idle_timeout_s / 4))
            self.reap()
