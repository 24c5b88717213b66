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

put: a ``path`` naming an existing folder on the agent means "in that folder, under the
file's own ``name``" (a folder without a name is refused). An existing file is replaced
only with ``"overwrite": true``; otherwise the agent answers ERROR ``exists`` with the
full ``path`` before any data moves, the client asks its user, and a new request with
``overwrite`` follows on a new channel. Nothing is ever overwritten without it, even a
file that appears while the data is on its way.

Resuming: the receiver writes into a partial file next to the destination (see
``fileplace``: named after the hash, created with ``O_EXCL``, checked by descriptor) and
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
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fjernhjelp.streams.files import place as fileplace
from fjernhjelp.streams.files import roots as fileroots
from fjernhjelp.streams.files.roots import FilePolicy, PathRefused, Target
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


@dataclass(frozen=True)
class TransferResult:
    """A finished, verified transfer as the client sees it."""

    path: str
    size: int
    sha256: str
    resumed_from: int


@dataclass(frozen=True)
class FileTransferRecord:
    """A completed transfer, for the agent's audit ("files moved")."""

    direction: Literal["get", "put"]
    path: str
    name: str
    size: int
    sha256: str
    resumed_from: int


@dataclass(frozen=True)
class FileRefusal:
    """A refused or failed request, for the agent's audit."""

    op: str | None
    path: str | None
    code: str
    message: str


# --- messages ---------------------------------------------------------------------------


def _encode(kind: int, body: dict[str, Any] | None = None) -> bytes:
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    return bytes([kind]) + payload


