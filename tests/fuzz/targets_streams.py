"""Fuzz targets for the services' wire formats inside the tunnel: the RFB server's
client messages, the shell, file transfer and chat (docs/tunnel.md §7.2)."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from fjernhjelp.streams.chat.wire import ChatRefusal, parse_message
from fjernhjelp.streams.desktop import extclip, rfb
from fjernhjelp.streams.desktop.pixels import NATIVE
from fjernhjelp.streams.desktop.transport import StreamClosed
from fjernhjelp.streams.files import wire as files
from fjernhjelp.streams.files.roots import FilePolicy
from fjernhjelp.streams.files.service import serve_files
from fjernhjelp.streams.shell import wire as shell
from fjernhjelp.tunnel.channel import ChannelClosed
from tests.fuzz.harness import LOOP, Target, drive, framed, refuses, same

# --- RFB (the agent's VNC server side) ------------------------------------------------------


class _Bytes:
    """A ByteStream over the input: reads past its end are the viewer going away."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0
        self.written = 0

    async def read_exactly(self, n: int) -> bytes:
        if self._at + n > len(self._data):
            raise StreamClosed("end of input")
        chunk = self._data[self._at : self._at + n]
        self._at += n
        return chunk

    async def write(self, data: bytes) -> None:
        self.written += len(data)

    async def close(self) -> None:
        pass


def rfb_client(data: bytes) -> None:
    """A viewer's bytes after the handshake: messages until the input ends
    (StreamClosed) or ProtocolError; the extended clipboard's caps and provide parse or
    are BadExtendedClipboard. Every read is bounded before it is made."""
    stream = _Bytes(data)
    while True:
        try:
            message = drive(rfb.read_message(stream))
        except (rfb.ProtocolError, StreamClosed):
            return
        if isinstance(message, extclip.ExtendedMessage):
            for parse in (extclip.parse_caps, extclip.parse_provide):
                text = refuses(lambda p=parse, m=message: p(m), extclip.BadExtendedClipboard)
                if isinstance(text, str):
                    assert len(text.encode("utf-8", "surrogatepass")) <= 3 * extclip.MAX_TEXT
        elif isinstance(message, rfb.SetEncodings):
            assert len(message.encodings) <= rfb.MAX_ENCODINGS
        elif isinstance(message, rfb.CutText):
            assert len(message.text) <= rfb.MAX_CUT_TEXT


def rfb_handshake(data: bytes) -> None:
    """A viewer's side of the RFB handshake: done, ProtocolError or StreamClosed."""
    stream = _Bytes(data)
    refuses(lambda: drive(rfb.handshake(stream, 1920, 1080, "pc")), rfb.ProtocolError, StreamClosed)


def _rfb_seeds() -> Iterable[bytes]:
    yield b"\x00\x00\x00\x00" + NATIVE.to_bytes()
    yield b"\x02\x00\x00\x03" + struct.pack(">iii", 7, -239, extclip.PSEUDO_ENCODING)
    yield b"\x03\x01" + struct.pack(">HHHH", 0, 0, 1920, 1080)
    yield b"\x04\x01\x00\x00" + struct.pack(">I", 0x61) + b"\x05\x01" + struct.pack(">HH", 5, 6)
    yield b"\x06\x00\x00\x00" + struct.pack(">i", 5) + b"hello"
    caps = struct.pack(">I", extclip.CAPS | 1) + struct.pack(">I", 1 << 20)
    yield b"\x06\x00\x00\x00" + struct.pack(">i", -len(caps)) + caps
    text = zlib.compress(struct.pack(">I", 6) + b"hei\r\n\0")
    provide = struct.pack(">I", extclip.PROVIDE | 1) + text
    yield b"\x06\x00\x00\x00" + struct.pack(">i", -len(provide)) + provide
    yield b"\xfb\x00" + struct.pack(">HHBB", 800, 600, 1, 0) + bytes(16)


def _rfb_handshake_seeds() -> Iterable[bytes]:
    yield b"RFB 003.008\n\x01\x01"
    yield b"RFB 003.003\n\x00"


