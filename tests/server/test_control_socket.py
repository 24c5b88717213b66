"""The lean agent listener's own WebSocket server side (server/control_socket.py), seen
from a raw socket: what an agent that speaks RFC 6455 its own way gets, what a hostile
client gets (refused, noted, nothing kept), the keepalive of silent links, and the
node's stop."""

from __future__ import annotations

import asyncio
import json
import socket
import tracemalloc
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import connect

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.control import statements
from fjernhjelp.control.messages import b64, unb64
from fjernhjelp.server import agent_listener, control_socket, probes, wsframes
from fjernhjelp.server.app import create_app
from fjernhjelp.server.control_socket import INBOX_MAX, ControlSocket, Links
from fjernhjelp.server.state import build_state
from tests.conftest import test_settings as settings_for
from tests.fuzz.harness import LOOP
from tests.fuzz.targets_control_socket import _Hub
from tests.fuzz.targets_ws import _BROWSER, _request, _Transport
from tests.fuzz.targets_ws import _frame as wsframe
from tests.server.test_agent_listener import _login, _port, _until
from tests.server.test_login_batches import _machines
from tests.server.test_relay_listener import _frame, _http_answer

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's sample key


@pytest.fixture
def keepalive(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Seconds, not minutes: the keepalive is watched happening, not waited out. Asked
    for before ``node`` (its sweep starts with the node). A pinged peer still has 5 s
    to answer: on a loaded machine the test's own answer may take a while."""
    monkeypatch.setattr(control_socket, "IDLE", 0.5)
    monkeypatch.setattr(control_socket, "PING_TIMEOUT", 5.0)
    monkeypatch.setattr(control_socket, "REQUEST_TIMEOUT", 0.5)
    monkeypatch.setattr(agent_listener, "SWEEP_EVERY", 0.1)


@pytest.fixture
def node(tmp_path, database_url) -> Iterator[tuple[object, object, str]]:  # type: ignore[no-untyped-def]
    port = _port()
    state = build_state(settings_for(tmp_path, database_url, agent_bind=f"127.0.0.1:{port}"))
    app = create_app(state=state)
    with TestClient(app):
        yield state, app, f"127.0.0.1:{port}"
    state.engine.dispose()


class Raw:
    """A client that writes its own frames (masked unless told otherwise) and reads the
    server's one at a time."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.buf = b""

    def upgrade(self, *headers: str, path: str = "/agent/control", drop: str = "") -> bytes:
        lines = [
            f"GET {path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {_KEY}",
            "Sec-WebSocket-Version: 13",
        ]
        lines = [line for line in lines if not drop or not line.startswith(drop)]
        self.sock.sendall(("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode("latin-1"))
        answer = _http_answer(self.sock)
        head, _, self.buf = answer.partition(b"\r\n\r\n")  # frames may follow at once
        return head + b"\r\n\r\n"

    def send(self, first: int, payload: bytes, **kwargs: object) -> None:
        self.sock.sendall(_frame(first, payload, **kwargs))  # type: ignore[arg-type]

    def frame(self) -> tuple[int, bytes] | None:
        """The server's next frame (opcode, payload); None once the connection ended."""
        while True:
            if len(self.buf) >= 2:
                length, size = self.buf[1] & 0x7F, 2
                if length == 126:  # the server's messages here are under 64 KiB
                    length, size = int.from_bytes(self.buf[2:4], "big"), 4
                if len(self.buf) >= size + length:
                    opcode = self.buf[0] & 0x0F
                    payload = self.buf[size : size + length]
                    self.buf = self.buf[size + length :]
                    return opcode, payload
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def close_code(self) -> int | None:
        """The code of the server's close frame, skipping what comes before it."""
        while (frame := self.frame()) is not None:
            if frame[0] == 0x8:
                return int.from_bytes(frame[1][:2], "big")
        return None

    def ended(self) -> bool:
        """Reads until the connection ends; True if it did without a close frame."""
        while (frame := self.frame()) is not None:
            if frame[0] == 0x8:
                return False
        return True


def _hello(state, raw: Raw, machine_id: uuid.UUID, key: Ed25519PrivateKey) -> bytes:  # type: ignore[no-untyped-def]
    opcode, data = raw.frame() or (0, b"")
    assert opcode == 0x1
    challenge = json.loads(data)
    nonce = unb64(challenge["nonce"], statements.NONCE_BYTES)
    state.keys.signing.public_key().verify(
        unb64(challenge["signature"], 64), statements.server_challenge_statement(nonce)
    )
    proof = key.sign(statements.agent_proof_statement(nonce, machine_id))
    info = {"hostname": "tann-pc", "os": "raw", "agent_version": "1"}
    hello = {"type": "hello", "machine_id": str(machine_id), "signature": b64(proof), "info": info}
    return json.dumps(hello).encode()


def _actions(state, machine_id: uuid.UUID) -> list[str]:  # type: ignore[no-untyped-def]
    with state.readers() as db:
        return list(
            db.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.machine_id == str(machine_id))
                .where(AuditEvent.action.startswith("agent."))
                .order_by(AuditEvent.seq)
            )
        )


