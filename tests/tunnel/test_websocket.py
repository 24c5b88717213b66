"""The tunnel over real WebSocket connections on loopback, with a byte-copying relay in
the middle as the server will have: the relay sees only ciphertext."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve

from fjernhjelp.tunnel.codes import CloseCode
from fjernhjelp.tunnel.errors import TunnelClosed
from fjernhjelp.tunnel.limits import MAX_RECORD
from fjernhjelp.tunnel.mux import StreamRequest
from fjernhjelp.tunnel.opening import accept, connect
from fjernhjelp.tunnel.transport import TransportClosed, WebSocketTransport
from tests.tunnel.helpers import MACHINE, World, closed_within

pytestmark = [pytest.mark.timeout(30)]

WS = {"compression": None, "max_size": MAX_RECORD + 1024}


class Relay:
    """Pairs the first two connections and copies messages between them, keeping a copy
    of everything it saw."""

    def __init__(self) -> None:
        self.waiting: list[ServerConnection] = []
        self.paired = asyncio.Event()
        self.seen: list[bytes] = []
        self.done = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        self.waiting.append(ws)
        if len(self.waiting) == 2:
            self.paired.set()
        await self.paired.wait()
        a, b = self.waiting
        if ws is a:
            await self._copy(a, b)
        else:
            await self._copy(b, a)

    async def _copy(self, src: ServerConnection, dst: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in src:
                assert isinstance(message, bytes)
                self.seen.append(message)
                await dst.send(message)
        await dst.close()
        self.done.set()


async def test_tunnel_through_a_websocket_relay() -> None:
    world = World()
    relay = Relay()
    secret = "Pasientjournal: Kåre Ødegård, f. 01.02.1950".encode()

    async def allow(request: StreamRequest) -> bool:
        return request.service == "chat"

    async with serve(relay.handler, "127.0.0.1", 0, **WS) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}/relay/sess-0001"
        async with ws_connect(url, **WS) as agent_ws, ws_connect(url, **WS) as tech_ws:
            agent_task = asyncio.create_task(
                accept(
                    WebSocketTransport(agent_ws),
                    server_key=world.server.public_key(),
                    identity=world.agent,
                    machine_id=MACHINE,
                    replay_cache=world.replay,
                    authorize=allow,
                )
            )
            technician = await connect(
                WebSocketTransport(tech_ws),
                ticket=world.token(),
                ephemeral=world.ephemeral,
                agent_identity=world.agent.public_key(),
            )
            agent = await agent_task
            chat = await technician.open("chat")
            _, agent_chat = await agent.accept_stream()
            await chat.send(secret)
            assert await agent_chat.recv() == secret
            await agent_chat.send(b"x" * 200_000)
            assert await chat.recv() == b"x" * 200_000
            await technician.close(CloseCode.ENDED_BY_TECHNICIAN)
            assert (await closed_within(agent)).code == CloseCode.ENDED_BY_TECHNICIAN
    # The relay carried the conversation but never the plaintext.
    assert relay.seen
    assert not any(secret in message for message in relay.seen)
    assert technician.stats.bytes_sent == agent.stats.bytes_received


async def test_text_message_ends_the_transport() -> None:
    async def send_text(ws: ServerConnection) -> None:
        await ws.send("not binary")
        await ws.wait_closed()

    async with serve(send_text, "127.0.0.1", 0, **WS) as server:
        port = server.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/", **WS) as ws:
            transport = WebSocketTransport(ws)
            with pytest.raises(TransportClosed, match="text"):
                await transport.recv()
            with pytest.raises(TransportClosed):
                await transport.send(b"after close")


async def test_socket_drop_closes_the_tunnel() -> None:
    world = World()
    relay = Relay()

    async def allow(request: StreamRequest) -> bool:
        return True

    async with serve(relay.handler, "127.0.0.1", 0, **WS) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}/"
        async with ws_connect(url, **WS) as agent_ws, ws_connect(url, **WS) as tech_ws:
            agent_task = asyncio.create_task(
                accept(
                    WebSocketTransport(agent_ws),
                    server_key=world.server.public_key(),
                    identity=world.agent,
                    machine_id=MACHINE,
                    replay_cache=world.replay,
                    authorize=allow,
                )
            )
            technician = await connect(
                WebSocketTransport(tech_ws),
                ticket=world.token(),
                ephemeral=world.ephemeral,
                agent_identity=world.agent.public_key(),
            )
            agent = await agent_task
            shell = await technician.open("shell")
            await agent_ws.close()  # the agent's network goes away
            assert (await closed_within(technician)).code == CloseCode.TRANSPORT_CLOSED
            with pytest.raises(TunnelClosed):
                await shell.recv()
            await closed_within(agent)