# --- shell ------------------------------------------------------------------------------------


def _messages(data: bytes) -> list[bytes]:
    """The input as channel messages: u16 length, then that many bytes, repeated."""
    out, at = [], 0
    while at + 2 <= len(data):
        (length,) = struct.unpack_from(">H", data, at)
        out.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    return out


def shell_agent(data: bytes) -> None:
    """The technician's messages as the agent's shell service reads them: OPEN first,
    then DATA and RESIZE (``service._pump_input``); anything else ShellProtocolError."""
    messages = _messages(data)
    if not messages:
        return
    request = refuses(lambda: shell.decode_open(messages[0]), shell.ShellProtocolError)
    if request is None:
        return
    assert 1 <= request.rows <= 1000 and 1 <= request.cols <= 1000
    assert request.run_as in shell.RUN_AS_CHOICES
    for message in messages[1:]:
        if not message:
            return
        if message[0] == shell.DATA:
            if len(message) - 1 > shell.MAX_DATA:
                return
        elif message[0] == shell.RESIZE:
            size = refuses(lambda m=message: shell.decode_resize(m[1:]), shell.ShellProtocolError)
            if size is None:
                return
        else:
            return


def shell_technician(data: bytes) -> None:
    """The agent's messages as the technician's client reads them: OFFER (or ERROR)
    first, then DATA, EXIT or ERROR."""
    for message in _messages(data) or [data]:
        if not message:
            continue
        kind, payload = message[0], message[1:]
        if kind == shell.OFFER:
            offer = refuses(lambda p=payload: shell.decode_offer(p), shell.ShellProtocolError)
            if offer is not None:
                assert offer.default in {c.run_as for c in offer.choices}
                offer.describe()
        elif kind == shell.ERROR:
            code, text = shell.decode_error(payload)
            assert len(code) <= 64 and len(text) <= 1000
        elif kind == shell.EXIT and len(payload) == 4:
            struct.unpack("!i", payload)


def _shell_agent_seeds() -> Iterable[bytes]:
    def framed(*messages: bytes) -> bytes:
        return b"".join(struct.pack(">H", len(m)) + m for m in messages)

    yield framed(
        shell.encode_open(24, 80, "xterm-256color", "user"),
        bytes([shell.DATA]) + b"ls\n",
        shell.encode_resize(50, 132),
    )


def _shell_technician_seeds() -> Iterable[bytes]:
    offer = shell.ShellOffer(
        (shell.ShellChoice("user", "kari", 1000), shell.ShellChoice("service", "root", 0)),
        "user",
    )
    for message in (
        shell.encode_offer(offer),
        shell.encode_error("needs_root", "nei"),
        shell.encode_exit(-9),
    ):
        yield struct.pack(">H", len(message)) + message


# --- file transfer -------------------------------------------------------------------------


class _Script:
    """A Channel that gives the scripted messages, then reports the channel closed."""

    def __init__(self, messages: list[bytes]) -> None:
        self._messages = list(messages)
        self.sent: list[bytes] = []
        self.closed_with: str | None = None

    async def recv(self) -> bytes:
        if not self._messages:
            raise ChannelClosed("end of script")
        return self._messages.pop(0)

    async def send(self, message: bytes) -> None:
        if self.closed_with is not None:
            raise ChannelClosed("closed")
        self.sent.append(message)

    async def close(self, reason: str = "closed") -> None:
        self.closed_with = reason


@cache
def _files_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="fjernhjelp-fuzz-files-")).resolve()
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


_CONTENT = b"innhold\n"


def _reset_root() -> Path:
    """The folder as each input finds it: a.txt and an empty sub/ (cheap when the last
    input changed nothing, which is most of them)."""
    root = _files_root()
    a, sub = root / "a.txt", root / "sub"
    with contextlib.suppress(OSError):
        if (
            sorted(p.name for p in root.iterdir()) == ["a.txt", "sub"]
            and not any(sub.iterdir())
            and a.read_bytes() == _CONTENT
            and not a.is_symlink()
        ):
            return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    a.write_bytes(_CONTENT)
    sub.mkdir()
    return root


