"""The shell's wire format: messages on the terminal channel, shared by agent and client.

Wire format. Every channel message is one message below; its first byte is the type:

=====  ======  ===============  ============================================================
type   name    direction        payload
=====  ======  ===============  ============================================================
0x06   OFFER   agent→technician first message of the agent, sent as the channel opens; UTF-8
                                JSON ``{"choices": [{"run_as": "user" | "service",
                                "account": str, "uid": int}, ...], "default": run_as}``:
                                the accounts this session may have a shell as, at most one
                                per run_as; ``default`` is one of them. With no choice at
                                all the agent sends ERROR instead and closes.
0x01   OPEN    technician→agent first message only; UTF-8 JSON object, at most 1 KiB:
                                ``{"rows": 1..1000, "cols": 1..1000, "term": "xterm-256color",
                                "run_as": "user" | "service"}``
0x02   DATA    both ways        raw bytes: keystrokes into the PTY, output out of it; at most
                                64 KiB of payload
0x03   RESIZE  technician→agent 4 bytes: rows, cols as big-endian unsigned 16-bit, each 1..1000
0x04   EXIT    agent→technician last message; 4 bytes big-endian signed 32-bit: the shell's
                                exit code (0..255), or minus the signal number that ended it
0x05   ERROR   agent→technician last message; UTF-8 JSON ``{"code": str, "message": str}``
=====  ======  ===============  ============================================================

The technician picks from the OFFER (the agent's default when it has no preference) and
sends OPEN; the agent still checks the choice itself, so an OPEN for an account it did not
offer is refused with ERROR (``run_as_not_offered``, ``needs_terminal_admin``,
``needs_root``). After EXIT or ERROR the agent closes the channel. Anything else from the
technician (an unknown type, a second OPEN, an oversized or malformed message) is answered
with ERROR ``protocol`` and ends the shell.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import struct
import termios
from dataclasses import dataclass

OPEN, DATA, RESIZE, EXIT, ERROR, OFFER = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
MAX_DATA = 64 * 1024
MAX_OPEN = 1024
MAX_DIMENSION = 1000
RUN_AS_CHOICES = ("user", "service")
TERM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}")


class ShellError(Exception):
    """The shell could not be run or ended abnormally; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ShellRefused(ShellError):
    """The agent refused the shell (raised on the technician side)."""


class ShellProtocolError(ShellError):
    """A message that does not follow the wire format."""

    def __init__(self, message: str) -> None:
        super().__init__("protocol", message)


@dataclass(frozen=True)
class OpenRequest:
    rows: int
    cols: int
    term: str
    run_as: str


@dataclass(frozen=True)
class ShellChoice:
    """One account the agent offers a shell as."""

    run_as: str
    account: str
    uid: int


@dataclass(frozen=True)
class ShellOffer:
    choices: tuple[ShellChoice, ...]
    default: str

    def get(self, run_as: str) -> ShellChoice | None:
        return next((c for c in self.choices if c.run_as == run_as), None)

    def describe(self) -> str:
        """``user (kari), service (root)``: for one-line messages."""
        return ", ".join(f"{c.run_as} ({c.account})" for c in self.choices) or "none"


# --- encoding ---------------------------------------------------------------------------


def encode_open(rows: int, cols: int, term: str, run_as: str) -> bytes:
    body = {"rows": rows, "cols": cols, "term": term, "run_as": run_as}
    return bytes([OPEN]) + json.dumps(body, separators=(",", ":")).encode()


def encode_offer(offer: ShellOffer) -> bytes:
    body = {
        "choices": [
            {"run_as": c.run_as, "account": c.account, "uid": c.uid} for c in offer.choices
        ],
        "default": offer.default,
    }
    return bytes([OFFER]) + json.dumps(body, separators=(",", ":")).encode()


