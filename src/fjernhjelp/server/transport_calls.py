"""What the lean listeners' sockets (server/control_socket.py, server/relay_listener.py)
do with their transport the same way: write, pause and resume reading, each a no-op once
the transport is closing (a late callback never writes after the close), and wake a
waiter."""

from __future__ import annotations

import asyncio
import contextlib


class TransportCalls:
    """A mixin for an asyncio protocol that keeps its transport in ``_transport``."""

    __slots__ = ()

    _transport: asyncio.Transport | None

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _pause(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def _resume(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(RuntimeError):  # not paused: nothing to resume
                self._transport.resume_reading()


def wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


__all__ = ["TransportCalls", "wake"]
