"""The agent's control link honours a busy node's answer: a 503 with Retry-After is
handed to the back-off (agent/backoff.py), which waits what the node said."""

from __future__ import annotations

import asyncio
import http
import random
import uuid

import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from fjernhjelp.agent.backoff import Backoff
from fjernhjelp.agent.link import ControlLink, LinkConfig
from fjernhjelp.control.messages import MachineInfo


class Recorded(Backoff):
    """The real back-off, its delays recorded; the first one is waited for by the test."""

    def __init__(self) -> None:
        super().__init__(rng=random.Random(5))
        self.told: list[float | None] = []
        self.delays: list[float] = []
        self.decided = asyncio.Event()

    def after(self, lasted: float, retry_after: float | None = None) -> float:
        self.told.append(retry_after)
        self.delays.append(super().after(lasted, retry_after=retry_after))
        self.decided.set()
        return 3600.0  # the test ends the link before it would try again


def _link(port: int, backoff: Backoff) -> ControlLink:
    """An agent's control link to the test's server on ``port``."""
    return ControlLink(
        LinkConfig(
            control_url=f"ws://127.0.0.1:{port}/agent/control",
            server_public_key=Ed25519PrivateKey.generate().public_key(),
            machine_id=uuid.uuid4(),
            identity=Ed25519PrivateKey.generate(),
        ),
        machine_info=lambda: MachineInfo(hostname="pc", os="test", agent_version="1"),
        on_dial=lambda dial: asyncio.sleep(0),
        on_cut=lambda cut: asyncio.sleep(0),
        backoff=backoff,
    )


async def test_a_busy_nodes_retry_after_is_what_the_agent_waits() -> None:
    def busy(conn: ServerConnection, request: Request) -> Response:
        response = conn.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        response.headers["Retry-After"] = "23"
        return response

    async def never(conn: ServerConnection) -> None:
        raise AssertionError("refused before the upgrade")

    async with websockets.serve(never, "127.0.0.1", 0, process_request=busy) as server:
        port = server.sockets[0].getsockname()[1]
        backoff = Recorded()
        link = _link(port, backoff)
        task = asyncio.create_task(link.run_forever())
        try:
            await asyncio.wait_for(backoff.decided.wait(), 30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert backoff.told == [23.0]
    assert 23.0 <= backoff.delays[0] <= 24.0


async def test_a_support_client_told_busy_waits_and_tries_again_then_stops_at_a_refusal() -> None:
    # The one-time Support client runs one link (run_once): a busy node's 503 is not
    # the end of its session, any other refusal of the upgrade is.
    answers = [(http.HTTPStatus.SERVICE_UNAVAILABLE, "0"), (http.HTTPStatus.FORBIDDEN, None)]
    asked: list[str] = []

    def answer(conn: ServerConnection, request: Request) -> Response:
        asked.append(request.path)
        status, retry_after = answers.pop(0)
        response = conn.respond(status, "no\n")
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response

    async def never(conn: ServerConnection) -> None:
        raise AssertionError("refused before the upgrade")

    told: list[float] = []
    async with websockets.serve(never, "127.0.0.1", 0, process_request=answer) as server:
        port = server.sockets[0].getsockname()[1]
        # Its floor is what a "come back in 0 s" is waited: short for the test.
        link = _link(port, Backoff(base=0.01, rng=random.Random(1)))
        try:
            await asyncio.wait_for(link.run_once(on_busy=told.append), 30)
        except websockets.InvalidStatus as exc:
            refused = exc.response.status_code
        else:
            raise AssertionError("a refused upgrade ends run_once")
    assert asked == ["/agent/control", "/agent/control"]
    assert len(told) == 1 and 0.01 <= told[0] <= 0.02
    assert refused == http.HTTPStatus.FORBIDDEN
