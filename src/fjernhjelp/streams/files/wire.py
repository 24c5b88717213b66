"""File transfer over one tunnel channel: get and put, resumable, checked by SHA-256.

Wire format. Every channel message is one message below; its first byte is the type, JSON
payloads are UTF-8 objects of at most 4 KiB:

=====  =======  ================  ===========================================================
type   name     direction         payload
=====  =======  ================  ===========================================================
0x01   REQUEST  client→agent      ``{"op": "get", "path": str}`` or
                                  ``{"op": "put", "path": str, "size": int, "sha256": hex}``
                                  and optionally ``"name": str, "overwrite": bool``
0x02   OFFER    agent→client      get only: ``{"size": int, "sha256": hex}``
0x03   RESUME   receiver→sender   ``{"offset": int}``: the receiver already holds the first
                                  ``offset`` bytes (0 <= offset <= size); send the rest
0x04   DATA     sender→receiver   raw file bytes, 1..65536 per message, in order
0x05   END      sender→receiver   empty: every byte after ``offset`` has been sent
0x06   DONE     receiver→sender   ``{"size": int, "sha256": hex}``: verified and in place
                                  (put: also ``"path"``, where the agent put it)
0x07   ERROR    either way        ``{"code": str, "message": str}``; the sender then closes
                                  (``exists`` also carries ``"path"``)
=====  =======  ================  ===========================================================

get: REQUEST → OFFER → RESUME → DATA* → END → DONE.  put: REQUEST → RESUME → DATA* → END →
DONE. A channel serves one request after another; an ERROR (a refusal, a checksum
mismatch, a malformed message) ends the channel, so a half-done transfer can never be
mistaken for the next one.

Resuming: the receiver writes into a partial file next to the destination (see
``place``: named after the hash, created with ``O_EXCL``, checked by descriptor) and
keeps it if the channel drops. A later transfer of the same content (same hash) to the
same folder continues from its length. The receiver hashes the whole file, the kept part
included, and renames it into place only if the hash and size match what the sender
declared; on a mismatch the partial file is deleted and the transfer fails.

Disk reads and writes of one 64 KiB chunk run on the event loop: they hit the page cache
and take microseconds, less than handing them to a thread would cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable
from typing import Any

from fjernhjelp.streams.files import place as fileplace
from fjernhjelp.streams.files.roots import PathRefused
from fjernhjelp.tunnel.channel import Channel, ChannelClosed

REQUEST, OFFER, RESUME, DATA, END, DONE, ERROR = range(1, 8)
CHUNK = 64 * 1024
MAX_JSON = 4096
MAX_SIZE = 1 << 40  # what a client accepts from an agent's OFFER: 1 TiB
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HASH_BLOCK = 1024 * 1024

Progress = Callable[[int, int], None]


class FileTransferError(Exception):
    """A transfer failed; ``code`` is machine-readable, ``message`` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TransferRefused(FileTransferError):
    """The other side refused the transfer (path, policy, space)."""


