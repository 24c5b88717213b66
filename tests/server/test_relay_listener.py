"""The lean relay listener (server/relay_listener.py, ``relay_bind``): the same join,
refusals, limits, cut and records as the relay on the main port, with the frames passed
between two lean sockets without the per-message coroutines (and through the relay's
pipes when the other end is on the main port)."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.caller import Caller
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote.models import RemoteSession, SessionStatus
from fjernhjelp.server.app import create_app
from fjernhjelp.server.ws_guard import SilenceRule
from fjernhjelp.tunnel.limits import MAX_RECORD
from tests.conftest import only_on_one_backend
from tests.conftest import test_settings as settings_for
from tests.portal.access_world import build_site
from tests.server.test_agent_listener import _until


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path, database_url):  # type: ignore[no-untyped-def]
    return settings_for(
        tmp_path,
        database_url,
        relay_bind=f"127.0.0.1:{_port()}",
        ws_unauthenticated_per_address=2,
    )


@pytest.fixture
def lean(state, db, monkeypatch, backend) -> Iterator[tuple[TestClient, str, Any, threading.Event]]:  # type: ignore[no-untyped-def]
    # The listener's subject is the socket, not the database (the join's service runs on
    # every backend in its own tests): once per run.
    only_on_one_backend(backend)
    site = build_site(db, state)
    with TestClient(create_app(state=state)) as client:  # the lifespan starts the listener
        # The clients see the close before the end is written: the tests wait for it.
        endpoint = client.app.state.access.relay_endpoint  # type: ignore[attr-defined]
        recorded, written = endpoint.ended, threading.Event()

        async def ended(outcome: Any) -> None:
            await recorded(outcome)
            written.set()

        monkeypatch.setattr(endpoint, "ended", ended)
        yield client, f"ws://{state.settings.relay_bind}", site, written


def _session(db, state, site) -> tuple[uuid.UUID, uuid.UUID, str, str]:  # type: ignore[no-untyped-def]
    machine = site.machine("lege-pc-01")
    issued = remote_sessions.request(
        db,
        Caller.of_person(site.world.tech.user, state.now()),
        machine_id=machine.id,
        technician_key=os.urandom(32),
        signing_key=state.keys.signing,
        node_id=state.settings.node_id,
    )
    db.commit()
    return issued.session.id, machine.id, issued.technician_token, issued.agent_token


def _join(url: str, sid: uuid.UUID, role: str, token: str) -> ClientConnection:
    ws = connect(
        f"{url}/relay/{sid}", compression=None, max_size=1 << 20, open_timeout=30, legacy=True
    )
    ws.send(json.dumps({"role": role, "token": token}))
    return ws


def _closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=30)
    return closed.value.rcvd.code if closed.value.rcvd else None


def _ended(db, sid: uuid.UUID, written: threading.Event) -> RemoteSession:  # type: ignore[no-untyped-def]
    assert written.wait(30)
    db.rollback()
    row = db.get(RemoteSession, sid)
    assert row is not None
    return row


def _joins(db, sid: uuid.UUID) -> list[str]:  # type: ignore[no-untyped-def]
    db.rollback()
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "relay.join")).all()
    return [e.outcome for e in events if json.loads(e.details or "{}").get("session") == str(sid)]


def test_frames_pass_both_ways_unread_and_the_end_is_recorded(lean, db, state) -> None:  # type: ignore[no-untyped-def]
    _, url, site, written = lean
    sid, _, tech_token, agent_token = _session(db, state, site)
    tech = _join(url, sid, "technician", tech_token)
    # Sent before the other end is there: held, then passed once the session pairs.
    early = os.urandom(16 * 1024)
    tech.send(early)
    agent = _join(url, sid, "agent", agent_token)
    largest = os.urandom(MAX_RECORD)  # a full tunnel record passes
    tech.send(largest)
    tech.send([b"in ", b"three ", b"fragments"])  # a fragmented message passes whole
    assert agent.recv(timeout=30) == early
    assert agent.recv(timeout=30) == largest
    assert agent.recv(timeout=30) == b"in three fragments"
    agent.send(b"answer")
    assert tech.recv(timeout=30) == b"answer"
    tech.pong()  # an unsolicited pong is ignored
    tech.ping(b"x").wait(30)  # a ping is answered by the relay itself
    tech.close()
    assert _closed_with(agent) == 4000  # the peer is gone

    row = _ended(db, sid, written)
    assert (row.status, row.end_reason) == (SessionStatus.ENDED, "technician_closed")
    sent = len(early) + len(largest) + len(b"in three fragments")
    assert (row.bytes_from_technician, row.bytes_from_agent) == (sent, len(b"answer"))
    assert _joins(db, sid) == ["success", "success"]


def test_refusals_close_before_anything_passes_and_are_audited(lean, db, state) -> None:  # type: ignore[no-untyped-def]
    _, url, site, _ = lean
    sid, _, tech_token, _ = _session(db, state, site)
    # The attack: the agent's end with the technician's token.
    with _join(url, sid, "agent", tech_token) as ws:
        assert _closed_with(ws) == 4403
    assert _joins(db, sid) == ["denied"]
    # A join message over the limit is refused unparsed, before any token check.
    with connect(f"{url}/relay/{sid}", compression=None) as ws:
        ws.send("x" * 2000)
        assert _closed_with(ws) == 1009
    # Two sockets that never join hold this address's cap: a third is refused at the
    # upgrade, and noted as a probe.
    with (
        connect(f"{url}/relay/{sid}", compression=None),
        connect(f"{url}/relay/{sid}", compression=None),
        pytest.raises(InvalidStatus) as capped,
    ):
        connect(f"{url}/relay/{sid}", compression=None)
    assert capped.value.response.status_code == 429
    (window,) = [w for w in state.probes.take_all() if w.address == "127.0.0.1"]
    assert window.kinds == {"ws_message_too_big": 1, "socket_cap": 1}
    # Nothing but the relay's path is served here.
    with pytest.raises(InvalidStatus) as status:
        connect(f"{url}/agent/control", compression=None)
    assert status.value.response.status_code == 404
    assert _joins(db, sid) == ["denied"]
    # The technician's real token still works: the refused joins used nothing up.
    db.rollback()
    row = db.get(RemoteSession, sid)
    assert row is not None and row.status == SessionStatus.REQUESTED
    assert state.unauthenticated_sockets.count("127.0.0.1") == 0


def test_relay_sockets_that_never_join_cut_the_allowance(lean, db, state, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The attack: relay sockets opened and held without a join, to fill the node's
    cap of unauthenticated sockets. Each silent one is a strike against its source; at
    the rule's count the source keeps only its allowance, refused 429 and noted."""
    _, url, site, _ = lean
    sid, _, tech_token, _ = _session(db, state, site)
    monkeypatch.setattr(
        state, "settings", state.settings.model_copy(update={"ws_silent_seconds": 0.2})
    )
    pending = state.unauthenticated_sockets
    monkeypatch.setattr(pending, "silence", SilenceRule(strikes=2, allowance=1))
    with connect(f"{url}/relay/{sid}", compression=None):
        with connect(f"{url}/relay/{sid}", compression=None):
            _until(lambda: state.probes.noted("127.0.0.1").get("silent_socket") == 2)
        with pytest.raises(InvalidStatus) as capped:
            connect(f"{url}/relay/{sid}", compression=None)
    assert capped.value.response.status_code == 429
    kinds = {w.address: w.kinds for w in state.probes.take_all()}
    assert kinds["127.0.0.1"] == {"silent_socket": 2, "silent_socket_cap": 1}
    _until(lambda: pending.count("127.0.0.1") == 0)
    # The technician's token was never touched: the session waits for its real ends.
    db.rollback()
    row = db.get(RemoteSession, sid)
    assert row is not None and row.status == SessionStatus.REQUESTED
    assert tech_token