def decode_offer(payload: bytes) -> ShellOffer:
    """The agent's OFFER (its payload); ShellProtocolError if it is not well formed."""
    if len(payload) > MAX_OPEN:
        raise ShellProtocolError("OFFER is too large")
    try:
        body = json.loads(payload.decode("utf-8"))
        choices = tuple(
            ShellChoice(str(c["run_as"]), str(c["account"])[:64], int(c["uid"]))
            for c in body["choices"]
        )
        default = str(body["default"])
    # RecursionError: JSON nested deeper than the interpreter's limit fits in MAX_OPEN;
    # OverflowError: a uid of 1e999 is a float infinity, which int() refuses.
    except (
        UnicodeDecodeError,
        ValueError,
        KeyError,
        TypeError,
        RecursionError,
        OverflowError,
    ) as exc:
        raise ShellProtocolError("OFFER is not well formed") from exc
    runs = [c.run_as for c in choices]
    if not choices or len(set(runs)) != len(runs) or not set(runs) <= set(RUN_AS_CHOICES):
        raise ShellProtocolError("OFFER must list distinct known choices")
    if default not in runs:
        raise ShellProtocolError("OFFER's default is not one of its choices")
    return ShellOffer(choices, default)


def encode_resize(rows: int, cols: int) -> bytes:
    return bytes([RESIZE]) + struct.pack("!HH", rows, cols)


def encode_exit(status: int) -> bytes:
    return bytes([EXIT]) + struct.pack("!i", status)


def encode_error(code: str, message: str) -> bytes:
    return bytes([ERROR]) + json.dumps({"code": code, "message": message}).encode()


def _dimension(value: object, name: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_DIMENSION:
        raise ShellProtocolError(f"{name} must be an integer 1..{MAX_DIMENSION}")
    return value


def decode_open(message: bytes) -> OpenRequest:
    if not message or message[0] != OPEN:
        raise ShellProtocolError("the first message must be OPEN")
    if len(message) > 1 + MAX_OPEN:
        raise ShellProtocolError("OPEN is too large")
    try:
        body = json.loads(message[1:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ShellProtocolError("OPEN is not a JSON object") from exc
    if not isinstance(body, dict) or set(body) != {"rows", "cols", "term", "run_as"}:
        raise ShellProtocolError("OPEN must hold exactly rows, cols, term, run_as")
    term = body["term"]
    if not isinstance(term, str) or not TERM_RE.fullmatch(term):
        raise ShellProtocolError("term is not a terminal name")
    if body["run_as"] not in RUN_AS_CHOICES:
        raise ShellProtocolError("run_as must be 'user' or 'service'")
    return OpenRequest(
        _dimension(body["rows"], "rows"), _dimension(body["cols"], "cols"), term, body["run_as"]
    )


def decode_resize(payload: bytes) -> tuple[int, int]:
    if len(payload) != 4:
        raise ShellProtocolError("RESIZE must carry 4 bytes")
    rows, cols = struct.unpack("!HH", payload)
    return _dimension(rows, "rows"), _dimension(cols, "cols")


# --- fd helpers -------------------------------------------------------------------------


async def wait_fd(fd: int, *, write: bool = False) -> None:
    """Wait until ``fd`` is readable (or writable) without blocking the event loop."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await wait_fd(fd, write=True)
            continue
        view = view[written:]


def set_winsize(fd: int, rows: int, cols: int) -> None:
    # The kernel sends SIGWINCH to the terminal's foreground process group itself when
    # TIOCSWINSZ changes the size, so no signal has to be sent by hand.
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def terminal_size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 24, 80
    rows = min(max(size.lines, 1), MAX_DIMENSION)
    cols = min(max(size.columns, 1), MAX_DIMENSION)
    return rows, cols


def decode_error(payload: bytes) -> tuple[str, str]:
    try:
        body = json.loads(payload.decode("utf-8"))
        return str(body["code"])[:64], str(body["message"])[:1000]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError):
        return "protocol", "malformed ERROR message from the agent"
