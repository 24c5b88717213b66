"""A peer that holds real session keys but writes whatever frames a test wants: how we
test what an end does with a buggy or hostile peer (the relay cannot do this, it has
no keys)."""

from __future__ import annotations

import asyncio

from fjernhjelp.tunnel import frames
from fjernhjelp.tunnel.frames import Frame, FrameType
from fjernhjelp.tunnel.framing import RecordOpener, RecordSealer
from fjernhjelp.tunnel.handshake import AgentHandshake, SessionKeys, TechnicianHandshake
from fjernhjelp.tunnel.mux import StreamRequest, Tunnel
from fjernhjelp.tunnel.opening import accept, connect
from fjernhjelp.tunnel.transport import MemoryTransport, TransportClosed, memory_transport_pair
from tests.tunnel.helpers import MACHINE, World


class EvilPeer:
    def __init__(self, transport: MemoryTransport, keys: SessionKeys) -> None:
        self.transport = transport
        self.sealer = RecordSealer(keys.send_key)
        self.opener = RecordOpener(keys.receive_key)

    async def send(self, frame: Frame | bytes) -> None:
        plaintext = frame if isinstance(frame, bytes) else frame.encode()
        await self.transport.send(self.sealer.seal(plaintext))

    async def recv(self) -> Frame:
        return frames.parse(self.opener.open(await self.transport.recv()))

    async def expect(self, kind: FrameType) -> Frame:
        """The next frame of ``kind``, skipping keep-alive traffic."""
        while True:
            frame = await self.recv()
            if frame.type is kind:
                return frame
            assert frame.type in (FrameType.PING, FrameType.PONG), frame

    async def goodbye(self) -> tuple[int, str]:
        """Read until the honest end says GOODBYE (or hangs up): its close code."""
        async with asyncio.timeout(10):
            try:
                while True:
                    frame = await self.recv()
                    if frame.type is FrameType.GOODBYE:
                        return frames.reason_of(frame.payload)
            except TransportClosed:
                return (-1, "hung up without GOODBYE")


async def evil_technician(
    world: World | None = None, authorize=None, first: Frame | None = None
) -> tuple[EvilPeer, asyncio.Task[Tunnel]]:
    """An honest agent, and a technician end we drive by hand. The agent is established
    once ``first`` (a PING unless given) has gone out."""
    world = world or World()

    async def allow(request: StreamRequest) -> bool:
        return True

    ours, theirs = memory_transport_pair(64)
    agent_task = asyncio.create_task(
        accept(
            theirs,
            server_key=world.server.public_key(),
            identity=world.agent,
            machine_id=MACHINE,
            replay_cache=world.replay,
            authorize=authorize or allow,
        )
    )
    handshake = TechnicianHandshake(
        ticket=world.token(), ephemeral=world.ephemeral, agent_identity=world.agent.public_key()
    )
    await ours.send(handshake.hello())
    keys = handshake.receive(await ours.recv())
    peer = EvilPeer(ours, keys)
    await peer.send(first or Frame(FrameType.PING, 0, bytes(8)))
    return peer, agent_task


async def evil_agent(world: World | None = None) -> tuple[EvilPeer, Tunnel]:
    """An honest technician, and an agent end we drive by hand."""
    world = world or World()
    ours, theirs = memory_transport_pair(64)
    handshake = AgentHandshake(
        server_key=world.server.public_key(),
        identity=world.agent,
        machine_id=MACHINE,
        replay_cache=world.replay,
    )

    async def answer() -> EvilPeer:
        hello = await ours.recv()
        await ours.send(handshake.receive_hello(hello, world.ticket().issued_at))
        assert handshake.keys is not None
        return EvilPeer(ours, handshake.keys)

    answering = asyncio.create_task(answer())
    technician = await connect(
        theirs,
        ticket=world.token(),
        ephemeral=world.ephemeral,
        agent_identity=world.agent.public_key(),
    )
    peer = await answering
    ping = await peer.recv()
    assert ping.type is FrameType.PING
    return peer, technician
