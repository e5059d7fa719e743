"""Live sessions through the real WebSocket route (Starlette's test client, real MediaPipe, real faces): each
session's output depends on its own frames only, the session cap refuses with a message, the time limit and the
idle timeout end a session and free its slot."""
from __future__ import annotations

import time
from dataclasses import replace

import cv2
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from aufx.live import LiveSettings, SessionsFull
from aufx.ui import live_stream
from aufx.ui.config import LiveConfig
from aufx.ui.live_stream import CLOSE_ENDED, CLOSE_REFUSED, DROPPED, FACE, FRAME_IN, FRAME_OUT, WS_PATH


def webcam_frames(face: np.ndarray, n: int, shift: int = 0) -> list[bytes]:
    """``n`` 640x480 frames of a face drifting sideways, as the page sends them (time in ms + JPEG)."""
    face = cv2.resize(face, (400, 400), interpolation=cv2.INTER_AREA)
    out = []
    for i in range(n):
        frame = np.full((480, 640, 3), 50, np.uint8)
        x = 100 + shift + 3 * i
        frame[40:440, x:x + 400] = face
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        out.append(FRAME_IN.pack(1000.0 + 33.3 * i) + jpeg.tobytes())
    return out


def app_for(cfg: LiveConfig) -> tuple[TestClient, object]:
    live_stream._hubs.pop(cfg, None)  # a fresh hub: no session of another test holds a slot
    return TestClient(Starlette(routes=live_stream.routes(cfg))), live_stream.hub_for(cfg)


def exchange(ws, message: bytes) -> tuple[int, bytes]:
    """Send one frame and wait for its answer: (flags, JPEG bytes of the result)."""
    ws.send_bytes(message)
    reply = ws.receive_bytes()
    _, _, flags = FRAME_OUT.unpack_from(reply)
    return flags, reply[FRAME_OUT.size:]


def eventually(condition, within_s: float = 5.0) -> bool:
    """Whether ``condition()`` holds within a few seconds (a closed socket ends its session asynchronously)."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def frames(astronaut, grace):
    return {"astronaut": webcam_frames(astronaut, 8), "grace": webcam_frames(grace[:512], 8)}


def test_a_second_session_does_not_change_the_first(frames):
    cfg = LiveConfig(max_sessions=2)
    surprise = LiveSettings(source="surprise")
    client, hub = app_for(cfg)
    alone = []
    token = hub.open(surprise).token
    with client.websocket_connect(f"{WS_PATH}?token={token}") as ws:
        alone = [exchange(ws, m) for m in frames["astronaut"]]
    assert eventually(lambda: hub.active == 0)  # closing the socket ended the session

    a, b = hub.open(surprise).token, hub.open(LiveSettings(source="sad")).token
    with client.websocket_connect(f"{WS_PATH}?token={a}") as ws_a, \
            client.websocket_connect(f"{WS_PATH}?token={b}") as ws_b:
        together = []
        for mine, other in zip(frames["astronaut"], frames["grace"]):  # another face at the same place
            exchange(ws_b, other)
            together.append(exchange(ws_a, mine))
    assert all(flags == FACE for flags, _ in alone)
    assert [jpeg for _, jpeg in together] == [jpeg for _, jpeg in alone]  # byte-identical, frame by frame
    sent = decode(frames["astronaut"][-1][FRAME_IN.size:]).astype(int)
    edited = decode(alone[-1][1]).astype(int)
    assert (np.abs(edited - sent).max(axis=2) > 40).sum() > 200  # the surprise edit really changed the face


def test_the_session_cap_refuses_with_a_message():
    client, hub = app_for(LiveConfig(max_sessions=1))
    first = hub.open(LiveSettings())
    with pytest.raises(SessionsFull, match="all 1 live slots of this server are in use"):
        hub.open(LiveSettings())
    hub.close(first.token)
    second = hub.open(LiveSettings())  # the slot is free again
    with client.websocket_connect(f"{WS_PATH}?token={first.token}") as ws:  # an ended session cannot stream
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
    assert closed.value.code == CLOSE_REFUSED and "press Start" in closed.value.reason
    assert client.get("/aufx/live/status").json()["active"] == hub.active == 1
    hub.close(second.token)


def test_the_time_limit_ends_a_stream_and_frees_its_slot(frames):
    client, hub = app_for(replace(LiveConfig(), time_limit_s=1, max_sessions=1))
    token = hub.open(LiveSettings()).token
    t0 = time.monotonic()
    answered = 0
    with client.websocket_connect(f"{WS_PATH}?token={token}") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            for i in range(1000):
                flags, _ = exchange(ws, frames["astronaut"][i % 8])
                answered += not flags & DROPPED
    assert closed.value.code == CLOSE_ENDED and closed.value.reason.startswith("time limit reached (1 s)")
    assert answered > 0 and 0.9 < time.monotonic() - t0 < 5
    assert eventually(lambda: hub.active == 0)
    hub.open(LiveSettings())  # the slot is free for the next user


def test_an_unused_session_times_out_and_a_bad_frame_closes_the_stream():
    client, hub = app_for(LiveConfig(idle_timeout_s=0.3, max_sessions=1))
    hub.open(LiveSettings())
    assert eventually(lambda: hub.active == 0)  # the reaper freed the tracker of a page that never connected
    token = hub.open(LiveSettings()).token
    with client.websocket_connect(f"{WS_PATH}?token={token}") as ws:
        ws.send_bytes(FRAME_IN.pack(0.0) + b"not a jpeg")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
    assert closed.value.code == live_stream.CLOSE_BAD_FRAME and "JPEG" in closed.value.reason
    assert eventually(lambda: hub.active == 0)
