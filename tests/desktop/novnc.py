"""noVNC (from the npm package) in a page, fed by the desktop service over a WebSocket.

The bridge is what the tunnel will be later: each WebSocket is a Channel (one RFB byte
stream as a sequence of messages) handed to ``serve_desktop``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import websockets
from PIL import Image

from fjernhjelp.streams.desktop.transport import ChannelStream
from fjernhjelp.streams.desktop.viewer import DesktopViewer, InputEvent
from fjernhjelp.tunnel.channel import ChannelClosed

ROOT = Path(__file__).resolve().parents[2]
NOVNC = ROOT / "node_modules" / "@novnc" / "novnc"
PAGE = Path(__file__).parent / "novnc_page"


class WebSocketChannel:
    """A websockets connection as a tunnel Channel (whole messages, in order)."""

    def __init__(self, ws: websockets.ServerConnection) -> None:
        self._ws = ws
        self.sizes: list[int] = []

    async def send(self, message: bytes) -> None:
        self.sizes.append(len(message))
        try:
            await self._ws.send(message)
        except websockets.ConnectionClosed as exc:
            raise ChannelClosed("websocket closed") from exc

    async def recv(self) -> bytes:
        try:
            data = await self._ws.recv()
        except websockets.ConnectionClosed as exc:
            raise ChannelClosed("websocket closed") from exc
        return data if isinstance(data, bytes) else data.encode()

    async def close(self, reason: str = "closed") -> None:
        await self._ws.close()


class _Handler(SimpleHTTPRequestHandler):
    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith("/novnc/"):
            return str(NOVNC / path.removeprefix("/novnc/"))
        return str(PAGE / path.lstrip("/"))

    def guess_type(self, path: str) -> str:  # type: ignore[override]
        return "text/javascript" if str(path).endswith(".js") else super().guess_type(path)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Bridge:
    """A static server for the page and a WebSocket server running desktop sessions."""

    def __init__(self, display: str, view_only: bool, clipboard: bool | None = None) -> None:
        self.display = display
        self.view_only = view_only
        self.clipboard = not view_only if clipboard is None else clipboard
        self.inputs: list[InputEvent] = []
        self.channels: list[WebSocketChannel] = []
        self.sessions: list[DesktopViewer] = []
        self.sessions_ended = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self.ws_port = 0

    def start(self) -> None:
        if not (NOVNC / "core" / "rfb.js").exists():
            raise RuntimeError("noVNC is not installed: run `npm install` (make test does)")
        self._thread.start()
        self._http_thread.start()
        future: Future[int] = asyncio.run_coroutine_threadsafe(self._start_ws(), self._loop)
        self.ws_port = future.result(10)

    async def _start_ws(self) -> int:
        self._ws_server = await websockets.serve(self._session, "127.0.0.1", 0, compression=None)
        return self._ws_server.sockets[0].getsockname()[1]

    async def _session(self, ws: websockets.ServerConnection) -> None:
        channel = WebSocketChannel(ws)
        self.channels.append(channel)
        # What serve_desktop does, keeping the session to read its counters.
        session = DesktopViewer(
            ChannelStream(channel),
            display=self.display,
            view_only=self.view_only,
            share_clipboard=self.clipboard,
            on_input=self.inputs.append,
        )
        self.sessions.append(session)
        await session.run()
        self.sessions_ended += 1

    def url(self, encodings: list[int] | None = None) -> str:
        port = self._http.server_address[1]
        query = f"ws=ws://127.0.0.1:{self.ws_port}"
        if encodings is not None:
            query += "&encodings=" + ",".join(str(e) for e in encodings)
        return f"http://127.0.0.1:{port}/viewer.html?{query}"

    def stop(self) -> None:
        async def close() -> None:
            self._ws_server.close()
            await self._ws_server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._http.shutdown()
        self._http.server_close()


@contextmanager
def bridge(
    display: str, view_only: bool = False, clipboard: bool | None = None
) -> Iterator[Bridge]:
    b = Bridge(display, view_only, clipboard)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def canvas_pixels(page: object) -> np.ndarray:
    """noVNC's canvas as (h, w, 3) R,G,B."""
    url = page.evaluate("window.screenPng()")  # type: ignore[attr-defined]
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