def test_an_agent_framing_its_own_way_logs_in_pings_and_closes_cleanly(node) -> None:  # type: ignore[no-untyped-def]
    state, _, address = node
    with state.readers() as db:
        ((machine, key),) = _machines(db, 1)
    raw = Raw(address)
    answer = raw.upgrade()
    assert answer.startswith(b"HTTP/1.1 101 ")
    # RFC 6455 section 1.3's accept value for its sample key.
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    hello = _hello(state, raw, machine.id, key)
    # Its hello in three fragments, a ping between them (RFC 6455 section 5.4 allows it).
    raw.send(0x01, hello[:10])
    raw.send(0x89, b"hei")
    assert raw.frame() == (0xA, b"hei")
    raw.send(0x00, hello[10:40])
    raw.send(0x80, hello[40:])
    opcode, data = raw.frame() or (0, b"")
    assert (opcode, json.loads(data)["type"]) == (0x1, "welcome")
    # Its close is answered with its code, and the server ends the connection.
    raw.send(0x88, (1000).to_bytes(2, "big"))
    assert raw.close_code() == 1000
    assert raw.frame() is None
    _until(lambda: _actions(state, machine.id) == ["agent.connect", "agent.disconnect"])


@pytest.mark.parametrize(
    ("name", "frame", "code"),
    [
        ("unmasked", _frame(0x81, b'{"type":"hello"}', masked=False), 1002),
        ("reserved bit", _frame(0xC1, b'{"type":"hello"}'), 1002),
        ("unknown opcode", _frame(0x83, b"?"), 1002),
        ("continuation of nothing", _frame(0x80, b"{}"), 1002),
        ("fragmented ping", _frame(0x09, b"x"), 1002),
        ("not UTF-8", _frame(0x81, b'{"type":"\xff\xfe"}'), 1007),
        ("a gigabyte announced", _frame(0x82, b"", length=1 << 30)[:14], 1009),
    ],
)
def test_a_hostile_frame_closes_the_link_before_login_and_nothing_is_kept(
    node, name: str, frame: bytes, code: int
) -> None:  # type: ignore[no-untyped-def]
    state, app, address = node
    with state.readers() as db:
        ((machine, key),) = _machines(db, 1)
    raw = Raw(address)
    assert raw.upgrade().startswith(b"HTTP/1.1 101 ")
    raw.frame()  # the challenge
    raw.sock.sendall(frame)
    assert raw.close_code() == code, name
    hub = app.state.access.hub
    _until(lambda: state.unauthenticated_sockets.count_all() == 0)
    _until(lambda: hub.admission.in_progress == 0)
    assert _actions(state, machine.id) == []  # no login, no departure
    with state.db_sessions() as db:
        probes.flush(db, state.probes, state.now(), everything=True)
        noted = [
            json.loads(e.details)["kinds"]
            for e in db.execute(
                select(AuditEvent).where(AuditEvent.action == "security.probing")
            ).scalars()
        ]
    # Only the announced oversize is probing (as on the relay); the rest is a bad client.
    assert noted == ([{"ws_message_too_big": 1}] if code == 1009 else [])
    # The node is intact: an agent logs in.
    with connect(f"ws://{address}/agent/control", compression=None) as ws:
        assert _login(ws, state, machine.id, key)["type"] == "welcome"


