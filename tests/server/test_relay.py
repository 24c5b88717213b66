"""The relay pairs two ends, copies bytes it cannot read, and can cut a session."""

from __future__ import annotations

import asyncio

import pytest

from fjernhjelp.server.relay import CloseCode, DuplicateEnd, EndClosed, Outcome, Relay, Role


class FakeEnd:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sent: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    async def recv(self) -> bytes:
        item = await self.inbox.get()
        if item is None:
            raise EndClosed
        return item

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise EndClosed
        self.sent.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def _run_pair(
    relay: Relay, sid: str = "s1"
) -> tuple[FakeEnd, FakeEnd, asyncio.Task, asyncio.Task]:
    tech, agent = FakeEnd(), FakeEnd()
    t1 = asyncio.create_task(relay.join(sid, Role.TECHNICIAN, tech))
    await asyncio.sleep(0)
    t2 = asyncio.create_task(relay.join(sid, Role.AGENT, agent))
    await asyncio.sleep(0.01)
    return tech, agent, t1, t2


async def test_bytes_are_copied_both_ways_and_counted() -> None:
    ended: list[Outcome] = []

    async def on_end(o: Outcome) -> None:
        ended.append(o)

    relay = Relay(on_end=on_end)
    tech, agent, t1, t2 = await _run_pair(relay)
    await tech.inbox.put(b"hello agent")
    await agent.inbox.put(b"hi")
    await asyncio.sleep(0.01)
    assert agent.sent == [b"hello agent"] and tech.sent == [b"hi"]
    await tech.inbox.put(None)  # the technician leaves
    results = await asyncio.gather(t1, t2)
    outcome = next(r for r in results if r is not None)
    assert [r for r in results if r is None] == [None]  # reported exactly once
    assert outcome.reason == "technician_closed" and outcome.paired
    assert (outcome.bytes_from_technician, outcome.bytes_from_agent) == (11, 2)
    assert agent.closed[0] == CloseCode.PEER_GONE
    assert ended == [outcome]
    assert relay.live_sessions() == []


async def test_a_lone_end_times_out() -> None:
    relay = Relay(pair_timeout=0.05)
    tech = FakeEnd()
    outcome = await relay.join("s2", Role.TECHNICIAN, tech)
    assert outcome is not None and outcome.reason == "pair_timeout" and not outcome.paired
    assert tech.closed[0] == CloseCode.PAIR_TIMEOUT


async def test_a_second_socket_cannot_take_a_taken_role() -> None:
    relay = Relay(pair_timeout=1)
    first = asyncio.create_task(relay.join("s3", Role.AGENT, FakeEnd()))
    await asyncio.sleep(0)
    intruder = FakeEnd()
    with pytest.raises(DuplicateEnd):
        await relay.join("s3", Role.AGENT, intruder)
    assert intruder.closed[0] == CloseCode.DUPLICATE
    relay.cut("s3", "test")
    await first


async def test_cut_ends_a_running_session() -> None:
    relay = Relay()
    tech, agent, t1, t2 = await _run_pair(relay, "s4")
    assert relay.cut("s4", "grant_revoked")
    results = await asyncio.gather(t1, t2)
    outcome = next(r for r in results if r is not None)
    assert outcome.reason == "cut:grant_revoked"
    assert tech.closed[0] == agent.closed[0] == CloseCode.CUT
    assert not relay.cut("s4", "again")


async def test_oversized_message_ends_the_session() -> None:
    relay = Relay()
    tech, agent, t1, t2 = await _run_pair(relay, "s5")
    await tech.inbox.put(b"x" * ((1 << 20) + 1))
    results = await asyncio.gather(t1, t2)
    outcome = next(r for r in results if r is not None)
    assert outcome.reason == "technician_message_too_big"
    assert agent.sent == []  # nothing of it reached the agent
