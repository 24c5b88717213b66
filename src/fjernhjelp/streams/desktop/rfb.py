"""RFB 3.8 (RFC 6143) on the server side: handshake, client messages, server messages.

Written by hand: no maintained Python library implements the server side of RFB (the
Python VNC libraries are clients, such as vncdotool, or unmaintained). This module only
speaks the wire format; ``session.py`` decides what to send.

Security type None only: the end-to-end tunnel has already authenticated both ends and
encrypts every byte, and a local VNC port is bound to loopback by the technician.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from fjernhjelp.streams.desktop.extclip import PSEUDO_ENCODING, ExtendedMessage
from fjernhjelp.streams.desktop.pixels import NATIVE, BadPixelFormat, PixelFormat
from fjernhjelp.streams.desktop.transport import ByteStream

VERSION_3_8 = b"RFB 003.008\n"
SECURITY_NONE = 1

# Limits on what a client may make the agent hold in memory.
MAX_ENCODINGS = 1024
MAX_CUT_TEXT = 1 << 20
MAX_SCREENS = 16


class Encoding(IntEnum):
    RAW = 0
    COPY_RECT = 1
    TIGHT = 7
    ZRLE = 16
    JPEG_QUALITY_0 = -32  # .. -23 for quality levels 0..9
    COMPRESS_LEVEL_0 = -256  # .. -247 for compression levels 0..9
    DESKTOP_SIZE = -223
    LAST_RECT = -224
    CURSOR = -239
    EXTENDED_DESKTOP_SIZE = -308
    EXTENDED_CLIPBOARD = PSEUDO_ENCODING


class ClientMessage(IntEnum):
    SET_PIXEL_FORMAT = 0
    SET_ENCODINGS = 2
    FRAMEBUFFER_UPDATE_REQUEST = 3
    KEY_EVENT = 4
    POINTER_EVENT = 5
    CLIENT_CUT_TEXT = 6
    SET_DESKTOP_SIZE = 251


class ServerMessage(IntEnum):
    FRAMEBUFFER_UPDATE = 0
    BELL = 2
    SERVER_CUT_TEXT = 3


class ProtocolError(Exception):
    """The client broke the protocol; the session is closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SetPixelFormat:
    format: PixelFormat


@dataclass(frozen=True, slots=True)
class SetEncodings:
    encodings: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    incremental: bool
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class KeyEvent:
    down: bool
    keysym: int


@dataclass(frozen=True, slots=True)
class PointerEvent:
    buttons: int
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class CutText:
    text: str


@dataclass(frozen=True, slots=True)
class SetDesktopSize:
    width: int
    height: int


Message = (
    SetPixelFormat
    | SetEncodings
    | UpdateRequest
    | KeyEvent
    | PointerEvent
    | CutText
    | ExtendedMessage
    | SetDesktopSize
)


async def handshake(stream: ByteStream, width: int, height: int, name: str) -> bool:
    """Version, security (None) and initialisation. Returns the client's shared flag."""
    await stream.write(VERSION_3_8)
    version = await stream.read_exactly(12)
    if version == VERSION_3_8 or version == b"RFB 003.007\n":
        await stream.write(bytes([1, SECURITY_NONE]))
        (chosen,) = await stream.read_exactly(1)
        if chosen != SECURITY_NONE:
            raise ProtocolError(f"client chose security type {chosen}")
        if version == VERSION_3_8:
            await stream.write(struct.pack(">I", 0))  # SecurityResult OK
    elif version == b"RFB 003.003\n":
        await stream.write(struct.pack(">I", SECURITY_NONE))  # 3.3: the server decides
    else:
        raise ProtocolError(f"unsupported protocol version {version!r}")
    (shared,) = await stream.read_exactly(1)
    await stream.write(server_init(width, height, name))
    return bool(shared)


def server_init(width: int, height: int, name: str) -> bytes:
    encoded = name.encode("utf-8")
    return (
        struct.pack(">HH", width, height)
        + NATIVE.to_bytes()
        + struct.pack(">I", len(encoded))
        + encoded
    )


async def read_message(stream: ByteStream) -> Message:
    """The next client message; ProtocolError for anything malformed or unknown."""
    (kind,) = await stream.read_exactly(1)
    if kind == ClientMessage.SET_PIXEL_FORMAT:
        data = await stream.read_exactly(19)
        try:
            return SetPixelFormat(PixelFormat.parse(data[3:]))
        except BadPixelFormat as exc:
            raise ProtocolError(f"SetPixelFormat: {exc.reason}") from exc
    if kind == ClientMessage.SET_ENCODINGS:
        _pad, count = struct.unpack(">BH", await stream.read_exactly(3))
        if count > MAX_ENCODINGS:
            raise ProtocolError(f"SetEncodings lists {count} encodings")
        data = await stream.read_exactly(4 * count)
        return SetEncodings(struct.unpack(f">{count}i", data))
    if kind == ClientMessage.FRAMEBUFFER_UPDATE_REQUEST:
        incremental, x, y, w, h = struct.unpack(">BHHHH", await stream.read_exactly(9))
        return UpdateRequest(bool(incremental), x, y, w, h)
    if kind == ClientMessage.KEY_EVENT:
        down, keysym = struct.unpack(">B2xI", await stream.read_exactly(7))
        return KeyEvent(bool(down), keysym)
    if kind == ClientMessage.POINTER_EVENT:
        buttons, x, y = struct.unpack(">BHH", await stream.read_exactly(5))
        return PointerEvent(buttons, x, y)
    if kind == ClientMessage.CLIENT_CUT_TEXT:
        (length,) = struct.unpack(">3xi", await stream.read_exactly(7))
        if length < 0:
            # The extended-clipboard form: flags, then what the action carries. Whether
            # it was negotiated (and is allowed) is the session's decision.
            size = -length
            if not 4 <= size <= MAX_CUT_TEXT:
                raise ProtocolError(f"extended ClientCutText of {size} bytes")
            data = await stream.read_exactly(size)
            return ExtendedMessage(struct.unpack(">I", data[:4])[0], data[4:])
        if length > MAX_CUT_TEXT:
            raise ProtocolError(f"ClientCutText of {length} bytes exceeds {MAX_CUT_TEXT}")
        return CutText((await stream.read_exactly(length)).decode("latin-1"))
    if kind == ClientMessage.SET_DESKTOP_SIZE:
        _pad, w, h, screens, _pad2 = struct.unpack(">BHHBB", await stream.read_exactly(7))
        if screens > MAX_SCREENS:
            raise ProtocolError(f"SetDesktopSize with {screens} screens")
        await stream.read_exactly(16 * screens)
        return SetDesktopSize(w, h)
    raise ProtocolError(f"unknown client message type {kind}")


def rect_header(x: int, y: int, w: int, h: int, encoding: int) -> bytes:
    return struct.pack(">HHHHi", x, y, w, h, encoding)


def update_header(rect_count: int) -> bytes:
    return struct.pack(">BxH", ServerMessage.FRAMEBUFFER_UPDATE, rect_count)


def server_cut_text(text: str) -> bytes:
    # RFB's cut text is Latin-1; characters outside it cannot be carried and become "?".
    data = text.replace("\r\n", "\n").encode("latin-1", errors="replace")
    return struct.pack(">B3xI", ServerMessage.SERVER_CUT_TEXT, len(data)) + data
