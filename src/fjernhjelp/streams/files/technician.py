"""The file client, technician side: copies a file from or to the agent over one
channel (``fjernhjelp connect --get/--put``); the wire format is in ``wire``."""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from fjernhjelp.streams.files.wire import (
    DONE,
    MAX_JSON,
    MAX_SIZE,
    OFFER,
    REQUEST,
    RESUME,
    ChecksumMismatch,
    FileProtocolError,
    FileTransferError,
    Progress,
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
class TransferResult:
    """A finished, verified transfer as the client sees it."""

    path: str
    size: int
    sha256: str
    resumed_from: int


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
        await channel.send(encode(REQUEST, {"op": "get", "path": remote_path}))
        _, payload = await expect(channel, OFFER)
        offer = json_body(payload)
        size, sha256 = int_field(offer, "size", MAX_SIZE), sha_field(offer)
        parent = os.open(local.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # The file stays mode 0600: what a technician fetches may hold health data.
            offset = await receive_file(
                channel, parent, local.name, size=size, sha256=sha256, progress=progress
            )
        finally:
            os.close(parent)
        await channel.send(encode(DONE, {"size": size, "sha256": sha256}))
    except (ChecksumMismatch, FileProtocolError) as exc:
        await send_error(channel, exc.code, exc.message)
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
        sha256 = (await asyncio.to_thread(hash_prefix, fd, size)).hexdigest()
        request = {
            "op": "put",
            "path": remote_path,
            "size": size,
            "sha256": sha256,
            "name": Path(local_path).name,
            "overwrite": overwrite,
        }
        try:
            await channel.send(encode(REQUEST, request))
            _, payload = await expect(channel, RESUME)
            offset = int_field(json_body(payload), "offset", size)
            if progress is not None:
                progress(offset, size)
            await send_from(channel, fd, offset=offset, size=size, progress=progress)
            _, payload = await expect(channel, DONE)
        except FileProtocolError as exc:
            await send_error(channel, exc.code, exc.message)
            raise
        except ChannelClosed as exc:
            raise TransferInterrupted(0, exc.reason) from exc
        done = json_body(payload)
        if done.get("size") != size or done.get("sha256") != sha256:
            raise FileProtocolError("the agent confirmed something else than was sent")
        placed = done.get("path")
    finally:
        os.close(fd)
    shown = placed[:MAX_JSON] if isinstance(placed, str) and placed else remote_path
    return TransferResult(shown, size, sha256, offset)
