"""The technician's end of a remote shell: the local terminal joined to the agent's PTY.

``fjernhjelp connect MACHINE --shell`` calls :func:`run_shell_client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import struct
import termios
import tty
from collections.abc import Callable

from fjernhjelp.streams.shell.wire import (
    DATA,
    ERROR,
    EXIT,
    MAX_DATA,
    OFFER,
    RUN_AS_CHOICES,
    TERM_RE,
    ShellOffer,
    ShellProtocolError,
    ShellRefused,
    decode_error,
    decode_offer,
    encode_open,
    encode_resize,
    terminal_size,
    wait_fd,
    write_all,
)
from fjernhjelp.tunnel.channel import Channel, ChannelClosed


async def receive_offer(channel: Channel) -> ShellOffer:
    """The agent's first message: what it offers, or its refusal (ShellRefused)."""
    message = await channel.recv()
    if message[:1] == bytes([OFFER]):
        return decode_offer(message[1:])
    if message[:1] == bytes([ERROR]):
        code, text = decode_error(message[1:])
        await channel.close(code)
        raise ShellRefused(code, text)
    raise ShellProtocolError("the agent's first message must be OFFER")


async def run_shell_client(
    channel: Channel,
    stdin_fd: int,
    stdout_fd: int,
    *,
    run_as: str | None = None,
    term: str | None = None,
    on_offer: Callable[[ShellOffer, str], None] | None = None,
) -> int:
    """Connect the local terminal to a remote shell; returns the shell's exit status.

    ``run_as`` None takes the agent's default from its OFFER; a choice the agent did not
    offer is still asked for (the agent refuses it, and its audit log shows the attempt).
    ``on_offer`` hears the offer and the choice made. Puts ``stdin_fd`` in raw mode
    while connected (restored afterwards) and passes window size changes (SIGWINCH) on.
    Raises ShellRefused if the agent refuses or reports an error, ShellProtocolError if
    the agent breaks the wire format, and ChannelClosed if the tunnel ends before the
    shell does.
    """
    if run_as is not None and run_as not in RUN_AS_CHOICES:
        raise ValueError(f"run_as must be one of {RUN_AS_CHOICES}")
    offer = await receive_offer(channel)
    run_as = run_as or offer.default
    if on_offer is not None:
        on_offer(offer, run_as)
    term = term or os.environ.get("TERM") or "xterm-256color"
    if not TERM_RE.fullmatch(term):
        term = "xterm-256color"
    loop = asyncio.get_running_loop()
    rows, cols = terminal_size(stdout_fd)
    await channel.send(encode_open(rows, cols, term, run_as))

    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None
    if saved is not None:
        tty.setraw(stdin_fd, termios.TCSANOW)
    resize_hooked = False
    pending: set[asyncio.Task[None]] = set()

    def on_resize() -> None:
        size = terminal_size(stdout_fd)
        task = loop.create_task(_send_quietly(channel, encode_resize(*size)))
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        # Resizes are a nicety: a loop that cannot take signal handlers (not the main
        # thread: RuntimeError/ValueError; no signal support: NotImplementedError) runs the
        # shell at its first size rather than failing the session.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGWINCH, on_resize)
            resize_hooked = True
        keys = asyncio.create_task(_forward_keys(channel, stdin_fd))
        try:
            return await _receive_until_exit(channel, stdout_fd)
        finally:
            keys.cancel()
            await asyncio.gather(keys, return_exceptions=True)
    finally:
        if resize_hooked:
            loop.remove_signal_handler(signal.SIGWINCH)
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


async def _send_quietly(channel: Channel, message: bytes) -> None:
    with contextlib.suppress(ChannelClosed):
        await channel.send(message)


async def _forward_keys(channel: Channel, stdin_fd: int) -> None:
    while True:
        await wait_fd(stdin_fd)
        try:
            data = os.read(stdin_fd, MAX_DATA)
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if not data:
            return  # local end of input; the remote shell goes on until it exits
        try:
            await channel.send(bytes([DATA]) + data)
        except ChannelClosed:
            return


async def _receive_until_exit(channel: Channel, stdout_fd: int) -> int:
    while True:
        message = await channel.recv()
        if not message:
            raise ShellProtocolError("empty message from the agent")
        kind, payload = message[0], message[1:]
        if kind == DATA:
            await write_all(stdout_fd, payload)
        elif kind == EXIT:
            if len(payload) != 4:
                raise ShellProtocolError("EXIT must carry 4 bytes")
            await channel.close("exit")
            return int(struct.unpack("!i", payload)[0])
        elif kind == ERROR:
            code, text = decode_error(payload)
            await channel.close(code)
            raise ShellRefused(code, text)
        else:
            raise ShellProtocolError(f"unexpected message type {kind:#04x} from the agent")
