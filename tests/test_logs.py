"""The process log never holds a usable one-time enrolment link, nor a line for every
WebSocket uvicorn serves."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from fjernhjelp.logs import RedactEnrolmentLinks, uvicorn_log_config

TOKEN = "KFh5B-1DprSE7ELZe1fY_OKI-57sVpkou5qBkTQoOqU"


def test_enrolment_tokens_are_redacted_from_access_log_lines() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/enroll/{TOKEN}", "1.1", 200),
        None,
    )
    assert RedactEnrolmentLinks().filter(record)
    line = record.getMessage()
    assert TOKEN not in line and "/enroll/[redacted]" in line


def test_other_lines_are_untouched() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "GET %s", ("/portal/grants?x=1",), None
    )
    RedactEnrolmentLinks().filter(record)
    assert record.getMessage() == "GET /portal/grants?x=1"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _echo_once(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """A WebSocket endpoint that accepts and closes; /broken fails after accepting."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    if scope["path"] == "/broken":
        raise RuntimeError("a fault of the code")
    await send({"type": "websocket.close", "code": 1000})


def test_uvicorn_writes_no_line_per_websocket_but_still_its_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _port()
    server = uvicorn.Server(
        uvicorn.Config(_echo_once, host="127.0.0.1", port=port, log_config=uvicorn_log_config())
    )
    thread = threading.Thread(target=server.run, daemon=True)
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        for path in ("/a", "/b", "/broken"):
            with connect(f"ws://127.0.0.1:{port}{path}") as ws, pytest.raises(ConnectionClosed):
                ws.recv(timeout=30)
    finally:
        server.should_exit = True
        thread.join(30)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("uvicorn")]
    chatter = [m for _, m in lines if "connection open" in m or "connection closed" in m]
    assert chatter == [] and not any("[accepted]" in m for _, m in lines)
    assert (logging.ERROR, "Exception in ASGI application\n") in lines
    assert any("Uvicorn running on" in m for _, m in lines)  # the rest is as it was
