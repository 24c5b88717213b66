"""A lean listener for agents' control links (``FJERNHJELP_AGENT_BIND``): a port of its
own in the node's process, next to the ASGI app, each connection served by
server/control_socket.py.

Why: tens of thousands of agents idle on their links. Under uvicorn each idle link keeps
the ASGI scope, uvicorn's protocol and its queues, the middleware stack's frames and the
router's work on every (re)connect: ~50 KiB and ~10 ms of CPU per agent on this machine
(docs/BENCHMARKS.md). This listener serves the same endpoint (AgentHub.serve_admitted:
the challenge signed with the pinned key, the agent's signed proof, one link per agent)
without the ASGI stack. The load balancer routes the path /agent/control to it; the main
port keeps serving /agent/control too (a single node without a load balancer, the tests).

It holds what its connections share (control_socket.Links) and one keepalive sweep over
them every ``SWEEP_EVERY`` seconds, instead of a timer or a task per link.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from fjernhjelp.server.control_socket import Links, factory

if TYPE_CHECKING:
    from fjernhjelp.server.agent_hub import AgentHub

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
SWEEP_EVERY = 5.0
STOP_GRACE = 10.0  # at the node's stop, how long the links' handlers have to end


class AgentListener:
    def __init__(self, hub: AgentHub) -> None:
        self._hub = hub
        self.links = Links()
        self._server: asyncio.Server | None = None
        self._sweep: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            factory(self._hub, self.links), host, port, backlog=BACKLOG
        )
        self._sweep = loop.create_task(self._keepalive())

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = time.monotonic()
            for sock in list(self.links.sockets):
                sock.check(now)

    def close(self) -> None:
        """Stop listening and tell every link the node is going away (1001)."""
        if self._server is not None:
            self._server.close()
        if self._sweep is not None:
            self._sweep.cancel()
        for sock in list(self.links.sockets):
            sock.going_away()

    async def wait_closed(self) -> None:
        """Until the links' handlers have ended (their departures written), at most
        ``STOP_GRACE``; a peer that does not answer our close is dropped after its grace."""
        if self._server is not None:
            await self._server.wait_closed()
        if self._sweep is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep
        handlers = [t for t in self.links.handlers if not t.done()]
        if handlers:
            await asyncio.wait(handlers, timeout=STOP_GRACE)


async def start(hub: AgentHub, host: str, port: int) -> AgentListener:
    listener = AgentListener(hub)
    await listener.start(host, port)
    return listener
