"""The Live tab's transport: a binary WebSocket on the app's own server, one per live session.

Why this transport (measured on the 2-core project machine; README "Live demos"): per-frame HTTP through Gradio's
queue gave 4.35 fps (206 ms per frame for 42 ms of work), and Gradio's webcam stream event 10 fps as configured,
17.9 fps at its fastest setting: every frame pays a queue join, an event stream and a file written and fetched.
WebRTC is the standard, but Gradio's WebRTC component (fastrtc) needs gradio < 6, and aiortc adds a video codec at
both ends (per 640x480 webcam frame on one thread, VP8 2.8 ms encode + 0.75 ms decode, H.264 7.2 + 0.75 ms,
against 0.5 + 0.6 ms for JPEG; eval/bench_live.py --codecs) plus SRTP and ICE, out of a 20 ms budget. A
WebSocket needs nothing new on either side (uvicorn serves it, the browser has it), carries a JPEG each way, and
lets the page keep at most two frames in flight: the server keeps only the newest waiting frame and answers any
older one with a "dropped" notice, so nothing queues.
Measured with it: 27-29 fps drawn with one viewer, 17 fps each with two (eval/bench_live.py).

Messages (little-endian): page -> server ``<d`` capture time in ms (the page's clock) + JPEG bytes; server -> page
``<dfI`` the same capture time, the server's milliseconds for this frame, flags (FACE, NEEDS_PORTRAIT, DROPPED) +
the JPEG of the result (none when DROPPED). The server closes the socket with a reason the page shows (time limit,
idle, session unknown, bad frame, server error).
"""
from __future__ import annotations

import asyncio
import logging
import struct
import time
from urllib.parse import urlsplit

import anyio.to_thread
import cv2
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from aufx.face.tracker import TrackerConfig
from aufx.live import LiveHub, LiveSession, SessionClosed, time_limit_reason
from aufx.ui.config import LiveConfig

WS_PATH = "/aufx/live/ws"
STATUS_PATH = "/aufx/live/status"
FRAME_IN = struct.Struct("<d")
FRAME_OUT = struct.Struct("<dfI")
FACE, NEEDS_PORTRAIT, DROPPED = 1, 2, 4
CLOSE_ENDED, CLOSE_REFUSED, CLOSE_BAD_FRAME = 4000, 4003, 4400  # application close codes (4000-4999)
CLOSE_SERVER_ERROR = 1011  # RFC 6455: the server met an unexpected condition

log = logging.getLogger(__name__)
_hubs: dict[LiveConfig, LiveHub] = {}


def hub_for(cfg: LiveConfig) -> LiveHub:
    """The process's hub for this live configuration (the tab and the routes of one app share it)."""
    if cfg not in _hubs:
        _hubs[cfg] = LiveHub(cfg.max_sessions, cfg.time_limit_s, cfg.idle_timeout_s,
                             TrackerConfig(analysis_max_side=cfg.analysis_max_side), cfg.field_max_side)
    return _hubs[cfg]


def decode_frame(message: bytes, max_side: int) -> tuple[float, np.ndarray]:
    """(capture time in ms, (H, W, 3) uint8 RGB frame) from one page message; ValueError if it is not one."""
    if len(message) <= FRAME_IN.size:
        raise ValueError("a live frame is an 8-byte time followed by a JPEG")
    (t_ms,) = FRAME_IN.unpack_from(message)
    bgr = cv2.imdecode(np.frombuffer(message, np.uint8, offset=FRAME_IN.size), cv2.IMREAD_COLOR)
    if bgr is None or not np.isfinite(t_ms):
        raise ValueError("a live frame must carry a finite time and a JPEG image")
    h, w = bgr.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        bgr = cv2.resize(bgr, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    return t_ms, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def process_message(session: LiveSession, message: bytes, cfg: LiveConfig) -> bytes:
    """Decode, edit and encode one frame (runs in a worker thread); the reply carries the server's milliseconds."""
    t0 = time.perf_counter()
    t_ms, rgb = decode_frame(message, cfg.max_side)
    result = session.process(rgb, t_ms / 1000.0)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    flags = (FACE if result.measured is not None else 0) | (NEEDS_PORTRAIT if result.needs_portrait else 0)
    ms = (time.perf_counter() - t0) * 1000
    return FRAME_OUT.pack(t_ms, ms, flags) + jpeg.tobytes()


def _same_origin(ws: WebSocket) -> bool:
    """Browsers send Origin on every WebSocket: a page from another site may not drive this one's sessions."""
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host")


async def serve(ws: WebSocket, hub: LiveHub, cfg: LiveConfig) -> None:
    """One session's stream: newest frame in, edited frame out, until stop, disconnect, idle or the time limit."""
    session = hub.get(ws.query_params.get("token"))
    await ws.accept()
    if not _same_origin(ws) or session is None or session.connected:
        reason = "this live session has ended or was never started here: press Start"
        await ws.close(CLOSE_REFUSED, reason)
        return
    session.connected = True
    waiting: list[bytes] = []  # at most one frame waits; an older one is answered as dropped
    arrived = asyncio.Event()
    gone = False

    async def receive() -> None:
        nonlocal gone
        try:
            while True:
                message = await ws.receive_bytes()
                waiting.append(message)
                arrived.set()
        except (WebSocketDisconnect, RuntimeError, KeyError):  # closed, or a text message
            gone = True
            arrived.set()

    receiver = asyncio.create_task(receive())
    reason, code = "stopped", CLOSE_ENDED
    try:
        while True:
            left = session.deadline - time.monotonic()
            try:
                await asyncio.wait_for(arrived.wait(), max(0.0, min(left, hub.idle_timeout_s)))
            except asyncio.TimeoutError:
                limit = left <= hub.idle_timeout_s
                reason = time_limit_reason(hub.time_limit_s) if limit else f"no frame for {hub.idle_timeout_s:g} s"
                break
            if gone:
                break
            arrived.clear()
            *older, newest = waiting
            waiting.clear()
            for message in older:
                await ws.send_bytes(FRAME_OUT.pack(FRAME_IN.unpack_from(message)[0], 0.0, DROPPED))
            try:
                reply = await anyio.to_thread.run_sync(process_message, session, newest, cfg)
            except SessionClosed as e:
                reason = str(e)
                break
            except (ValueError, struct.error, cv2.error) as e:
                reason, code = f"bad frame: {e}", CLOSE_BAD_FRAME
                break
            except Exception as e:  # a bug must end this stream with a reason, not leave the page waiting
                log.exception("live frame failed")
                reason, code = f"server error ({type(e).__name__}); see the server log", CLOSE_SERVER_ERROR
                break
            await ws.send_bytes(reply)
    finally:
        receiver.cancel()
        hub.close(session.token, reason)
        if not gone:
            try:
                await ws.close(code, reason[:120])  # a close reason may be at most 123 bytes
            except RuntimeError:  # the socket closed in the meantime
                pass


def routes(cfg: LiveConfig) -> list[BaseRoute]:
    """The stream and a status read-out, for the app's FastAPI (``launch(app_kwargs={"routes": ...})``)."""
    hub = hub_for(cfg)

    async def stream(ws: WebSocket) -> None:
        await serve(ws, hub, cfg)

    async def status(_: Request) -> JSONResponse:
        return JSONResponse({"active": hub.active, "max_sessions": hub.max_sessions,
                             "time_limit_s": hub.time_limit_s})

    return [WebSocketRoute(WS_PATH, stream), Route(STATUS_PATH, status)]
