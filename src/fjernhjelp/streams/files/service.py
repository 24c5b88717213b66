"""The file service, agent side: serves get and put requests on one channel within a
``FilePolicy`` (``roots``); the wire format is in ``wire``.

put: a ``path`` naming an existing folder on the agent means "in that folder, under the
file's own ``name``" (a folder without a name is refused). An existing file is replaced
only with ``"overwrite": true``; otherwise the agent answers ERROR ``exists`` with the
full ``path`` before any data moves, the client asks its user, and a new request with
``overwrite`` follows on a new channel. Nothing is ever overwritten without it, even a
file that appears while the data is on its way.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fjernhjelp.streams.files import roots as fileroots
from fjernhjelp.streams.files.roots import FilePolicy, PathRefused, Target
from fjernhjelp.streams.files.wire import (
    DONE,
    OFFER,
    REQUEST,
    RESUME,
    FileProtocolError,
    FileTransferError,
    TransferInterrupted,
    encode,
    expect,
    hash_prefix,
    int_field,
    json_body,
    receive_file,
    send_error,
    send_from,
    sha_field,
)
from fjernhjelp.tunnel.channel import Channel, ChannelClosed


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
            _, payload = await expect(channel, REQUEST)
            body = json_body(payload)
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
            await send_error(channel, *_why(exc), **extra)
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
        sha256 = (await asyncio.to_thread(hash_prefix, fd, size)).hexdigest()
        await channel.send(encode(OFFER, {"size": size, "sha256": sha256}))
        _, payload = await expect(channel, RESUME)
        offset = int_field(json_body(payload), "offset", size)
        await send_from(channel, fd, offset=offset, size=size, progress=None)
    finally:
        os.close(fd)
    _, payload = await expect(channel, DONE)
    done = json_body(payload)
    if int_field(done, "size", size) != size or sha_field(done) != sha256:
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
    sha256 = sha_field(body)
    located = fileroots.locate(policy, body["path"], folder_ok=True)
    if size > policy.max_size:
        raise PathRefused("too_large", f"files over {policy.max_size} bytes are refused")
    folder, target = fileroots.open_destination(located, body.get("name"))
    try:
        existing = _existing(folder, target)
        if existing is not None and not overwrite:
            raise _Exists(target.path)
        try:
            offset = await receive_file(
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
    await channel.send(encode(DONE, {"size": size, "sha256": sha256, "path": target.path}))
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
