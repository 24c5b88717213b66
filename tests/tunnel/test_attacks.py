"""From the attacker's side: a relay that tampers with records, and peers that break
the protocol. Every case ends the tunnel; no altered byte ever reaches a stream."""

from __future__ import annotations

import asyncio

import pytest

from fjernhjelp.tunnel import frames
from fjernhjelp.tunnel.channel import ChannelClosed
from fjernhjelp.tunnel.codes import CloseCode
from fjernhjelp.tunnel.errors import HandshakeError, TunnelClosed
from fjernhjelp.tunnel.frames import Frame, FrameType
from fjernhjelp.tunnel.limits import FRAME_COST, INITIAL_WINDOW, MAX_FRAGMENT, MAX_RECORD
from fjernhjelp.tunnel.mux import TunnelOptions
from tests.tunnel.evil import evil_agent, evil_technician
from tests.tunnel.helpers import Tamper, closed_within, open_pair

pytestmark = [pytest.mark.timeout(30)]

# Small keep-alive timers, so a record that simply never arrives (a drop at the end of
# the traffic) is noticed too: the next PING carries the wrong counter.
QUICK = TunnelOptions(ping_interval=0.2, ping_timeout=5.0)


def flip(at: int, position: int) -> Tamper:
    def tamper(index: int, message: bytes) -> list[bytes]:
        if index != at:
            return [message]
        bad = bytearray(message)
        bad[position % len(bad)] ^= 0x01
        return [bytes(bad)]

    return tamper


def replay(at: int) -> Tamper:
    return lambda index, message: [message, message] if index == at else [message]


def drop(at: int) -> Tamper:
    return lambda index, message: [] if index == at else [message]


def reorder(at: int) -> Tamper:
    held: list[bytes] = []

    def tamper(index: int, message: bytes) -> list[bytes]:
        if index == at:
            held.append(message)
            return []
        if index == at + 1:
            return [message, *held]
        return [message]

    return tamper


def oversize(at: int) -> Tamper:
    return lambda index, message: [message + bytes(MAX_RECORD)] if index == at else [message]


def truncate(at: int) -> Tamper:
    return lambda index, message: [message[:20]] if index == at else [message]


async def converse(pair, rounds: int = 12) -> list[bytes]:
    """The technician sends numbered lines on a shell stream, the agent echoes each;
    returns what came back, stopping when the tunnel ends."""

    async def agent_side() -> None:
        try:
            _, channel = await pair.agent.accept_stream()
            while True:
                await channel.send(b"echo:" + await channel.recv())
        except ChannelClosed:
            pass

    serving = asyncio.create_task(agent_side())
    replies: list[bytes] = []
    try:
        shell = await pair.technician.open("shell")
        for i in range(rounds):
            await shell.send(f"line {i}".encode())
            replies.append(await shell.recv())
        await asyncio.sleep(1.0)  # long enough for keep-alive to notice a final drop
    except ChannelClosed:
        pass
    await asyncio.gather(serving)
    return replies