def test_a_cut_closes_both_ends_at_once(lean, db, state) -> None:  # type: ignore[no-untyped-def]
    client, url, site, written = lean
    sid, machine_id, tech_token, agent_token = _session(db, state, site)
    tech = _join(url, sid, "technician", tech_token)
    agent = _join(url, sid, "agent", agent_token)
    tech.send(b"before")
    assert agent.recv(timeout=30) == b"before"
    runtime = client.app.state.access
    client.portal.call(runtime.hub.cut, sid, machine_id, "grant_revoked")
    assert _closed_with(tech) == 4003
    assert _closed_with(agent) == 4003
    row = _ended(db, sid, written)
    assert (row.status, row.end_reason) == (SessionStatus.ENDED, "cut:grant_revoked")


def test_a_message_over_a_record_ends_the_session(lean, db, state) -> None:  # type: ignore[no-untyped-def]
    _, url, site, written = lean
    sid, _, tech_token, agent_token = _session(db, state, site)
    tech = _join(url, sid, "technician", tech_token)
    agent = _join(url, sid, "agent", agent_token)
    agent.send(os.urandom(MAX_RECORD + 1))
    assert _closed_with(tech) == 1009
    assert _closed_with(agent) == 1009
    row = _ended(db, sid, written)
    assert (row.end_reason, row.bytes_from_agent) == ("agent_message_too_big", 0)


