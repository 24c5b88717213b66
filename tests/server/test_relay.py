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


async def test_neither_end_is_let_go_before_it_is_told_why() -> None:
    # Whichever join returns first, its socket has had its close (here 4003 for a cut):
    # an ASGI handler that returns before that drops the socket and its peer sees 1006.
    paired = asyncio.Event()

    async def on_paired(_: str) -> None:
        paired.set()

    relay = Relay(on_paired=on_paired)
    tech, agent = FakeEnd(), FakeEnd()
    closed_at_return: dict[str, tuple[int, str] | None] = {}

    async def held(role: Role, end: FakeEnd) -> None:
        await relay.join("s6", role, end)
        closed_at_return[str(role)] = end.closed

    t1 = asyncio.create_task(held(Role.TECHNICIAN, tech))
    t2 = asyncio.create_task(held(Role.AGENT, agent))
    await paired.wait()
    relay.cut("s6", "grant_revoked")
    await asyncio.gather(t1, t2)
    assert closed_at_return == {
        "technician": (CloseCode.CUT, "cut:grant_revoked"),
        "agent": (CloseCode.CUT, "cut:grant_revoked"),
    }


class StuckEnd(FakeEnd):
    """An end whose socket takes nothing: every send waits until ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.offered = 0
        self.first_offered = asyncio.Event()
        self.took_all = asyncio.Event()

    async def send(self, data: bytes) -> None:
        self.offered += 1
        self.first_offered.set()
        await self.release.wait()
        await super().send(data)
        if len(self.sent) == 50:
            self.took_all.set()


async def test_a_stuck_receiver_holds_one_message_of_its_sender() -> None:
    # Buffering is bounded per session: the relay takes the next message from the sender
    # only once the receiver took the last one, however much the sender has ready.
    relay = Relay()
    tech, agent = FakeEnd(), StuckEnd()
    for _ in range(50):
        tech.inbox.put_nowait(b"r" * 16384)
    t1 = asyncio.create_task(relay.join("s7", Role.TECHNICIAN, tech))
    t2 = asyncio.create_task(relay.join("s7", Role.AGENT, agent))
    await agent.first_offered.wait()
    for _ in range(100):  # every turn the pipe could want
        await asyncio.sleep(0)
    assert agent.offered == 1 and tech.inbox.qsize() == 49
    agent.release.set()
    await agent.took_all.wait()
    relay.cut("s7", "test")
    await asyncio.gather(t1, t2)


async def test_a_bulk_copy_gives_way_to_the_other_sessions() -> None:
    # Interleaving, not timing: with a bulk sender that always has a record ready, a
    # desktop session's message still passes within one quantum of the bulk bytes.
    from fjernhjelp.server import relay as relay_module

    order: list[str] = []
    seen = {"bulk": asyncio.Event(), "desktop": asyncio.Event()}

    class Logged(FakeEnd):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        async def send(self, data: bytes) -> None:
            order.append(self.name)
            seen[self.name].set()
            await super().send(data)

    relay = Relay()
    bulk_tech, bulk_agent = FakeEnd(), Logged("bulk")
    desk_tech, desk_agent = FakeEnd(), Logged("desktop")
    record = b"b" * 16384
    for _ in range(200):
        bulk_tech.inbox.put_nowait(record)
    tasks = [
        asyncio.create_task(relay.join("bulk", Role.TECHNICIAN, bulk_tech)),
        asyncio.create_task(relay.join("bulk", Role.AGENT, bulk_agent)),
        asyncio.create_task(relay.join("desk", Role.TECHNICIAN, desk_tech)),
        asyncio.create_task(relay.join("desk", Role.AGENT, desk_agent)),
    ]
    await seen["bulk"].wait()
    desk_tech.inbox.put_nowait(b"key press")
    await seen["desktop"].wait()
    bulk_before = order.index("desktop")
    # Sent by the bulk pipe between the desktop message being ready and it passing: at
    # most one quantum's worth (and the records already in flight at that moment).
    per_quantum = relay_module.QUANTUM // len(record)
    assert bulk_before <= 2 * per_quantum, order[: bulk_before + 1]
    relay.cut("bulk", "test")
    relay.cut("desk", "test")
    await asyncio.gather(*tasks)
