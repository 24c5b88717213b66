"""Where the lean relay listener listens (``FJERNHJELP_RELAY_BIND``): its port, its TLS
when the node terminates TLS itself, and what its sockets share: the one read buffer,
and the turns of the sockets that have more to send than one read takes. What one
socket does (upgrade, join, splice, close) is server/relay_listener.py."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import TYPE_CHECKING

from fjernhjelp.server.relay import MAX_MESSAGE
from fjernhjelp.server.relay_listener import LIGHT_WINDOW, READ, RelaySocket

if TYPE_CHECKING:
    from fjernhjelp.server.relay_endpoint import RelayEndpoint
    from fjernhjelp.server.state import AppState


# While a light session is about: the one read the heavy sockets share per loop pass.
# A light session's message that arrives meanwhile waits for at most this much of the
# heavy ones' work (about 10 us), not a full read of each (2 copies: about 70 us).
SHARED_TURN = 16 * 1024


class ReadBuffer:
    """Where every socket of one listener reads into: the event loop runs one read's
    callback to its end before the next read, and a socket keeps only the partial frame
    a read ends with (at most a record), so the buffer is shared rather than each idle
    session holding one. Its size bounds one read, and so a session's turn.

    And whose turn it is. A socket whose read filled its buffer (a bulk copy) pauses and
    waits here for the loop's next pass (RelaySocket._give_way). With no light session
    seen within LIGHT_WINDOW, every waiting socket is read again, a full read each (the
    cost per byte of bulk copies alone is as before). While light sessions are about,
    the waiting sockets take turns, one SHARED_TURN read per pass in order, so a
    desktop's frame waits behind one small read rather than a full read of every copy.
    What a socket may buffer is unchanged: at most one read and one partial frame."""

    def __init__(self) -> None:
        self.buf = bytearray(READ + MAX_MESSAGE + 16)
        self.view = memoryview(self.buf)
        self.first = self.view[:READ]  # a read with no partial frame before it
        self.waiting: deque[RelaySocket] = deque()
        self.light_at = -LIGHT_WINDOW  # loop time of a light session's last read
        self._scheduled = False

    def wait_turn(self, sock: RelaySocket) -> None:
        self.waiting.append(sock)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.turn)

    def turn(self) -> None:
        """One pass of the loop: the waiting sockets' reads (call_soon: after the reads
        this pass has already made, before the next poll)."""
        self._scheduled = False
        waiting = self.waiting
        loop = asyncio.get_running_loop()
        if loop.time() - self.light_at < LIGHT_WINDOW:
            while waiting and not waiting.popleft().take_turn(SHARED_TURN):
                pass  # gone or blocked: the next one has the turn
        else:
            while waiting:
                waiting.popleft().take_turn(READ)
        if waiting:
            self._scheduled = True
            loop.call_soon(self.turn)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def start(state: AppState, endpoint: RelayEndpoint, host: str, port: int) -> asyncio.Server:
    settings = state.settings
    context = None
    if settings.tls_cert and settings.tls_key:
        context = tls_context(str(settings.tls_cert), str(settings.tls_key))
    loop = asyncio.get_running_loop()
    reads = ReadBuffer()
    return await loop.create_server(
        lambda: RelaySocket(state, endpoint, reads), host, port, ssl=context
    )


__all__ = ["SHARED_TURN", "ReadBuffer", "start", "tls_context"]
