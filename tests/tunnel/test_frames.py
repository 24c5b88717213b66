"""The mux frame parser: strict on every field, and total on arbitrary input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjernhjelp.tunnel import frames
from fjernhjelp.tunnel.errors import ProtocolError
from fjernhjelp.tunnel.frames import FLAG_END, Frame, FrameType
from fjernhjelp.tunnel.limits import MAX_FRAGMENT, MAX_OPEN_REQUEST, MAX_REASON


def raw(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BBI", kind, flags, stream) + payload


@pytest.mark.parametrize(
    "frame",
    [
        frames.open_frame(1, "shell", {"cols": 80, "rows": 24}),
        Frame(FrameType.ACCEPT, 1),
        frames.data_frame(7, b"abc", end=True),
        frames.data_frame(0, b"x" * MAX_FRAGMENT, end=False),
        frames.data_frame(3, b"", end=True),
        frames.credit_frame(2, 65536),
        frames.reason_frame(FrameType.CLOSE, 4, 1, "refused"),
        Frame(FrameType.PING, 0, b"12345678"),
        Frame(FrameType.PONG, 0, b"12345678"),
        frames.reason_frame(FrameType.GOODBYE, 0, 6, "Avsluttet av brukeren"),
    ],
)
def test_frames_round_trip(frame: Frame) -> None:
    assert frames.parse(frame.encode()) == frame


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x03\x01\x00\x00", "shorter"),
        (raw(0x09, 0, 0), "unknown frame type"),
        (raw(0x00, 0, 0), "unknown frame type"),
        (raw(FrameType.DATA, 0x02, 1, b"x"), "flags"),
        (raw(FrameType.ACCEPT, 0x01, 1), "flags"),
        (raw(FrameType.DATA, 0, 1, b""), "empty DATA"),
        (raw(FrameType.DATA, 1, 1, b"x" * (MAX_FRAGMENT + 1)), "payload"),
        (raw(FrameType.PING, 0, 3, b"12345678"), "control stream"),
        (raw(FrameType.GOODBYE, 0, 3, b"\x00\x00"), "control stream"),
        (raw(FrameType.OPEN, 0, 0, b"{}"), "on the control stream"),
        (raw(FrameType.CLOSE, 0, 0, b"\x00\x00"), "on the control stream"),
        (raw(FrameType.PING, 0, 0, b"1234567"), "payload"),
        (raw(FrameType.ACCEPT, 0, 1, b"x"), "payload"),
        (raw(FrameType.CREDIT, 0, 1, b"\x00\x00\x00\x00"), "CREDIT of zero"),
        (raw(FrameType.CREDIT, 0, 1, b"\x00\x01"), "payload"),
        (raw(FrameType.CLOSE, 0, 1, b"\x00"), "payload"),
        (raw(FrameType.CLOSE, 0, 1, b"\x00\x00\xff"), "UTF-8"),
        (raw(FrameType.CLOSE, 0, 1, b"\x00\x00" + b"x" * (MAX_REASON + 1)), "payload"),
        (raw(FrameType.OPEN, 0, 1, b"x" * (MAX_OPEN_REQUEST + 1)), "payload"),
    ],
)
def test_malformed_frames_are_protocol_errors(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        frames.parse(data)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"service": "shell"}',
        b'{"service": "Shell", "params": {}}',
        b'{"service": "shell", "params": []}',
        b'{"service": "shell", "params": {}, "x": 1}',
        b'{"service": "' + b"a" * 33 + b'", "params": {}}',
        b"\xff\xfe",
    ],
)
def test_bad_open_requests_are_refused_as_bad_requests(payload: bytes) -> None:
    with pytest.raises(frames.BadOpenRequest):
        frames.open_request_of(payload)


def test_open_request_parses() -> None:
    frame = frames.open_frame(1, "files", {"path": "/home/kari"})
    assert frames.open_request_of(frame.payload) == ("files", {"path": "/home/kari"})


def test_open_frame_refuses_bad_local_input() -> None:
    with pytest.raises(ValueError):
        frames.open_frame(1, "Not A Service", {})
    with pytest.raises(ValueError):
        frames.open_frame(1, "files", {"big": "x" * MAX_OPEN_REQUEST})


def test_reason_text_is_cut_on_a_character_boundary() -> None:
    frame = frames.reason_frame(FrameType.GOODBYE, 0, 0, "ø" * 150)
    code, text = frames.reason_of(frames.parse(frame.encode()).payload)
    assert code == 0 and text == "ø" * (MAX_REASON // 2)


@given(st.binary(max_size=64))
def test_parser_is_total(data: bytes) -> None:
    # Any input either parses to a frame that encodes back to the same bytes, or raises
    # ProtocolError: never another exception, never a lenient reading.
    try:
        frame = frames.parse(data)
    except ProtocolError:
        return
    assert frame.encode() == data


@given(
    st.sampled_from(list(FrameType)),
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 2**32 - 1]),
    st.binary(max_size=24),
)
def test_parser_on_structured_input(kind: FrameType, flags: int, stream: int, body: bytes) -> None:
    data = raw(kind, flags, stream, body)
    try:
        frame = frames.parse(data)
    except ProtocolError:
        return
    assert frame.encode() == data
    assert frame.flags & ~FLAG_END == 0