def test_malformed_upgrades_get_an_http_status_and_count_for_nothing(node) -> None:  # type: ignore[no-untyped-def]
    state, _, address = node
    cases = {
        "another path": ({"path": "/agent/control?x=1"}, b"HTTP/1.1 404 "),
        "the relay's path": ({"path": f"/relay/{uuid.uuid4()}"}, b"HTTP/1.1 404 "),
        "version 8": (
            {"drop": "Sec-WebSocket-Version", "headers": ("Sec-WebSocket-Version: 8",)},
            b"HTTP/1.1 426 ",
        ),
        "no Host": ({"drop": "Host"}, b"HTTP/1.1 400 "),
        "a key of 15 bytes": (
            {"drop": "Sec-WebSocket-Key", "headers": ("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",)},
            b"HTTP/1.1 400 ",
        ),
        "a head over 8 KiB": ({"headers": ("X-Pad: " + "a" * 9000,)}, b"HTTP/1.1 431 "),
    }
    for name, (how, status) in cases.items():
        raw = Raw(address)
        headers = how.pop("headers", ())
        answer = raw.upgrade(*headers, **how)  # type: ignore[arg-type]
        assert answer.startswith(status), (name, answer)
        assert raw.frame() is None, name  # and the connection ends
    assert state.unauthenticated_sockets.count_all() == 0


def test_a_silent_link_is_pinged_then_dropped_and_its_departure_written(keepalive, node) -> None:  # type: ignore[no-untyped-def]
    state, app, address = node
    with state.readers() as db:
        (machine, key), (other, other_key) = _machines(db, 2)
    quiet = Raw(address)
    assert quiet.upgrade().startswith(b"HTTP/1.1 101 ")
    quiet.send(0x81, _hello(state, quiet, machine.id, key))
    assert (quiet.frame() or (0,))[0] == 0x1  # welcome
    alive = Raw(address)
    assert alive.upgrade().startswith(b"HTTP/1.1 101 ")
    alive.send(0x81, _hello(state, alive, other.id, other_key))
    assert (alive.frame() or (0,))[0] == 0x1

    # Both fall silent: each is pinged. One answers, one does not.
    assert quiet.frame() == (0x9, b"")
    assert alive.frame() == (0x9, b"")
    alive.send(0x8A, b"")
    # The silent one is dropped as a lost connection would be (no close handshake to
    # wait on with a peer that does not answer), and its departure recorded.
    assert quiet.ended()
    _until(lambda: _actions(state, machine.id) == ["agent.connect", "agent.disconnect"])
    # The one that answered is still linked: it is pinged again, later.
    assert alive.frame() == (0x9, b"")
    assert other.id in app.state.access.hub.links
    assert _actions(state, other.id) == ["agent.connect"]


