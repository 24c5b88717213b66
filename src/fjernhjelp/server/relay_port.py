"""Where the lean relay listener listens (``FJERNHJELP_RELAY_BIND``): its port, its TLS
when the node terminates TLS itself, and what its sockets share: the one read buffer,
and the turns of the sockets that have more to send than one read takes (whose rules are
server/relay_turns.py). What one socket does (upgrade, join, splice, close) is
server/relay_listener.py."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from fjernhjelp.server.relay import MAX_MESSAGE
from fjernhjelp.server.relay_listener import RelaySocket
from fjernhjelp.server.relay_turns import READ, SHARED_TURN, Turns

if TYPE_CHECKING:
    from fjernhjelp.server.relay_endpoint import RelayEndpoint
    from fjernhjelp.server.state import AppState


class ReadBuffer(Turns):
    """Where every socket of one listener reads into: the event loop runs one read's
    callback to its end before the next read, and a socket keeps only the partial frame
    a read ends with (at most a record), so the buffer is shared rather than each idle
    session holding one. Its size bounds one read, and so a session's turn. And whose
    turn it is (relay_turns.Turns: the heavy sockets waiting for theirs)."""

    def __init__(self) -> None:
        super().__init__()
        self.buf = bytearray(READ + MAX_MESSAGE + 16)
        self.view = memoryview(self.buf)
        self.first = self.view[:READ]  # a read with no partial frame before it


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
