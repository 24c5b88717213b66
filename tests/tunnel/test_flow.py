"""Flow control under a slow reader, and keep-alive: memory stays bounded, a dead path
is noticed, an idle but healthy one is kept."""

from __future__ import annotations

import asyncio

import pytest

from fjernhjelp.tunnel.channel import ChannelClosed
from fjernhjelp.tunnel.codes import CloseCode
from fjernhjelp.tunnel.errors import TunnelClosed
from fjernhjelp.tunnel.limits import INITIAL_WINDOW, MAX_MESSAGE
from fjernhjelp.tunnel.mux import TunnelOptions
from tests.tunnel.helpers import closed_within, open_pair

pytestmark = [pytest.mark.timeout(60)]


async def test_slow_reader_holds_at_most_one_window() -> None:
    pair = await open_pair()
    desktop = await pair.technician.open("files")
    _, agent_side = await pair.agent.accept_stream()
    total = 40
    messages = [bytes([i]) * 100_000 for i in range(total)]

    async def produce() -> None:
        for message in messages:
            await desktop.send(message)

    producing = asyncio.create_task(produce())
    # Nobody reads on the agent side. The producer stalls once the window is used up.
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert not producing.done()
    assert 0 < agent_side.buffered <= INITIAL_WINDOW
    # The reader catches up: everything arrives, in order, and the producer finishes.
    received = [await agent_side.recv() for _ in range(total)]
    assert received == messages
    await asyncio.wait_for(producing, 10)
    assert agent_side.buffered == 0
    await pair.technician.close()


async def test_a_stalled_stream_does_not_block_the_others() -> None:
    pair = await open_pair()
    desktop = await pair.technician.open("files")
    shell = await pair.technician.open("shell")
    _, agent_desktop = await pair.agent.accept_stream()
    _, agent_shell = await pair.agent.accept_stream()

    async def flood() -> None:
        while True:
            await desktop.send(bytes(MAX_MESSAGE))

    flooding = asyncio.create_task(flood())
    for _ in range(50):
        await asyncio.sleep(0.01)
    # The desktop reader is stuck; its window is full. The shell still talks.
    for i in range(20):
        await shell.send(f"echo {i}".encode())
        assert await agent_shell.recv() == f"echo {i}".encode()
        await agent_shell.send(b"ok")
        assert await shell.recv() == b"ok"
    assert agent_desktop.buffered <= INITIAL_WINDOW
    flooding.cancel()
    await pair.technician.close()


async def test_credit_flows_back_on_a_long_transfer() -> None:
    # 20 MiB through one stream with a window of 512 KiB: only possible if CREDIT
    # frames keep coming back as the reader consumes.
    pair = await open_pair()
    files = await pair.technician.open("files")
    _, agent_side = await pair.agent.accept_stream()
    count = 80

    async def consume() -> int:
        got = 0
        for _ in range(count):
            got += len(await agent_side.recv())
            assert agent_side.buffered <= INITIAL_WINDOW
        return got

    consuming = asyncio.create_task(consume())
    for _ in range(count):
        await files.send(bytes(MAX_MESSAGE))
    assert await consuming == count * MAX_MESSAGE
    await pair.technician.close()


async def test_idle_tunnel_is_kept_alive() -> None:
    options = TunnelOptions(ping_interval=0.05, ping_timeout=2.0)
    pair = await open_pair(options=options)
    before = pair.agent.stats.records_received
    await asyncio.sleep(0.6)  # many ping intervals with no application traffic
    assert pair.technician.closed is None and pair.agent.closed is None
    assert pair.agent.stats.records_received > before  # PINGs or PONGs kept it alive
    await pair.technician.close()


async def test_dead_path_is_noticed_by_keep_alive() -> None:
    # After the handshake the relay swallows everything but keeps both sockets open.
    swallow_after = {"to_agent": 1, "to_technician": 1}

    def black_hole(direction: str):
        def tamper(index: int, message: bytes) -> list[bytes]:
            return [message] if index <= swallow_after[direction] else []

        return tamper

    options = TunnelOptions(ping_interval=0.05, ping_timeout=0.2)
    pair = await open_pair(
        to_agent=black_hole("to_agent"),
        to_technician=black_hole("to_technician"),
        options=options,
        hold_open=True,
    )
    shell_opening = asyncio.create_task(pair.technician.open("shell"))
    for side in (pair.technician, pair.agent):
        closed = await closed_within(side)
        assert closed.code == CloseCode.TIMEOUT and closed.by == "local"
    with pytest.raises(TunnelClosed):
        await shell_opening
    with pytest.raises(ChannelClosed):
        await pair.agent.control.recv()