def test_a_connection_that_never_finishes_its_upgrade_is_dropped(keepalive, node) -> None:  # type: ignore[no-untyped-def]
    state, _, address = node
    raw = Raw(address)
    raw.sock.sendall(b"GET /agent/control HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and no more
    assert raw.frame() is None
    assert state.unauthenticated_sockets.count_all() == 0


def test_the_nodes_stop_says_going_away_and_writes_the_departures(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    port = _port()
    state = build_state(settings_for(tmp_path, database_url, agent_bind=f"127.0.0.1:{port}"))
    with state.readers() as db:
        ((machine, key),) = _machines(db, 1)
    with TestClient(create_app(state=state)):
        raw = Raw(f"127.0.0.1:{port}")
        assert raw.upgrade().startswith(b"HTTP/1.1 101 ")
        raw.send(0x81, _hello(state, raw, machine.id, key))
        assert (raw.frame() or (0,))[0] == 0x1
    # The lifespan's end waited for the link's handler: the departure is there already.
    assert raw.close_code() == 1001
    assert _actions(state, machine.id) == ["agent.connect", "agent.disconnect"]
    state.engine.dispose()


def test_a_request_sent_a_byte_at_a_time_is_dropped_when_its_time_is_up() -> None:
    """The upgrade's time runs from the connection: bytes that keep coming do not
    extend it (a slow request must not hold a connection for hours)."""
    from fjernhjelp.server.control_socket import ControlSocket, Links
    from tests.fuzz.targets_ws import _Transport

    sock = ControlSocket(object(), Links())  # type: ignore[arg-type]
    transport = _Transport()
    sock.connection_made(transport)  # type: ignore[arg-type]
    start = sock.heard
    for at, byte in enumerate(b"GET /agent/control HTTP/1.1\r\nHost: x\r\n"):
        sock.data_received(bytes((byte,)))
        sock.check(start + at * control_socket.REQUEST_TIMEOUT / 100)
        assert not transport.closing
    sock.check(start + control_socket.REQUEST_TIMEOUT + 0.1)
    assert transport.closing and not transport.out


# -- a peer that does not read what the server writes ------------------------------------
#
# Driven on a transport of the test's own (tests/fuzz/targets_ws.py's, which tells an abort
# from a close here): asyncio calls pause_writing once our unsent bytes pass its high-water
# mark, and a peer that never reads is one whose bytes are never sent.


class _Spied(_Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = asyncio.Event()

    def abort(self) -> None:
        self.closing = True
        self.aborted.set()


def _upgraded() -> tuple[ControlSocket, _Spied, _Hub, Links]:
    hub, links, transport = _Hub(), Links(), _Spied()
    sock = ControlSocket(hub, links)  # type: ignore[arg-type]
    sock.connection_made(transport)  # type: ignore[arg-type]
    sock.data_received(_request(*_BROWSER, target="/agent/control"))
    assert transport.out.startswith(b"HTTP/1.1 101 ")
    return sock, transport, hub, links


async def _ended(sock: ControlSocket, hub: _Hub, links: Links) -> None:
    sock.connection_lost(None)
    for handler in list(links.handlers):
        await handler
    assert hub.pending.count_all() == 0 and not links.sockets


def test_a_peer_that_pings_and_never_reads_is_not_read_either() -> None:
    """Each ping is answered with a pong: a peer that pinged at line rate and read
    nothing grew the node's write buffer by what it sent, without bound, before any
    login. Once our writes wait on it, its bytes wait in its own TCP window."""

    async def attack() -> None:
        sock, transport, hub, links = _upgraded()
        pings = wsframe(0x89, b"p" * 125) * 64
        sock.data_received(pings)
        assert transport.out.count(b"\x8a\x7d" + b"p" * 125) == 64
        sock.pause_writing()  # the pongs are no longer sent
        assert transport.paused, "still read while its answers pile up"
        sock.resume_writing()  # it reads again
        assert not transport.paused
        # A link paused for its unread messages stays paused when our writes drain.
        sock.data_received(b"".join(wsframe(0x81, b"{}") for _ in range(INBOX_MAX)))
        assert transport.paused
        sock.pause_writing()
        sock.resume_writing()
        assert transport.paused, "resumed with the hub's inbox full"
        await _ended(sock, hub, links)

    LOOP.run(attack())


def test_a_peer_that_closes_and_never_reads_is_dropped_after_the_grace(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The peer's close frame is answered and TCP closed, which waits for our unsent
    bytes: a peer that closes and never reads held the connection for ever (the sweep
    leaves a closing link alone)."""
    monkeypatch.setattr(control_socket, "CLOSE_GRACE", 0)

    async def attack() -> None:
        sock, transport, hub, links = _upgraded()
        sock.pause_writing()
        sock.data_received(wsframe(0x88, (1000).to_bytes(2, "big")))
        assert transport.closing
        await transport.aborted.wait()  # LOOP.run calls a hang a failure
        await _ended(sock, hub, links)
        assert hub.ended == 1000

    LOOP.run(attack())


def test_a_message_to_a_peer_that_never_reads_gives_up(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A send waited on the peer's reading for ever, holding the link's lock, and on the
    cluster bus every message for every other agent of the node behind it."""
    monkeypatch.setattr(control_socket, "DRAIN_TIMEOUT", 0)

    async def attack() -> None:
        sock, transport, hub, links = _upgraded()
        sock.pause_writing()
        with pytest.raises(WebSocketDisconnect):
            await sock.send_text('{"type":"dial"}')
        assert transport.aborted.is_set()
        await _ended(sock, hub, links)
        assert hub.ended == 1006

    LOOP.run(attack())


def test_a_peer_pinging_without_reading_is_dropped_before_it_costs(  # type: ignore[no-untyped-def]
    tmp_path, database_url, monkeypatch
) -> None:
    """The attack over TCP, before any login: pings at full speed, nothing read. The node
    stops reading it once its pongs wait, the sweep drops it as silent, nothing stays
    counted. Before, the node read all of it and kept every pong (64 MiB here)."""
    monkeypatch.setattr(control_socket, "IDLE", 0.5)
    monkeypatch.setattr(control_socket, "PING_TIMEOUT", 0.5)
    monkeypatch.setattr(agent_listener, "SWEEP_EVERY", 0.1)
    port = _port()
    state = build_state(settings_for(tmp_path, database_url, agent_bind=f"127.0.0.1:{port}"))
    app = create_app(state=state)
    with TestClient(app):
        raw = Raw(f"127.0.0.1:{port}")
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert raw.upgrade().startswith(b"HTTP/1.1 101 ")
        # No timeout of the client's own: at nice 19 on a loaded machine the node reads
        # the first MiBs slowly, and a send that waits is not the node dropping it (a
        # node that stopped reading and never dropped it is pytest-timeout's to catch).
        raw.sock.settimeout(None)
        pings = _frame(0x89, b"p" * 125) * 8192  # 1 MiB
        sent = 0
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while sent < 64 << 20:
                raw.sock.sendall(pings)
                sent += len(pings)
        _until(lambda: state.unauthenticated_sockets.count_all() == 0)
        _until(lambda: app.state.access.hub.admission.in_progress == 0)
    state.engine.dispose()


def test_a_login_while_redis_is_away_is_served_and_departs_cleanly(node, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Redis away at a login's presence write (BatchFailed): the write failed outside the
    link's try, so the link stayed in the hub's table for good, dialled as online, its
    departure never written, and the agent saw 1011 (found by review). Now the agent is
    welcomed all the same (its presence comes with the node's next refresh), and its
    link leaves the table and its departure is written when it ends."""
    state, app, address = node
    hub = app.state.access.hub
    with state.readers() as db:
        ((machine, key),) = _machines(db, 1)

    async def away(machine_ids: object) -> None:
        raise ConnectionError("Redis away")

    monkeypatch.setattr(hub.cluster, "refresh", away)
    with connect(f"ws://{address}/agent/control", compression=None) as ws:
        assert _login(ws, state, machine.id, key)["type"] == "welcome"
        assert machine.id in hub.links
    _until(lambda: _actions(state, machine.id) == ["agent.connect", "agent.disconnect"])
    assert machine.id not in hub.links


def test_a_message_in_tiny_fragments_costs_no_more_than_its_bytes() -> None:
    """The byte limit counts payload: a message sent two bytes a fragment (or as empty
    fragments without end) was kept as an object per fragment, ~20 times its bytes,
    on each of the node's thousands of sockets that may wait for a login."""

    async def attack() -> None:
        sock, _, hub, links = _upgraded()
        fragments = wsframe(0x01, b"{}") + wsframe(0x00, b"  ") * 30_000 + wsframe(0x00, b"")
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for at in range(0, len(fragments), 65536):
                sock.data_received(fragments[at : at + 65536])
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert kept < 256 * 1024, kept
        sock.data_received(wsframe(0x80, b"!"))
        await _ended(sock, hub, links)  # the hub's handler took what came before the end
        assert hub.messages == ["{}" + "  " * 30_000 + "!"]

    LOOP.run(attack())


def test_a_link_whose_messages_wait_for_a_slow_hub_is_not_dropped_as_silent() -> None:
    """The hub has not taken the agent's messages (its database slow, say), so the link
    is not read meanwhile: the silence is the server's, and the keepalive sweep must not
    drop the agent for it."""

    class _Slow(_Hub):
        async def serve_admitted(self, websocket: object, source: str | None) -> None:
            try:
                await asyncio.Event().wait()  # never takes a message
            finally:
                self.pending.release(source)

    async def run() -> None:
        hub, links, transport = _Slow(), Links(), _Spied()
        sock = ControlSocket(hub, links)  # type: ignore[arg-type]
        sock.connection_made(transport)  # type: ignore[arg-type]
        sock.data_received(_request(*_BROWSER, target="/agent/control"))
        for _ in range(control_socket.INBOX_MAX):
            sock.data_received(wsframe(0x81, b'{"type":"report"}'))
        assert transport.paused
        later = sock.heard + control_socket.IDLE + control_socket.PING_TIMEOUT + 1
        sock.check(later)
        sock.check(later + control_socket.IDLE + control_socket.PING_TIMEOUT + 1)
        assert not transport.closing and not transport.aborted.is_set()
        for handler in list(links.handlers):
            handler.cancel()
        sock.connection_lost(None)

    LOOP.run(run())


def test_a_close_reason_is_never_cut_inside_a_character() -> None:
    frame = wsframes.close_frame(4401, "å" * 100)  # 200 bytes of UTF-8
    assert len(frame) <= 2 + 125
    frame[4:].decode("utf-8")  # whole characters only


def test_upgrades_in_one_pass_of_the_loop_are_each_counted_before_the_next_is_judged(
    state, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A storm's upgrades arrive together: each must count as a login in progress at its
    upgrade, not when its handler starts, or every one read in the same pass of the loop
    passes the admission check (found by review)."""
    from fjernhjelp.server import admission
    from fjernhjelp.server.runtime import AccessRuntime

    monkeypatch.setattr(admission, "FLOOR", 1)
    monkeypatch.setattr(admission, "BUDGET", 0.001)  # the limit is the floor: 1
    hub = AccessRuntime(state).hub

    async def storm() -> None:
        links = Links()
        socks = [ControlSocket(hub, links) for _ in range(2)]
        transports = [_Transport() for _ in socks]
        for sock, transport in zip(socks, transports, strict=True):
            sock.connection_made(transport)  # type: ignore[arg-type]
        for sock in socks:  # one pass: no await between them
            sock.data_received(_request(*_BROWSER, target="/agent/control"))
        assert transports[0].out.startswith(b"HTTP/1.1 101 ")
        assert transports[1].out.startswith(b"HTTP/1.1 503 ")
        assert hub.admission.in_progress == 1
        for sock in socks:
            sock.connection_lost(None)
        for handler in list(links.handlers):
            await handler
        assert hub.admission.in_progress == 0
        assert state.unauthenticated_sockets.count_all() == 0

    LOOP.run(storm())
