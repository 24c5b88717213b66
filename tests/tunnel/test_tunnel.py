"""Whole tunnels over an in-memory relay: streams, fragmentation, closing, accounting."""

from __future__ import annotations

import asyncio
import os

import pytest

from fjernhjelp.tunnel.channel import Channel, ChannelClosed
from fjernhjelp.tunnel.codes import CloseCode, RefuseCode, StreamCode
from fjernhjelp.tunnel.errors import (
    AgentRefusal,
    MessageTooLarge,
    Refused,
    StreamClosed,
    StreamRefused,
    TunnelClosed,
)
from fjernhjelp.tunnel.limits import MAX_MESSAGE, MAX_STREAMS
from fjernhjelp.tunnel.mux import TunnelOptions
from fjernhjelp.tunnel.opening import accept, connect
from fjernhjelp.tunnel.tickets import Permission
from fjernhjelp.tunnel.transport import memory_transport_pair
from tests.tunnel.helpers import MACHINE, World, closed_within, open_pair

pytestmark = [pytest.mark.timeout(30)]


async def echo_server(agent) -> None:
    """Serve every accepted stream by echoing each message reversed."""

    async def serve(channel) -> None:
        try:
            while True:
                message = await channel.recv()
                await channel.send(message[::-1])
        except ChannelClosed:
            pass

    async with asyncio.TaskGroup() as group:
        try:
            while True:
                _, channel = await agent.accept_stream()
                group.create_task(serve(channel))
        except TunnelClosed:
            pass


async def test_streams_carry_messages_both_ways() -> None:
    pair = await open_pair()
    server = asyncio.create_task(echo_server(pair.agent))
    shell = await pair.technician.open("shell", {"cols": 120, "rows": 40})
    assert isinstance(shell, Channel)
    for message in (b"ls -la\n", b"", "blåbærsyltetøy".encode(), os.urandom(3000)):
        await shell.send(message)
        assert await shell.recv() == message[::-1]
    assert pair.requests[0].service == "shell"
    assert pair.requests[0].params == {"cols": 120, "rows": 40}
    assert pair.agent.ticket is not None and pair.agent.ticket.allows(Permission.TERMINAL)
    await pair.technician.close()
    server.cancel()


async def test_large_messages_are_fragmented_and_reassembled() -> None:
    pair = await open_pair()
    server = asyncio.create_task(echo_server(pair.agent))
    files = await pair.technician.open("files")
    for size in (65529, 65530, 65531, 200_000, MAX_MESSAGE):
        message = os.urandom(size)
        await files.send(message)
        assert await files.recv() == message[::-1]
    await pair.technician.close()
    server.cancel()


async def test_too_large_message_is_refused_locally_and_the_stream_survives() -> None:
    pair = await open_pair()
    server = asyncio.create_task(echo_server(pair.agent))
    files = await pair.technician.open("files")
    with pytest.raises(MessageTooLarge):
        await files.send(bytes(MAX_MESSAGE + 1))
    await files.send(b"still here")
    assert await files.recv() == b"ereh llits"
    await pair.technician.close()
    server.cancel()


async def test_control_stream_is_open_from_the_start() -> None:
    pair = await open_pair()
    await pair.agent.control.send_json({"type": "consent", "state": "asking"})
    assert await pair.technician.control.recv_json() == {"type": "consent", "state": "asking"}
    await pair.technician.control.send(b'{"type":"hello"}')
    assert await pair.agent.control.recv() == b'{"type":"hello"}'
    await pair.technician.close()


async def test_streams_interleave_so_a_busy_one_does_not_starve_another() -> None:
    pair = await open_pair()
    server = asyncio.create_task(echo_server(pair.agent))
    desktop_like = await pair.technician.open("files")
    shell = await pair.technician.open("shell")

    async def flood() -> None:
        for _ in range(40):
            await desktop_like.send(bytes(MAX_MESSAGE))

    flooding = asyncio.create_task(flood())
    await shell.send(b"whoami\n")
    # The shell's reply comes back while the flood is still going: its records were
    # interleaved with the flood's instead of waiting behind 10 MiB of it.
    assert await shell.recv() == b"\nimaohw"
    assert not flooding.done()
    flooding.cancel()
    await pair.technician.close()
    server.cancel()


