"""RFB's extended clipboard (pseudo-encoding 0xC0A1E5CE) on the wire: UTF-8 text.

Plain cut text is Latin-1. A viewer that lists this pseudo-encoding can instead receive
and send messages of the same types with a negative length: a 32-bit flags word (one
action in the high byte, formats in the low 16 bits) and what the action carries. The
agent speaks only the text format (UTF-8, CRLF line ends, NUL-terminated):

- *caps*: the formats and actions an end handles, with the largest text it accepts
  unasked; the agent sends its caps first, the viewer answers with its own.
- *notify*: "I have new clipboard text"; the other end may *request* it.
- *request*: "send me your text"; answered with *provide* (zlib-compressed).
- *peek*: "what do you have?"; answered with *notify*.

This module only builds and parses messages; ``sessionclip.py`` decides when.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

PSEUDO_ENCODING = 0xC0A1E5CE - (1 << 32)  # as the signed number SetEncodings carries

FORMAT_TEXT = 1
CAPS = 1 << 24
REQUEST = 1 << 25
PEEK = 1 << 26
NOTIFY = 1 << 27
PROVIDE = 1 << 28
ACTIONS = CAPS | REQUEST | PEEK | NOTIFY | PROVIDE
_ACTION_MASK = 0xFF000000
_FORMAT_MASK = 0x0000FFFF

MAX_TEXT = 1 << 20  # bytes of UTF-8, as for plain cut text
SERVER_CUT_TEXT = 3


class BadExtendedClipboard(Exception):
    """A malformed extended clipboard message; ``reason`` says what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExtendedMessage:
    """One extended clipboard message from the viewer: flags and the bytes after them."""

    flags: int
    payload: bytes

    @property
    def action(self) -> int:
        return self.flags & _ACTION_MASK

    @property
    def formats(self) -> int:
        return self.flags & _FORMAT_MASK

    @property
    def has_text(self) -> bool:
        return bool(self.formats & FORMAT_TEXT)


@dataclass(frozen=True, slots=True)
class ViewerCaps:
    actions: int
    text_limit: int  # the largest text the viewer takes without asking; 0: none


def _message(flags: int, body: bytes = b"") -> bytes:
    data = struct.pack(">I", flags) + body
    return struct.pack(">B3xi", SERVER_CUT_TEXT, -len(data)) + data


def caps() -> bytes:
    """The agent's caps: text only, every action, texts up to MAX_TEXT bytes."""
    return _message(ACTIONS | FORMAT_TEXT, struct.pack(">I", MAX_TEXT))


def notify(has_text: bool) -> bytes:
    return _message(NOTIFY | (FORMAT_TEXT if has_text else 0))


def request() -> bytes:
    return _message(REQUEST | FORMAT_TEXT)


def provide(text: str) -> bytes:
    data = _wire_text(text)
    return _message(PROVIDE | FORMAT_TEXT, zlib.compress(struct.pack(">I", len(data)) + data))


def _wire_text(text: str) -> bytes:
    # The format is CRLF line ends; X programs use LF. A lone CR stays as it is.
    normalised = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return normalised.encode("utf-8", "replace")[: MAX_TEXT - 1] + b"\0"


def parse_caps(message: ExtendedMessage) -> ViewerCaps:
    """The viewer's caps: a size for each format bit set, lowest bit first."""
    count = bin(message.formats).count("1")
    if len(message.payload) < 4 * count:
        raise BadExtendedClipboard("caps without a size for each format")
    limit = struct.unpack(">I", message.payload[:4])[0] if message.has_text else 0
    return ViewerCaps(message.action, limit)


def parse_provide(message: ExtendedMessage) -> str | None:
    """The text in a *provide* message, or None if it carries none.

    Decompression stops at MAX_TEXT plus the size words: a small message that inflates
    to gigabytes is refused, never held in memory.
    """
    if not message.has_text:
        return None
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(message.payload, 4 + MAX_TEXT)
    except zlib.error as exc:
        raise BadExtendedClipboard(f"provide is not a zlib stream: {exc}") from None
    if inflater.unconsumed_tail:
        raise BadExtendedClipboard(f"provided text exceeds {MAX_TEXT} bytes")
    # Text is the lowest format bit, so its size and data come first.
    if len(data) < 4:
        raise BadExtendedClipboard("provide without a text size")
    (size,) = struct.unpack(">I", data[:4])
    if size > MAX_TEXT or len(data) < 4 + size:
        raise BadExtendedClipboard("provided text shorter than its size")
    raw = data[4 : 4 + size]
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return raw.decode("utf-8", "replace").replace("\r\n", "\n")