def _json(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_JSON:
        raise FileProtocolError("control message over 4 KiB")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FileProtocolError("control message is not JSON") from exc
    if not isinstance(body, dict):
        raise FileProtocolError("control message is not a JSON object")
    return body


def _int(body: dict[str, Any], key: str, upper: int) -> int:
    value = body.get(key)
    if type(value) is not int or not 0 <= value <= upper:
        raise FileProtocolError(f"{key} must be an integer 0..{upper}")
    return value


def _sha(body: dict[str, Any]) -> str:
    value = body.get("sha256")
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise FileProtocolError("sha256 must be 64 lowercase hex digits")
    return value


async def _expect(channel: Channel, *kinds: int) -> tuple[int, bytes]:
    """The next message, which must be one of ``kinds``; an ERROR from the peer raises."""
    message = await channel.recv()
    if not message:
        raise FileProtocolError("empty message")
    kind, payload = message[0], message[1:]
    if kind == ERROR and ERROR not in kinds:
        body = _json(payload)
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


async def _send_error(channel: Channel, code: str, message: str, **extra: str) -> None:
    with contextlib.suppress(ChannelClosed):
        await channel.send(_encode(ERROR, {"code": code, "message": message, **extra}))
    await channel.close(code)


def _hash_prefix(fd: int, length: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    done = 0
    while done < length:
        block = os.pread(fd, min(_HASH_BLOCK, length - done), done)
        if not block:
            raise OSError("file shrank while it was read")
        digest.update(block)
        done += len(block)
    return digest


# --- the receiving and sending halves, shared by agent and client -----------------------


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
            kind, payload = await _expect(channel, DATA, END)
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


async def _send_from(
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


async def _receive_file(
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
        digest = await asyncio.to_thread(_hash_prefix, partial.fd, offset)
        vfs = os.fstatvfs(partial.fd)
        if vfs.f_bavail * vfs.f_frsize < size - offset:
            raise PathRefused("no_space", "not enough free space for the file")
        await channel.send(_encode(RESUME, {"offset": offset}))
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


# --- agent side -------------------------------------------------------------------------


async def serve_files(
    channel: Channel,
    policy: FilePolicy,
    *,
    on_transfer: Callable[[FileTransferRecord], None] | None = None,
    on_refusal: Callable[[FileRefusal], None] | None = None,
) -> None:
    """Serve get and put requests on ``channel`` until it closes or a request fails.

    ``on_transfer`` is called for each verified transfer (for the audit of files moved),
    ``on_refusal`` for each refused or failed one; both must return quickly.
    """
    while True:
        op: str | None = None
        raw_path: object = None
        try:
            _, payload = await _expect(channel, REQUEST)
            body = _json(payload)
            op, raw_path = body.get("op"), body.get("path")
            if op == "get":
                record = await _serve_get(channel, policy, raw_path)
            elif op == "put":
                record = await _serve_put(channel, policy, body)
            else:
                raise FileProtocolError("op must be 'get' or 'put'")
        except (ChannelClosed, TransferInterrupted):
            return
        except (PathRefused, FileTransferError) as exc:
            if on_refusal is not None:
                shown = raw_path if isinstance(raw_path, str) else None
                on_refusal(FileRefusal(op if isinstance(op, str) else None, shown, *_why(exc)))
            extra = {"path": exc.path} if isinstance(exc, _Exists) else {}
            await _send_error(channel, *_why(exc), **extra)
            return
        if on_transfer is not None:
            on_transfer(record)


def _why(exc: PathRefused | FileTransferError) -> tuple[str, str]:
    return exc.code, exc.message


class _Exists(PathRefused):
    def __init__(self, path: str) -> None:
        super().__init__("exists", f"{path} already exists")
        self.path = path


_PUT_FIELDS = {"op", "path", "size", "sha256"}
_PUT_OPTIONAL = {"name", "overwrite"}


async def _serve_get(channel: Channel, policy: FilePolicy, raw_path: object) -> FileTransferRecord:
    if not policy.allow_get:
        raise PathRefused("not_allowed", "this session may not copy files from the machine")
    target = fileroots.locate(policy, raw_path)
    fd = fileroots.open_for_read(target)
    try:
        size = os.fstat(fd).st_size
        sha256 = (await asyncio.to_thread(_hash_prefix, fd, size)).hexdigest()
        await channel.send(_encode(OFFER, {"size": size, "sha256": sha256}))
        _, payload = await _expect(channel, RESUME)
        offset = _int(_json(payload), "offset", size)
        await _send_from(channel, fd, offset=offset, size=size, progress=None)
    finally:
        os.close(fd)
    _, payload = await _expect(channel, DONE)
    done = _json(payload)
    if _int(done, "size", size) != size or _sha(done) != sha256:
        raise FileProtocolError("DONE does not match what was sent")
    return FileTransferRecord("get", target.path, target.name, size, sha256, offset)


async def _serve_put(
    channel: Channel, policy: FilePolicy, body: dict[str, Any]
) -> FileTransferRecord:
    if not policy.allow_put:
        raise PathRefused("not_allowed", "this session may not copy files to the machine")
    if not _PUT_FIELDS <= set(body) <= _PUT_FIELDS | _PUT_OPTIONAL:
        raise FileProtocolError("put holds op, path, size, sha256 and optionally name, overwrite")
    overwrite = body.get("overwrite", False)
    if type(overwrite) is not bool:
        raise FileProtocolError("overwrite must be true or false")
    size = body["size"]
    if type(size) is not int or size < 0:
        raise FileProtocolError("size must be a non-negative integer")
    sha256 = _sha(body)
    located = fileroots.locate(policy, body["path"], folder_ok=True)
    if size > policy.max_size:
        raise PathRefused("too_large", f"files over {policy.max_size} bytes are refused")
    folder, target = fileroots.open_destination(located, body.get("name"))
    try:
        existing = _existing(folder, target)
        if existing is not None and not overwrite:
            raise _Exists(target.path)
        try:
            offset = await _receive_file(
                channel,
                folder,
                target.name,
                size=size,
                sha256=sha256,
                progress=None,
                replace=overwrite,
                before_place=lambda fd: _settle(fd, folder, existing),
            )
        except PathRefused as exc:
            # The file appeared while the data was on its way: still not overwritten.
            raise (_Exists(target.path) if exc.code == "exists" else exc) from exc
    finally:
        os.close(folder)
    await channel.send(_encode(DONE, {"size": size, "sha256": sha256, "path": target.path}))
    return FileTransferRecord("put", target.path, target.name, size, sha256, offset)


def _existing(parent: int, target: Target) -> os.stat_result | None:
    try:
        st = os.stat(target.name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    fileroots.check_plain_file(st, target.name, reading=False)
    return st


def _settle(fd: int, parent: int, replaced: os.stat_result | None) -> None:
    """Give the new file the mode and owner of the one it replaces, or of its folder."""
    os.fchmod(fd, stat.S_IMODE(replaced.st_mode) if replaced else 0o644)
    if os.geteuid() == 0:
        # Written by a root agent into a user's folder: the file belongs to that user.
        owner = replaced or os.fstat(parent)
        os.fchown(fd, owner.st_uid, owner.st_gid)


# --- technician side --------------------------------------------------------------------


async def get_file(
    channel: Channel,
    remote_path: str,
    local_path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> TransferResult:
    """Copy ``remote_path`` on the agent to ``local_path``, resuming a kept partial file.

    ``progress(done, total)`` is called as bytes arrive (first with what was kept).
    Raises TransferRefused, ChecksumMismatch, FileProtocolError or TransferInterrupted.
    """
    local = Path(local_path)
    try:
        await channel.send(_encode(REQUEST, {"op": "get", "path": remote_path}))
        _, payload = await _expect(channel, OFFER)
        offer = _json(payload)
        size, sha256 = _int(offer, "size", MAX_SIZE), _sha(offer)
        parent = os.open(local.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # The file stays mode 0600: what a technician fetches may hold health data.
            offset = await _receive_file(
                channel, parent, local.name, size=size, sha256=sha256, progress=progress
            )
        finally:
            os.close(parent)
        await channel.send(_encode(DONE, {"size": size, "sha256": sha256}))
    except (ChecksumMismatch, FileProtocolError) as exc:
        await _send_error(channel, exc.code, exc.message)
        raise
    except ChannelClosed as exc:
        raise TransferInterrupted(0, exc.reason) from exc
    return TransferResult(str(local), size, sha256, offset)


async def put_file(
    channel: Channel,
    local_path: str | os.PathLike[str],
    remote_path: str,
    *,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> TransferResult:
    """Copy ``local_path`` to ``remote_path`` on the agent, continuing a kept partial upload.

    A ``remote_path`` naming a folder puts the file in it under its own name. An existing
    file raises FileExists (with the agent's full path) unless ``overwrite``; the channel
    has then ended, so asking again takes a new one."""
    fd = os.open(local_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileTransferError("not_a_file", f"{local_path} is not a plain file")
        size = st.st_size
        sha256 = (await asyncio.to_thread(_hash_prefix, fd, size)).hexdigest()
        request = {
            "op": "put",
            "path": remote_path,
            "size": size,
            "sha256": sha256,
            "name": Path(local_path).name,
            "overwrite": overwrite,
        }
        try:
            await channel.send(_encode(REQUEST, request))
            _, payload = await _expect(channel, RESUME)
            offset = _int(_json(payload), "offset", size)
            if progress is not None:
                progress(offset, size)
            await _send_from(channel, fd, offset=offset, size=size, progress=progress)
            _, payload = await _expect(channel, DONE)
        except FileProtocolError as exc:
            await _send_error(channel, exc.code, exc.message)
            raise
        except ChannelClosed as exc:
            raise TransferInterrupted(0, exc.reason) from exc
        done = _json(payload)
        if done.get("size") != size or done.get("sha256") != sha256:
            raise FileProtocolError("the agent confirmed something else than was sent")
        placed = done.get("path")
    finally:
        os.close(fd)
    shown = placed[:MAX_JSON] if isinstance(placed, str) and placed else remote_path
    return TransferResult(shown, size, sha256, offset)