PERMISSION_FOR = {"shell": Permission.TERMINAL, "files": Permission.FILES}


async def test_stream_without_the_ticket_permission_is_refused() -> None:
    async def by_ticket(request) -> bool:
        return request.ticket.allows(PERMISSION_FOR[request.service])

    pair = await open_pair(
        authorize=by_ticket,
        ticket={"permissions": frozenset({Permission.VIEW, Permission.TERMINAL})},
    )
    server = asyncio.create_task(echo_server(pair.agent))
    with pytest.raises(StreamRefused) as info:
        await pair.technician.open("files", {"path": "/etc"})
    assert info.value.code == StreamCode.REFUSED
    shell = await pair.technician.open("shell")
    await shell.send(b"ok")
    assert await shell.recv() == b"ko"
    await pair.technician.close()
    server.cancel()


async def test_unknown_service_is_refused_without_asking_the_callback() -> None:
    pair = await open_pair()
    with pytest.raises(StreamRefused) as info:
        await pair.technician.open("rootkit")
    assert info.value.code == StreamCode.UNKNOWN_SERVICE
    assert pair.requests == []
    await pair.technician.close()


async def test_a_failing_callback_refuses() -> None:
    async def broken(request) -> bool:
        raise RuntimeError("database down")

    pair = await open_pair(authorize=broken)
    with pytest.raises(StreamRefused):
        await pair.technician.open("shell")
    assert pair.technician.closed is None
    await pair.technician.close()


async def test_open_streams_are_bounded() -> None:
    pair = await open_pair()
    server = asyncio.create_task(echo_server(pair.agent))
    streams = [await pair.technician.open("chat") for _ in range(MAX_STREAMS - 1)]
    with pytest.raises(StreamRefused) as info:
        await pair.technician.open("chat")
    assert info.value.code == StreamCode.TOO_MANY_STREAMS
    await streams[0].close()
    await pair.technician.open("chat")  # a slot is free again
    await pair.technician.close()
    server.cancel()


async def test_stream_close_reaches_the_peer_after_the_data() -> None:
    pair = await open_pair()
    files = await pair.technician.open("files")
    _, agent_side = await pair.agent.accept_stream()
    await files.send(b"chunk 1")
    await files.send(b"chunk 2")
    await files.close("done")
    assert await agent_side.recv() == b"chunk 1"
    assert await agent_side.recv() == b"chunk 2"
    with pytest.raises(StreamClosed) as info:
        await agent_side.recv()
    assert info.value.by == "peer" and info.value.text == "done"
    with pytest.raises(ChannelClosed):
        await files.send(b"after close")
    with pytest.raises(ChannelClosed):
        await agent_side.send(b"after close")
    await pair.technician.close()


async def test_closing_the_tunnel_ends_every_stream_on_both_sides() -> None:
    pair = await open_pair()
    shell = await pair.technician.open("shell")
    files = await pair.technician.open("files")
    _, agent_shell = await pair.agent.accept_stream()
    _, agent_files = await pair.agent.accept_stream()
    await pair.agent.close(CloseCode.ENDED_BY_USER, "Avsluttet av brukeren")
    closed = await closed_within(pair.technician)
    assert closed.code == CloseCode.ENDED_BY_USER and closed.by == "peer"
    assert closed.text == "Avsluttet av brukeren"
    for channel in (shell, files, agent_shell, agent_files, pair.technician.control):
        with pytest.raises(TunnelClosed):
            await channel.recv()
        with pytest.raises(TunnelClosed):
            await channel.send(b"x")
    with pytest.raises(TunnelClosed):
        await pair.technician.open("shell")
    with pytest.raises(TunnelClosed):
        await pair.agent.accept_stream()
    assert (await pair.agent.wait_closed()).by == "local"


async def test_closing_the_control_channel_ends_the_tunnel() -> None:
    pair = await open_pair()
    await pair.technician.control.close()
    assert (await closed_within(pair.agent)).code == CloseCode.NORMAL


async def test_transport_loss_ends_the_tunnel() -> None:
    pair = await open_pair()
    shell = await pair.technician.open("shell")
    for task in pair.relay:
        task.cancel()
    await asyncio.gather(*pair.relay, return_exceptions=True)
    assert (await closed_within(pair.technician)).code == CloseCode.TRANSPORT_CLOSED
    assert (await closed_within(pair.agent)).by == "transport"
    with pytest.raises(TunnelClosed):
        await shell.recv()