def test_an_end_on_the_main_port_meets_one_on_the_lean_listener(lean, db, state) -> None:  # type: ignore[no-untyped-def]
    client, url, site, written = lean
    sid, _, tech_token, agent_token = _session(db, state, site)
    tech = _join(url, sid, "technician", tech_token)
    with client.websocket_connect(f"/relay/{sid}") as agent:
        agent.send_text(json.dumps({"role": "agent", "token": agent_token}))
        tech.send(b"to the main port")
        assert agent.receive_bytes() == b"to the main port"
        agent.send_bytes(b"to the lean listener")
        assert tech.recv(timeout=30) == b"to the lean listener"
        tech.close()
    row = _ended(db, sid, written)
    assert (row.end_reason, row.bytes_from_technician) == ("technician_closed", 16)


def test_pages_may_open_websockets_to_a_relay_on_a_port_of_its_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from fjernhjelp.config import Settings
    from fjernhjelp.server.security import SecurityHeaders, relay_origin

    def with_node_url(node_url: str | None) -> str | None:
        return relay_origin(
            Settings(data_dir=tmp_path, public_url="https://fjh.example.no", node_url=node_url)
        )

    # The relay on the pages' origin (one node, or a node path behind the front): nothing added.
    assert with_node_url(None) is None
    assert with_node_url("https://fjh.example.no/nodes/a") is None
    assert with_node_url("https://fjh.example.no:443/nodes/a") is None
    origin = with_node_url("https://fjh.example.no:8444")
    assert origin == "wss://fjh.example.no:8444"

    def page(_: object) -> PlainTextResponse:
        return PlainTextResponse("page")

    app = SecurityHeaders(Starlette(routes=[Route("/", page)]), hsts=True, relay_origin=origin)
    policy = TestClient(app).get("/").headers["Content-Security-Policy"]
    assert "connect-src 'self' wss://fjh.example.no:8444;" in policy
    assert "default-src 'self';" in policy  # the rest of the policy as it was


# -- the listener's own WebSocket server side (server/wsframes.py), from the hostile side --


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def _request(sid: uuid.UUID, *headers: str, drop: str = "") -> bytes:
    lines = [
        f"GET /relay/{sid} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Origin: https://elsewhere.example",  # not checked: the join's token is the proof
    ]
    lines = [line for line in lines if not drop or not line.startswith(drop)]
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode("latin-1")


def _http_answer(sock: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def _upgraded(url: str, sid: uuid.UUID) -> socket.socket:
    sock = _connect(url)
    sock.sendall(_request(sid))
    assert _http_answer(sock).startswith(b"HTTP/1.1 101 ")
    return sock


def _frame(first: int, payload: bytes, *, masked: bool = True, length: int | None = None) -> bytes:
    size = len(payload) if length is None else length
    if size < 126:
        head = bytes((first, (0x80 if masked else 0) | size))
    elif size < 65536:
        head = bytes((first, (0x80 if masked else 0) | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, (0x80 if masked else 0) | 127)) + size.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = b"\x11\x22\x33\x44"
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _close_code(sock: socket.socket) -> int | None:
    """The code of the server's close frame (its frames are unmasked); None if the
    connection ended without one."""
    data = b""
    while True:
        while len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7F):
            first, length = data[0], data[1] & 0x7F  # the server's control frames are short
            if first & 0x0F == 0x8:
                return int.from_bytes(data[2:4], "big")
            data = data[2 + length :]
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk


def _joined_raw(url: str, sid: uuid.UUID, role: str, token: str) -> socket.socket:
    sock = _upgraded(url, sid)
    sock.sendall(_frame(0x81, json.dumps({"role": role, "token": token}).encode()))
    return sock