ATTACKS = {
    "flip-header": lambda at: flip(at, 3),
    "flip-body": lambda at: flip(at, 12),
    "flip-tag": lambda at: flip(at, -1),
    "replay": replay,
    "drop": drop,
    "reorder": reorder,
    "oversize": oversize,
    "truncate": truncate,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize(
    ("direction", "at"), [("to_agent", 2), ("to_agent", 4), ("to_technician", 3)]
)
async def test_relay_tampering_closes_the_tunnel(attack: str, direction: str, at: int) -> None:
    pair = await open_pair(**{direction: ATTACKS[attack](at)}, options=QUICK)
    replies = await converse(pair)
    # Whatever got through before the attack is exactly what was sent.
    assert replies == [f"echo:line {i}".encode() for i in range(len(replies))]
    assert len(replies) < 12
    victim, other = (
        (pair.agent, pair.technician) if direction == "to_agent" else (pair.technician, pair.agent)
    )
    closed = await closed_within(victim)
    assert closed.code == CloseCode.RECORD_ERROR and closed.by == "local"
    # The victim's GOODBYE goes the untampered way; the other end learns why.
    peer_closed = await closed_within(other)
    assert peer_closed.code == CloseCode.RECORD_ERROR and peer_closed.by == "peer"


async def test_tampered_first_record_never_establishes_the_agent() -> None:
    with pytest.raises(HandshakeError):
        await open_pair(to_agent=flip(1, 10))


async def test_unknown_stream_id_closes_the_tunnel() -> None:
    peer, agent_task = await evil_technician()
    agent = await agent_task
    await peer.send(frames.data_frame(99, b"hello", True))
    assert await peer.goodbye() == (CloseCode.PROTOCOL_ERROR, "DATA on stream 99, never opened")
    assert (await closed_within(agent)).code == CloseCode.PROTOCOL_ERROR


async def test_open_out_of_sequence_closes_the_tunnel() -> None:
    peer, agent_task = await evil_technician()
    agent = await agent_task
    await peer.send(frames.open_frame(5, "shell", {}))
    code, _ = await peer.goodbye()
    assert code == CloseCode.PROTOCOL_ERROR
    assert (await closed_within(agent)).code == CloseCode.PROTOCOL_ERROR


async def test_first_record_must_be_a_ping() -> None:
    with pytest.raises(HandshakeError):
        _, agent_task = await evil_technician(first=frames.open_frame(1, "shell", {}))
        await agent_task


async def test_data_before_the_agent_decides_closes_the_tunnel() -> None:
    decided = asyncio.Event()

    async def slow(request) -> bool:
        await decided.wait()
        return True

    peer, agent_task = await evil_technician(authorize=slow)
    agent = await agent_task
    await peer.send(frames.open_frame(1, "shell", {}))
    await peer.send(frames.data_frame(1, b"rm -rf /", True))
    code, _ = await peer.goodbye()
    assert code == CloseCode.PROTOCOL_ERROR
    decided.set()
    assert (await closed_within(agent)).code == CloseCode.PROTOCOL_ERROR


async def test_sending_beyond_the_window_closes_the_tunnel() -> None:
    peer, agent_task = await evil_technician()
    agent = await agent_task
    await peer.send(frames.open_frame(1, "files", {}))
    await peer.expect(FrameType.ACCEPT)
    chunk = bytes(MAX_FRAGMENT)
    sent = 0
    while sent + len(chunk) + FRAME_COST <= INITIAL_WINDOW:
        await peer.send(frames.data_frame(1, chunk, True))
        sent += len(chunk) + FRAME_COST
    await peer.send(frames.data_frame(1, chunk, True))  # no credit was granted for this
    code, _ = await peer.goodbye()
    assert code == CloseCode.FLOW_CONTROL
    assert (await closed_within(agent)).code == CloseCode.FLOW_CONTROL


async def test_message_beyond_the_maximum_closes_the_tunnel() -> None:
    peer, agent_task = await evil_technician()
    agent = await agent_task
    await peer.send(frames.open_frame(1, "files", {}))
    await peer.expect(FrameType.ACCEPT)
    for _ in range(5):  # 5 fragments without END: more than MAX_MESSAGE
        await peer.send(frames.data_frame(1, bytes(MAX_FRAGMENT), False))
    code, _ = await peer.goodbye()
    assert code == CloseCode.MESSAGE_TOO_LARGE
    assert (await closed_within(agent)).code == CloseCode.MESSAGE_TOO_LARGE


async def test_credit_beyond_the_window_closes_the_tunnel() -> None:
    peer, agent_task = await evil_technician()
    agent = await agent_task
    await peer.send(frames.credit_frame(0, 1))  # nothing was sent on stream 0: no credit due
    code, _ = await peer.goodbye()
    assert code == CloseCode.PROTOCOL_ERROR
    assert (await closed_within(agent)).code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize(
    "frame",
    [
        Frame(FrameType.ACCEPT, 1),
        b"\x42\x00\x00\x00\x00\x00",  # unknown frame type
        b"\x03\x06\x00\x00\x00\x00x",  # DATA with undefined flags
    ],
)
async def test_frames_the_technician_may_not_send_close_the_tunnel(frame) -> None:
    peer, agent_task = await evil_technician()
    agent = await agent_task
    await peer.send(frame)
    code, _ = await peer.goodbye()
    assert code == CloseCode.PROTOCOL_ERROR
    assert (await closed_within(agent)).code == CloseCode.PROTOCOL_ERROR


async def test_agent_may_not_open_streams() -> None:
    peer, technician = await evil_agent()
    await peer.send(frames.open_frame(1, "shell", {}))
    code, _ = await peer.goodbye()
    assert code == CloseCode.PROTOCOL_ERROR
    assert (await closed_within(technician)).code == CloseCode.PROTOCOL_ERROR


async def test_agent_data_on_a_stream_the_technician_never_opened() -> None:
    peer, technician = await evil_agent()
    await peer.send(frames.data_frame(3, b"unsolicited", True))
    code, _ = await peer.goodbye()
    assert code == CloseCode.PROTOCOL_ERROR
    with pytest.raises(TunnelClosed):
        await technician.control.recv()


async def test_frames_crossing_a_close_in_flight_are_ignored_not_fatal() -> None:
    # The agent's DATA for a stream the technician has just closed: a race every honest
    # peer can hit, so it must not end the tunnel.
    peer, technician = await evil_agent()
    opening = asyncio.create_task(technician.open("shell"))
    await peer.expect(FrameType.OPEN)
    await peer.send(Frame(FrameType.ACCEPT, 1))
    stream = await opening
    await stream.close()
    await peer.send(frames.data_frame(1, b"late", True))
    await peer.expect(FrameType.CLOSE)  # crossed our CLOSE in flight
    await peer.send(Frame(FrameType.PING, 0, bytes(8)))
    await peer.expect(FrameType.PONG)
    assert technician.closed is None
    await technician.close()