async def test_bytes_are_counted_each_way() -> None:
    pair = await open_pair()
    server = asyncio.create_task(echo_server(pair.agent))
    shell = await pair.technician.open("shell")
    await shell.send(b"x" * 1000)
    await shell.recv()
    await pair.technician.close()
    await closed_within(pair.agent)
    tech, agent = pair.technician.stats, pair.agent.stats
    assert tech.payload_sent == agent.payload_received == 1000
    assert agent.payload_sent == tech.payload_received == 1000
    assert tech.bytes_sent == agent.bytes_received > 1000
    assert agent.bytes_sent == tech.bytes_received > 1000
    assert tech.records_sent == agent.records_received
    server.cancel()


async def test_cancelled_send_mid_message_ends_the_stream_not_the_tunnel() -> None:
    pair = await open_pair()
    files = await pair.technician.open("files")
    _, agent_side = await pair.agent.accept_stream()
    await files.send(bytes(MAX_MESSAGE))  # fills most of the window; nobody reads
    sending = asyncio.create_task(files.send(bytes(MAX_MESSAGE)))
    await asyncio.sleep(0.05)
    assert not sending.done()  # waiting for credit after its first fragments
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert await agent_side.recv() == bytes(MAX_MESSAGE)
    with pytest.raises(StreamClosed) as info:
        await agent_side.recv()
    assert info.value.code == StreamCode.ERROR
    assert pair.technician.closed is None
    await pair.technician.close()


async def test_agent_refusal_reaches_the_technician_with_its_code() -> None:
    world = World()
    token = world.token(machine_id="some-other-machine")
    tech_end, agent_end = memory_transport_pair()

    async def never(request) -> bool:
        return False

    agent_task = asyncio.create_task(
        accept(
            agent_end,
            server_key=world.server.public_key(),
            identity=world.agent,
            machine_id=MACHINE,
            replay_cache=world.replay,
            authorize=never,
        )
    )
    with pytest.raises(Refused) as info:
        await connect(
            tech_end,
            ticket=token,
            ephemeral=world.ephemeral,
            agent_identity=world.agent.public_key(),
        )
    assert info.value.code == RefuseCode.WRONG_MACHINE
    with pytest.raises(AgentRefusal) as refusal:
        await agent_task
    assert refusal.value.code is RefuseCode.WRONG_MACHINE
    assert refusal.value.ticket is not None and refusal.value.ticket.machine_id != MACHINE


async def test_same_ticket_twice_is_refused_as_a_replay() -> None:
    world = World()
    pair = await open_pair(world)
    await pair.technician.close()
    with pytest.raises(Refused) as info:
        await open_pair(world)  # same keys, same session id, same replay cache
    assert info.value.code == RefuseCode.REPLAYED_SESSION


async def test_agent_gives_up_on_a_silent_technician() -> None:
    world = World()
    tech_end, agent_end = memory_transport_pair()

    async def yes(request) -> bool:
        return True

    from fjernhjelp.tunnel.errors import HandshakeTimeout

    with pytest.raises(HandshakeTimeout):
        await accept(
            agent_end,
            server_key=world.server.public_key(),
            identity=world.agent,
            machine_id=MACHINE,
            replay_cache=world.replay,
            authorize=yes,
            options=TunnelOptions(handshake_timeout=0.1),
        )
    with pytest.raises(Exception):  # noqa: B017 - the agent closed the transport
        await tech_end.recv()


async def test_abandoned_open_frees_its_slot_on_both_sides() -> None:
    decided, asked = asyncio.Event(), asyncio.Event()

    async def slow(request) -> bool:
        asked.set()
        await decided.wait()
        return True

    pair = await open_pair(authorize=slow)
    opening = asyncio.create_task(pair.technician.open("shell"))
    await asked.wait()
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    decided.set()
    # The agent's late ACCEPT is ignored; neither side keeps the stream.
    await pair.technician.control.send(b"sync")
    assert await pair.agent.control.recv() == b"sync"
    await pair.agent.control.send(b"sync")
    assert await pair.technician.control.recv() == b"sync"
    assert pair.technician.streams == [] and pair.agent.streams == []
    assert pair.technician.closed is None
    await pair.technician.close()