def test_malformed_upgrades_are_refused_and_a_slow_one_is_dropped(
    lean, db, state, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from fjernhjelp.server import relay_listener

    _, url, site, _ = lean
    sid, _, _, _ = _session(db, state, site)
    key15 = "AAAAAAAAAAAAAAAAAAAA"  # base64 of 15 bytes
    refused = {
        "no Host": (_request(sid, drop="Host:"), b"400"),
        "version 8": (
            _request(sid, "Sec-WebSocket-Version: 8", drop="Sec-WebSocket-Version:"),
            b"426",
        ),
        "a key of 15 bytes": (
            _request(sid, f"Sec-WebSocket-Key: {key15}", drop="Sec-WebSocket-Key:"),
            b"400",
        ),
        "two keys": (_request(sid, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="), b"400"),
        "a space before the colon": (_request(sid, "X-Forwarded-For : 10.0.0.1"), b"400"),
        "a folded header": (_request(sid, "X-A: b", " c: d"), b"400"),
        "headers over 8 KiB": (_request(sid, "Cookie: " + "a" * 9000), b"431"),
    }
    for name, (request, status) in refused.items():
        with _connect(url) as sock:
            sock.sendall(request)
            answer = _http_answer(sock)
            assert answer.startswith(b"HTTP/1.1 " + status), name
            if status == b"426":
                assert b"Sec-WebSocket-Version: 13\r\n" in answer
    # Slowloris: headers that never end are dropped at the join's deadline.
    monkeypatch.setattr(relay_listener, "AUTH_TIMEOUT", 0.2)
    with _connect(url) as sock:
        sock.sendall(_request(sid)[:-4])
        assert sock.recv(4096) == b""
    # Nothing was joined or used up, and no socket is left counted against the address.
    assert _joins(db, sid) == []
    assert state.unauthenticated_sockets.count("127.0.0.1") == 0
    db.rollback()
    row = db.get(RemoteSession, sid)
    assert row is not None and row.status == SessionStatus.REQUESTED


def test_frames_that_break_rfc_6455_before_the_join_are_refused_with_1002(lean, db, state) -> None:  # type: ignore[no-untyped-def]
    _, url, site, _ = lean
    sid, _, _, _ = _session(db, state, site)
    attacks = {
        "unmasked": _frame(0x81, b"{}", masked=False),
        "RSV1 without an extension": _frame(0xC1, b"{}"),
        "a reserved opcode": _frame(0x83, b"{}"),
        "a control opcode beyond pong": _frame(0x8B, b""),
        "a ping of 126 bytes": _frame(0x89, bytes(126)),
        "a fragmented ping": _frame(0x09, b"x"),
        "a continuation of nothing": _frame(0x80, b"{}"),
        "a 64-bit length with its top bit set": bytes((0x82, 0xFF)) + b"\x80" + bytes(7),
        "a close of one byte": _frame(0x88, b"\x03"),
        "a close code never sent": _frame(0x88, (1005).to_bytes(2, "big")),
        "a close reason not UTF-8": _frame(0x88, (1000).to_bytes(2, "big") + b"\xff"),
    }
    for name, attack in attacks.items():
        with _upgraded(url, sid) as sock:
            sock.sendall(attack)
            assert _close_code(sock) == 1002, name
    # A length over the join's limit is refused from the header, before its bytes come.
    with _upgraded(url, sid) as sock:
        sock.sendall(_frame(0x81, b"", length=1 << 40)[:14])
        assert _close_code(sock) == 1009
    assert _joins(db, sid) == []
    assert state.unauthenticated_sockets.count("127.0.0.1") == 0
    db.rollback()
    row = db.get(RemoteSession, sid)
    assert row is not None and row.status == SessionStatus.REQUESTED


def test_frames_that_break_rfc_6455_after_the_join_end_the_session(lean, db, state) -> None:  # type: ignore[no-untyped-def]
    client, url, site, written = lean
    # Spliced (both ends here): a new message inside a fragmented one; the part before it
    # passed, nothing after it does.
    sid, _, tech_token, agent_token = _session(db, state, site)
    tech = _joined_raw(url, sid, "technician", tech_token)
    agent = _join(url, sid, "agent", agent_token)
    tech.sendall(_frame(0x02, b"part") + _frame(0x82, b"not a continuation"))
    assert _close_code(tech) == 1002
    assert _closed_with(agent) == 1000
    row = _ended(db, sid, written)
    assert (row.end_reason, row.bytes_from_technician) == ("technician_error", 4)
    tech.close()
    written.clear()
    # Piped (the other end on the main port): a ping of 126 bytes, which was buffered
    # without bound while its bytes came; the main-port end is told its peer is gone.
    sid, _, tech_token, agent_token = _session(db, state, site)
    tech = _joined_raw(url, sid, "technician", tech_token)
    with client.websocket_connect(f"/relay/{sid}") as main:
        main.send_text(json.dumps({"role": "agent", "token": agent_token}))
        tech.sendall(_frame(0x89, bytes(126)))
        assert _close_code(tech) == 1002
        closed = main.receive()
        assert (closed["type"], closed["code"]) == ("websocket.close", 4000)
    row = _ended(db, sid, written)
    assert row.end_reason == "technician_closed"
    tech.close()
