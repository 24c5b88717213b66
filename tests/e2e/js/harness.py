"""A local server for the browser tests: the real static files and browser libraries
under the real security headers (strict CSP), the test pages, and a WebSocket relay
built on the project's ``Relay``, through which the page's JavaScript technician meets a
Python agent (``fjernhjelp.tunnel.accept``).

It runs on its own event loop in a thread, because the Playwright sync API holds the
main thread; tests hand coroutines to that loop with ``run`` and ``spawn``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from fjernhjelp.server import browser_libs
from fjernhjelp.server.app import STATIC
from fjernhjelp.server.relay import EndClosed, Relay, Role
from fjernhjelp.server.security import SecurityHeaders
from tests.e2e.conftest import free_port

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]
PAGES = Path(__file__).parent / "pages"
VECTORS = ROOT / "tests" / "data" / "vectors" / "tunnel-v1.json"

# (index, message) -> messages to pass on; index 0 is the handshake reply, n is record n-1.
Tamper = Callable[[int, bytes], list[bytes]]


class _End:
    """A Starlette WebSocket as a relay end; ``tamper`` rewrites what it is sent."""

    def __init__(self, ws: WebSocket, tamper: Tamper | None = None) -> None:
        self.ws = ws
        self.tamper = tamper
        self.sent = 0
        self.received: list[bytes] = []

    async def recv(self) -> bytes:
        try:
            message = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise EndClosed() from exc
        data = message.get("bytes")
        if message["type"] == "websocket.disconnect" or data is None:
            raise EndClosed()
        self.received.append(data)
        return data

    async def send(self, data: bytes) -> None:
        out = [data] if self.tamper is None else self.tamper(self.sent, data)
        self.sent += 1
        try:
            for message in out:
                await self.ws.send_bytes(message)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise EndClosed() from exc

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)


class Harness:
    def __init__(self) -> None:
        self.relay = Relay(pair_timeout=30)
        self.tokens: dict[str, tuple[str, Role]] = {}  # relay token -> (session, role)
        self.tampers: dict[str, Tamper] = {}  # session -> rewrites towards the technician
        self.agent_tampers: dict[str, Tamper] = {}  # session -> rewrites towards the agent
        self.ends: dict[tuple[str, Role], _End] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/relay"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: uvicorn.Server | None = None
        self.routes: list[Any] = []  # extra routes a test module adds before start()

    def app(self) -> Starlette:
        routes = [
            WebSocketRoute("/relay", self._relay),
            Route("/vectors/tunnel-v1.json", lambda _: FileResponse(VECTORS)),
            *self.routes,
            Mount("/static", browser_libs.ModuleFiles(directory=STATIC)),
            Mount("/test", browser_libs.ModuleFiles(directory=PAGES)),
        ]
        app = Starlette(routes=routes)
        browser_libs.mount(app)  # type: ignore[arg-type]
        app.add_middleware(SecurityHeaders, hsts=False)
        return app

    def start(self) -> None:
        self._thread.start()
        config = uvicorn.Config(
            self.app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws_per_message_deflate=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self.spawn(self._server.serve())
        self.run(self._ready())

    async def _ready(self) -> None:
        assert self._server is not None
        async with asyncio.timeout(20):
            while not self._server.started:  # noqa: ASYNC110 - uvicorn offers only a flag
                await asyncio.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        with contextlib.suppress(Exception):
            self.run(asyncio.sleep(0.3))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def spawn(self, coroutine: Awaitable[T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(_as_coroutine(coroutine), self.loop)

    def allow(self, token: str, session_id: str, role: Role) -> None:
        self.tokens[token] = (session_id, role)

    async def _relay(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            first = json.loads(await ws.receive_text())
            session_id, role = self.tokens.pop(first["token"])
            if first["role"] != role.value:
                raise KeyError(first["role"])
        except (KeyError, TypeError, ValueError, WebSocketDisconnect):
            await ws.close(4001, "bad join")
            return
        tamper = (self.tampers if role is Role.TECHNICIAN else self.agent_tampers).get(session_id)
        end = _End(ws, tamper)
        self.ends[(session_id, role)] = end
        await self.relay.join(session_id, role, end)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