class FileExists(TransferRefused):
    """The target exists and the request did not say ``overwrite``; ``path`` is the
    agent's full name for it, to ask the user about."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__("exists", message)
        self.path = path


class ChecksumMismatch(FileTransferError):
    """What arrived does not hash to what was declared; the partial file was deleted."""

    def __init__(self, message: str = "the SHA-256 of what arrived does not match") -> None:
        super().__init__("checksum_mismatch", message)


class FileProtocolError(FileTransferError):
    def __init__(self, message: str) -> None:
        super().__init__("protocol", message)


class TransferInterrupted(FileTransferError):
    """The channel ended mid-transfer; ``kept`` bytes are kept for a later resume."""

    def __init__(self, kept: int, reason: str) -> None:
        super().__init__("interrupted", f"channel closed ({reason}); {kept} bytes kept")
        self.kept = kept


# --- messages ---------------------------------------------------------------------------


def encode(kind: int, body: dict[str, Any] | None = None) -> bytes:
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    return bytes([kind]) + payload


def json_body(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_JSON:
        raise FileProtocolError("control message over 4 KiB")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the interpreter's limit fits in 4 KiB.
        raise FileProtocolError("control message is not JSON") from exc
    if not isinstance(body, dict):
        raise FileProtocolError("control message is not a JSON object")
    return body


def int_field(body: dict[str, Any], key: str, upper: int) -> int:
    value = body.get(key)
    if type(value) is not int or not 0 <= value <= upper:
        raise FileProtocolError(f"{key} must be an integer 0..{upper}")
    return value


def sha_field(body: dict[str, Any]) -> str:
    value = body.get("sha256")
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise FileProtocolError("sha256 must be 64 lowercase hex digits")
    return value


async def expect(channel: Channel, *kinds: int) -> tuple[int, bytes]:
    """The next message, which must be one of ``kinds``; an ERROR from the peer raises."""
    message = await channel.recv()
    if not message:
        raise FileProtocolError("empty message")
    kind, payload = message[0], message[1:]
    if kind == ERROR and ERROR not in kinds:
        body = json_body(payload)
        code = str(body.get("code", "error"))[:64]
        text = str(body.get("message", ""))[:1000]
        if code == "checksum_mismatch":
            raise ChecksumMismatch(text)
        if code == "exists" and isinstance(body.get("path"), str):
            raise FileExists(body["path"][:MAX_JSON], text)
        raise TransferRefused(code, text)
    if kind not in kinds:
        raise FileProtocolError(f"unexpected message type {kind:#04x}")
    if kind == DATA and not 1 <= len(payload) <= CHUNK:
        raise FileProtocolError(f"DATA must carry 1..{CHUNK} bytes")
    if kind == END and payload:
        raise FileProtocolError("END carries nothing")
    return kind, payload


async def send_error(channel: Channel, code: str, message: str, **extra: str) -> None:
    with contextlib.suppress(ChannelClosed):
        await channel.send(encode(ERROR, {"code": code, "message": message, **extra}))
    await channel.close(code)


def hash_prefix(fd: int, length: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    done = 0
    while done < length:
        block = os.pread(fd, min(_HASH_BLOCK, length - done), done)
        if not block:
            raise OSError("file shrank while it was read")
        digest.update(block)
        done += len(block)
    return digest


# --- the receiving and sending halves, shared by agent and technician ----------------


async def _receive_into(
    channel: Channel,
    fd: int,
    *,
    offset: int,
    size: int,
    digest: hashlib._Hash,
    progress: Progress | None,
) -> int:
    """Write DATA until END at ``offset``; returns the final length. fd stays open."""
    position = offset
    os.ftruncate(fd, offset)
    while True:
        try:
            kind, payload = await expect(channel, DATA, END)
        except ChannelClosed as exc:
            raise TransferInterrupted(position, exc.reason) from exc
        if kind == END:
            return position
        if position + len(payload) > size:
            raise FileProtocolError("more data than the declared size")
        os.pwrite(fd, payload, position)
        digest.update(payload)
        position += len(payload)
        if progress is not None:
            progress(position, size)


async def send_from(
    channel: Channel, fd: int, *, offset: int, size: int, progress: Progress | None
) -> None:
    position = offset
    while position < size:
        chunk = os.pread(fd, min(CHUNK, size - position), position)
        if not chunk:
            raise FileTransferError("changed", "the file shrank while it was sent")
        await channel.send(bytes([DATA]) + chunk)
        position += len(chunk)
        if progress is not None:
            progress(position, size)
    await channel.send(bytes([END]))


async def receive_file(
    channel: Channel,
    dir_fd: int,
    name: str,
    *,
    size: int,
    sha256: str,
    progress: Progress | None,
    replace: bool = True,
    before_place: Callable[[int], None] | None = None,
) -> int:
    """RESUME, receive, verify, put in place; returns the offset resumed from."""
    partial = fileplace.open_partial(dir_fd, sha256)
    try:
        offset = min(os.fstat(partial.fd).st_size, size)
        digest = await asyncio.to_thread(hash_prefix, partial.fd, offset)
        vfs = os.fstatvfs(partial.fd)
        if vfs.f_bavail * vfs.f_frsize < size - offset:
            raise PathRefused("no_space", "not enough free space for the file")
        await channel.send(encode(RESUME, {"offset": offset}))
        if progress is not None:
            progress(offset, size)
        try:
            length = await _receive_into(
                channel, partial.fd, offset=offset, size=size, digest=digest, progress=progress
            )
        except FileProtocolError:
            fileplace.discard(dir_fd, partial)
            raise
        if length != size or digest.hexdigest() != sha256:
            fileplace.discard(dir_fd, partial)
            raise ChecksumMismatch()
        if before_place is not None:
            before_place(partial.fd)
        os.fsync(partial.fd)
        fileplace.place(partial, dir_fd, name, replace=replace)
        return offset
    finally:
        os.close(partial.fd)
