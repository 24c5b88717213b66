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
from fjernhjelp.tunnel.limits import MAX_RECORD
from tests.conftest import only_on_one_backend
from tests.conftest import test_settings as settings_for
from tests.portal.access_world import build_site


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