def files_agent(data: bytes) -> None:
    """A technician's messages to the agent's file service (get and put against a real
    folder): it serves, or answers ERROR and ends the channel; nothing escapes it, and
    nothing lands outside the folder."""
    root = _reset_root()
    policy = FilePolicy.create([root], max_size=1 << 20)
    channel = _Script(_messages(data))
    LOOP.run(serve_files(channel, policy))
    for message in channel.sent:
        assert message and 1 <= message[0] <= 7
        if message[0] == files.ERROR:
            body = json.loads(message[1:])
            assert isinstance(body["code"], str)
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root)


def files_technician(data: bytes) -> None:
    """One message from the agent as the client reads it (``wire.expect``): its kind, or
    FileProtocolError / TransferRefused (ChecksumMismatch, FileExists)."""
    channel = _Script([data])
    result = refuses(
        lambda: drive(files.expect(channel, files.OFFER, files.RESUME, files.DATA, files.DONE)),
        files.FileTransferError,
        ChannelClosed,
    )
    if result is not None and result[0] != files.DATA:
        body = refuses(lambda: files.json_body(result[1]), files.FileProtocolError)
        if body is not None:
            refuses(lambda: files.int_field(body, "size", files.MAX_SIZE), files.FileProtocolError)
            refuses(lambda: files.sha_field(body), files.FileProtocolError)


def _files_agent_seeds() -> Iterable[bytes]:
    def framed(*messages: bytes) -> bytes:
        return b"".join(struct.pack(">H", len(m)) + m for m in messages)

    digest = hashlib.sha256(_CONTENT).hexdigest()
    yield framed(
        files.encode(files.REQUEST, {"op": "get", "path": "a.txt"}),
        files.encode(files.RESUME, {"offset": 0}),
        files.encode(files.DONE, {"size": len(_CONTENT), "sha256": digest}),
    )
    body = b"ny fil\n"
    yield framed(
        files.encode(
            files.REQUEST,
            {
                "op": "put",
                "path": "sub",
                "size": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "name": "b.txt",
            },
        ),
        bytes([files.DATA]) + body,
        bytes([files.END]),
    )


def _files_technician_seeds() -> Iterable[bytes]:
    yield files.encode(files.OFFER, {"size": 8, "sha256": "0" * 64})
    yield files.encode(files.ERROR, {"code": "exists", "message": "m", "path": "/x"})
    yield files.encode(files.DONE, {"size": 8, "sha256": "0" * 64, "path": "/x"})


# --- chat ------------------------------------------------------------------------------------


def chat(data: bytes) -> None:
    """A chat message from the technician: its text, or ChatRefusal."""
    text = refuses(lambda: parse_message(data), ChatRefusal)
    if text is not None:
        assert text.strip() and len(text) <= 4000


def _chat_seeds() -> Iterable[bytes]:
    yield json.dumps({"text": "Hei, nå ser jeg skjermen", "at": "2026-01-01T10:00:00Z"}).encode()


TARGETS = [
    Target("rfb-client", rfb_client, _rfb_seeds, max_len=8192),
    Target("rfb-handshake", rfb_handshake, _rfb_handshake_seeds, max_len=64),
    Target(
        "shell-agent",
        shell_agent,
        _shell_agent_seeds,
        json_input=lambda p: framed(bytes([shell.OPEN]) + p),
    ),
    Target(
        "shell-technician",
        shell_technician,
        _shell_technician_seeds,
        json_input=lambda p: framed(bytes([shell.OFFER]) + p, bytes([shell.ERROR]) + p),
    ),
    Target(
        "files-agent",
        files_agent,
        _files_agent_seeds,
        max_len=8192,
        json_input=lambda p: framed(bytes([files.REQUEST]) + p),
    ),
    Target(
        "files-technician",
        files_technician,
        _files_technician_seeds,
        max_len=8192,
        json_input=lambda p: bytes([files.OFFER]) + p,
    ),
    Target("chat", chat, _chat_seeds, max_len=30_000, json_input=same),
]
