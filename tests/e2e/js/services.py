"""Agent services for the panel tests: the agent's own shell and file services when this
tree has them (branch agentsvc: ``fjernhjelp.streams.shell.service``/``files``), else minimal
stand-ins in this file that speak the same wire formats, so the page is tested either way.
``REAL_SHELL`` and ``REAL_FILES`` say which ran."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from fjernhjelp.tunnel import Channel, ChannelClosed, StreamRequest

Service = Callable[[Channel, StreamRequest], Awaitable[None]]

try:
    from fjernhjelp.streams.shell.service import ShellAccount, serve_shell
except ImportError:  # not merged into this branch yet
    serve_shell = None  # type: ignore[assignment]
try:
    from fjernhjelp.streams.files.roots import FilePolicy
    from fjernhjelp.streams.files.service import serve_files
except ImportError:
    serve_files = None  # type: ignore[assignment]

REAL_SHELL = serve_shell is not None
REAL_FILES = serve_files is not None


@functools.cache
def _own_home() -> str:
    """A home of the shells' own, as the agent's service user has: the login shell reads
    no start-up files of the account running the tests (root's runs ``pyenv init``,
    whose rehash waits 60 s on a lock a shell killed mid-rehash left behind)."""
    home = tempfile.mkdtemp(prefix="fjernhjelp-shell-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def shell_service() -> Service:
    if serve_shell is not None:
        account = dataclasses.replace(ShellAccount.current(), home=_own_home())

        async def real(channel: Channel, request: StreamRequest) -> None:
            # admin: the tests run as root, and a shell as root needs terminal_admin.
            await serve_shell(channel, {"user": account}, admin=True)

        return real
    return _stand_in_shell


def files_service(root: Path) -> Service:
    if serve_files is not None:
        policy = FilePolicy.create([root])

        async def real(channel: Channel, request: StreamRequest) -> None:
            await serve_files(channel, policy)

        return real
    return lambda channel, request: _stand_in_files(channel, root)


# --- stand-ins: the wire formats of streams/shell/wire.py and streams/files/wire.py ---


async def _stand_in_shell(channel: Channel, request: StreamRequest) -> None:
    offer = {"choices": [{"run_as": "user", "account": "test", "uid": os.getuid()}]}
    await channel.send(bytes([0x06]) + json.dumps({**offer, "default": "user"}).encode())
    first = await channel.recv()
    assert first[0] == 0x01, "the first shell message must be OPEN"
    size = json.loads(first[1:])
    master, slave = os.openpty()
    _set_size(slave, size["rows"], size["cols"])
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        env={"TERM": size["term"], "PS1": "$ ", "PATH": "/usr/bin:/bin"},
    )
    os.close(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            output.put_nowait(os.read(master, 65536))
        except OSError:
            loop.remove_reader(master)
            output.put_nowait(b"")

    loop.add_reader(master, readable)

    async def pump_out() -> None:
        while data := await output.get():
            await channel.send(b"\x02" + data)

    async def pump_in() -> None:
        while True:
            message = await channel.recv()
            if message[0] == 0x02:
                os.write(master, message[1:])
            elif message[0] == 0x03:
                _set_size(master, *struct.unpack(">HH", message[1:]))

    tasks = [asyncio.create_task(pump_out()), asyncio.create_task(pump_in())]
    try:
        status = await proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tasks[0], 2)
        await channel.send(b"\x04" + struct.pack(">i", status))
        await channel.close("exit")
    finally:
        loop.remove_reader(master)
        os.close(master)
        for task in tasks:
            task.cancel()
        if proc.returncode is None:
            proc.kill()


def _set_size(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


async def _stand_in_files(channel: Channel, root: Path) -> None:
    def send(kind: int, body: dict[str, object] | None = None) -> Awaitable[None]:
        return channel.send(bytes([kind]) + (json.dumps(body).encode() if body else b""))

    with contextlib.suppress(ChannelClosed):
        while True:
            request = json.loads((await channel.recv())[1:])
            target = root / request["path"]
            if request["op"] == "get":
                if not target.is_file():
                    await send(
                        7, {"code": "not_found", "message": f"{request['path']} does not exist"}
                    )
                    await channel.close("error")
                    return
                data = target.read_bytes()
                await send(2, {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
                offset = json.loads((await channel.recv())[1:])["offset"]
                for start in range(offset, len(data), 65536):
                    await channel.send(b"\x04" + data[start : start + 65536])
                await send(5)
                await channel.recv()  # DONE
            else:
                await send(3, {"offset": 0})
                parts = []
                while (message := await channel.recv())[0] == 0x04:
                    parts.append(message[1:])
                data = b"".join(parts)
                if hashlib.sha256(data).hexdigest() != request["sha256"]:
                    await send(7, {"code": "checksum_mismatch", "message": "mismatch"})
                    return
                target.write_bytes(data)
                await send(6, {"size": len(data), "sha256": request["sha256"]})


def chat_service(received: list[dict[str, object]]) -> Service:
    """Records what the technician writes and answers each message as the end user."""

    async def chat(channel: Channel, request: StreamRequest) -> None:
        await channel.send(
            json.dumps({"text": "Hei, jeg er her.", "at": "2026-01-01T10:00:00Z"}).encode()
        )
        await channel.send(b"not json")  # shown nowhere, breaks nothing
        while True:
            message = json.loads(await channel.recv())
            received.append(message)
            answer = {"text": f"Mottatt: {message['text']}", "at": "2026-01-01T10:00:01Z"}
            await channel.send(json.dumps(answer, ensure_ascii=False).encode())

    return chat


__all__ = ["REAL_FILES", "REAL_SHELL", "chat_service", "files_service", "shell_service"]
