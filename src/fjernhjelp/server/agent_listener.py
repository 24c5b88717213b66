"""A lean listener for agents' control links: `websockets`' own server in the node's
process, next to the ASGI app.

Why: tens of thousands of agents idle on their links. Under uvicorn each idle link keeps
the ASGI scope, uvicorn's protocol and its queues, the middleware stack's frames and the
router's work on every (re)connect: ~50 KiB and ~10 ms of CPU per agent on this machine
(docs/BENCHMARKS.md), against ~18 KiB and ~1 ms for a bare `websockets` server doing the
same handshake. This listener serves the same endpoint (AgentHub.serve: the challenge
signed with the pinned key, the agent's signed proof, one link per agent) without the
ASGI stack. The load balancer routes the path /agent/control to it; the main port keeps
serving /agent/control too (a single node without a load balancer, the tests).
"""

from __future__ import annotations

import http
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import websockets
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.server import Server, ServerConnection
from websockets.http11 import Request, Response

from fjernhjelp.server.ws_guard import (
    PROTOCOL_MAX_MESSAGE,
    busy_response_headers,
    count_busy_refusal,
)

if TYPE_CHECKING:
    from fjernhjelp.server.agent_hub import AgentHub

PATH = "/agent/control"

# Connections the kernel holds until the node accepts them. 100 (asyncio's default) was
# right while the node served every connection it accepted: 4096 was tried then, and in
# a storm larger than it could answer within the agents' 20 s it spent itself on
# connections whose agents had given up. Now a node over its admission limit answers
# the rest at once with 503 and a time to come back (server/admission.py): a longer
# queue is emptied cheaply, where at 100 the connections beyond it were dropped by the
# kernel and their agents waited out their 20 s to open and a back-off (bench/fleet.py,
# 10,000 agents: 1,073 failed attempts and 27.3 s back after a restart at 100; 391 and
# 23.0 s at 1024).
BACKLOG = 1024

# websockets logs every connection at INFO: 20,000 agents coming back would write 40,000
# lines that the audit log already holds as events.
_log = logging.getLogger("fjernhjelp.agent_listener")
_log.setLevel(logging.WARNING)


class _Address(NamedTuple):
    host: str
    port: int


class _Url(NamedTuple):
    path: str


class LeanSocket:
    """A `websockets` connection with the few methods of Starlette's WebSocket that
    AgentHub uses, so the hub has one endpoint for both listeners."""

    __slots__ = ("_conn", "client", "headers")

    # No ASGI extensions: a refusal closes the socket (ws_guard.refuse_upgrade).
    scope: ClassVar[dict[str, Any]] = {}
    url = _Url(PATH)

    def __init__(self, conn: ServerConnection) -> None:
        self._conn = conn
        host, port = conn.remote_address[:2]
        self.client = _Address(host, port)
        assert conn.request is not None  # the handler runs after the handshake
        self.headers = conn.request.headers

    async def accept(self) -> None:
        """Accepted by the handshake already."""

    async def send_text(self, text: str) -> None:
        try:
            await self._conn.send(text)
        except websockets.ConnectionClosed as exc:
            raise WebSocketDisconnect(exc.rcvd.code if exc.rcvd else 1006) from exc

    async def receive(self) -> dict[str, Any]:
        try:
            data = await self._conn.recv()
        except websockets.ConnectionClosed as exc:
            return {"type": "websocket.disconnect", "code": exc.rcvd.code if exc.rcvd else 1006}
        if isinstance(data, bytes):
            return {"type": "websocket.receive", "bytes": data}
        return {"type": "websocket.receive", "text": data}

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._conn.close(code, reason or "")


def _admit(hub: AgentHub) -> Callable[[ServerConnection, Request], Response | None]:
    def process_request(conn: ServerConnection, request: Request) -> Response | None:
        if request.path != PATH:
            return conn.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        # Before the upgrade, the challenge's signature or any database work: a node
        # with more logins in progress than it answers in time says when to come back
        # (server/admission.py); its agents honour it (agent/backoff.py).
        retry_after = hub.admission.refusal()
        if retry_after is not None:
            count_busy_refusal()
            response = conn.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
            response.headers.update(busy_response_headers(retry_after))
            return response
        return None

    return process_request


async def start(hub: AgentHub, host: str, port: int) -> Server:
    async def handler(conn: ServerConnection) -> None:
        # LeanSocket has what the hub uses of Starlette's WebSocket (duck-typed).
        await hub.serve(LeanSocket(conn))  # type: ignore[arg-type]

    return await websockets.serve(
        handler,
        host,
        port,
        process_request=_admit(hub),
        # Agents never offer it; a server that accepted it would keep a compressor per link.
        compression=None,
        max_size=PROTOCOL_MAX_MESSAGE,
        logger=_log,
        server_header=None,
        backlog=BACKLOG,
    )
