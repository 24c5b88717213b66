"""Unauthenticated exhaustion, from the attacker's side: oversized bodies, oversized and
too many WebSocket messages and sockets, and probe floods. Each attack is refused, leaves
its trace in the audit log (counted per address), and changes nothing else."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from sqlalchemy import func, select
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.server import body_limit, probes
from fjernhjelp.server.app import create_app
from fjernhjelp.server.housekeeping import Housekeeping
from fjernhjelp.server.ws_guard import AGENT_HELLO_MAX, RELAY_JOIN_MAX
from tests import conftest
from tests.helpers import make_org, make_user, probing_events

try:  # FastAPI 0.16x keeps included routers lazily; older versions list APIRoutes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover
    iter_route_contexts = None  # type: ignore[assignment]


def _events(db, action: str) -> list[AuditEvent]:
    db.rollback()
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    return list(db.execute(query).scalars())


def _count_all(db) -> int:
    db.rollback()
    return db.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def _kinds(event: AuditEvent) -> dict[str, int]:
    return json.loads(event.details)["kinds"]


# -- request bodies ---------------------------------------------------------------------


class Body:
    """An ASGI receive() that hands out ``chunks`` (forever, if None) and counts them."""

    def __init__(self, chunk: bytes, chunks: int | None) -> None:
        self.chunk = chunk
        self.left = chunks
        self.handed_out = 0

    async def __call__(self) -> dict:
        if self.left == 0:
            return {"type": "http.request", "body": b"", "more_body": False}
        if self.left is not None:
            self.left -= 1
        self.handed_out += len(self.chunk)
        return {"type": "http.request", "body": self.chunk, "more_body": True}


def _scope(path: str, headers: list[tuple[bytes, bytes]], app) -> dict:  # type: ignore[no-untyped-def]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("203.0.113.9", 40000),
        "server": ("testserver", 80),
        "app": app,
    }


async def _call(app, scope: dict, body: Body) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, body, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, content


async def test_a_30_mib_login_body_is_refused_unread(state, db) -> None:
    app = create_app(state=state)
    body = Body(b"{" + b" " * 65535, chunks=480)  # 30 MiB, were it read
    scope = _scope(
        "/api/v1/auth/login",
        [(b"content-type", b"application/json"), (b"content-length", str(30 << 20).encode())],
        app,
    )
    status, content = await _call(app, scope, body)
    assert status == 413
    answer = json.loads(content)
    assert answer["reason"] == "error.too_large" and "64 KiB" in answer["detail"]
    assert body.handed_out == 0  # not one byte of the body was read
    assert _events(db, "auth.login.password") == []  # nothing behind the limit ran
    (event,) = probing_events(state, db, "203.0.113.9")
    assert _kinds(event) == {"body_too_large": 1}


async def test_an_endless_chunked_body_is_cut_off_at_the_limit(state, db) -> None:
    app = create_app(state=state)
    body = Body(b"x" * 4096, chunks=None)  # no Content-Length, and it never ends
    scope = _scope("/api/v1/auth/login", [(b"content-type", b"application/json")], app)
    status, content = await asyncio.wait_for(_call(app, scope, body), 30)
    assert status == 413 and json.loads(content)["reason"] == "error.too_large"
    assert body.handed_out <= body_limit.DEFAULT_LIMIT + 4096  # read up to the limit, no more
    (event,) = probing_events(state, db, "203.0.113.9")
    assert _kinds(event) == {"body_too_large": 1}


def test_an_oversized_form_gets_a_page_and_changes_nothing(client, db, state) -> None:
    org = make_org(db)
    account = make_user(db, state, org, "tekniker")
    db.commit()
    r = client.post(
        "/login",
        data={"username": account.username, "password": "x" * (body_limit.DEFAULT_LIMIT + 1)},
    )
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
    assert "64 KiB" in r.text and "<html" in r.text
    assert r.headers["x-frame-options"] == "DENY"  # the hardening headers are still there
    assert _events(db, "auth.login.password") == []
    (event,) = probing_events(state, db)
    assert _kinds(event) == {"body_too_large": 1}


def test_honest_bodies_pass_and_only_named_routes_take_more(client, db, state) -> None:
    # An ordinary login body is far under the default and reaches the endpoint.
    r = client.post("/api/v1/auth/login", json={"username": "nobody", "password": "p" * 30})
    assert r.status_code == 401
    # Every route given a larger limit exists, with that method (no stale entries).
    routes = iter_route_contexts(client.app.routes) if iter_route_contexts else client.app.routes
    known = {(m, r.path) for r in routes for m in (getattr(r, "methods", None) or ())}
    assert set(body_limit.ROUTE_LIMITS) <= known
    # A body between the default and a route's own limit is refused only elsewhere.
    size = body_limit.DEFAULT_LIMIT * 4
    assert body_limit.limit_for("POST", "/portal/ops/terms") > size
    r = client.post(
        "/portal/ops/terms", content=b"a" * size, headers={"content-type": "text/plain"}
    )
    assert r.status_code != 413
    r = client.post("/portal/ops/organisations", content=b"a" * size)
    assert r.status_code == 413


# -- probes -------------------------------------------------------------------------------


def test_a_probe_flood_is_one_event_per_address_and_interval(client, db, state, clock) -> None:
    before = _count_all(db)
    for i in range(400):
        r = client.post(f"/wp-admin/setup-{i}.php", data={"a": "b"})
        assert r.status_code == 404
    # Nothing was appended while the flood ran: no chain-head lock taken per request.
    assert _count_all(db) == before
    housekeeping: Housekeeping = client.app.state.housekeeping
    housekeeping.run_now("audit_probes")
    assert _count_all(db) == before  # the interval has not ended yet
    clock.advance(seconds=state.settings.probe_audit_seconds)
    client.post("/setup", data={})  # the next interval's first probe
    housekeeping.run_now("audit_probes")
    (event,) = _events(db, "security.probing")
    details = json.loads(event.details)
    assert event.outcome == "denied" and event.source_address == "testclient"
    assert details["count"] == 400 and details["kinds"] == {"unknown_endpoint": 400}
    assert len(details["samples"]) == probes.SAMPLES
    # The next interval is written at shutdown; the chain stays one straight line.
    first, second = probing_events(state, db)
    assert (first.seq, json.loads(second.details)["count"]) == (event.seq, 1)
    assert verify_chain(db).ok


def test_probes_from_many_addresses_are_bounded_in_memory(state, db, clock) -> None:
    tally = probes.ProbeTally(state.probes.interval, max_addresses=3)
    for i in range(10):
        tally.note(f"198.51.100.{i}", probes.Kind.UNKNOWN_ENDPOINT, "POST", "/x", clock())
    with state.db_sessions() as writer:
        assert probes.flush(writer, tally, clock(), everything=True) == 4
    overflow = [e for e in _events(db, "security.probing") if e.source_address is None]
    assert json.loads(overflow[0].details)["count"] == 7
    assert json.loads(overflow[0].details)["addresses"] == 7


def test_real_login_attempts_stay_one_event_each(client, db, state) -> None:
    org = make_org(db)
    make_user(db, state, org, "tekniker")
    db.commit()
    for _ in range(3):
        r = client.post("/api/v1/auth/login", json={"username": "tekniker", "password": "wrong"})
        assert r.status_code == 401
    r = client.post("/api/v1/auth/factor", json={"pending_token": "forged", "code": "123456"})
    assert r.status_code == 401
    # Written as they happened, without waiting for any interval.
    assert len(_events(db, "auth.login.password")) == 3
    assert [e for e in _events(db, "security.probing")] == []


# -- WebSockets ---------------------------------------------------------------------------


def test_an_oversized_relay_join_message_is_refused_before_parsing(client, db, state) -> None:
    with client.websocket_connect(f"/relay/{uuid.uuid4()}") as ws:
        ws.send_text(json.dumps({"role": "agent", "token": "t" * (RELAY_JOIN_MAX * 16)}))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1009
    assert _events(db, "relay.join") == []  # never got as far as a token check
    (event,) = probing_events(state, db)
    assert _kinds(event) == {"ws_message_too_big": 1}
    assert state.unauthenticated_sockets.count("testclient") == 0


def test_an_oversized_agent_hello_is_refused_before_parsing(client, db, state) -> None:
    with client.websocket_connect("/agent/control") as ws:
        assert json.loads(ws.receive_text())["type"] == "challenge"
        ws.send_text(json.dumps({"type": "hello", "pad": "x" * (AGENT_HELLO_MAX + 1)}))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1009
    assert _events(db, "agent.connect") == []
    (event,) = probing_events(state, db)
    assert _kinds(event) == {"ws_message_too_big": 1}


def test_a_token_that_fails_is_still_audited_one_by_one(client, db, state) -> None:
    for _ in range(2):
        with client.websocket_connect(f"/relay/{uuid.uuid4()}") as ws:
            ws.send_text(json.dumps({"role": "agent", "token": "forged"}))
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 4403
    assert [e.outcome for e in _events(db, "relay.join")] == ["denied", "denied"]


def test_unauthenticated_sockets_per_address_are_capped(tmp_path, database_url, clock) -> None:
    from fastapi.testclient import TestClient

    from fjernhjelp.server.state import build_state

    settings = conftest.test_settings(tmp_path, database_url, ws_unauthenticated_per_address=2)
    state = build_state(settings)
    state.clock = clock
    try:
        with TestClient(create_app(state=state)) as client:
            with (
                client.websocket_connect(f"/relay/{uuid.uuid4()}") as first,
                client.websocket_connect("/agent/control") as second,
            ):
                second.receive_text()  # the challenge: both are open, neither authenticated
                assert state.unauthenticated_sockets.count("testclient") == 2
                for path in (f"/relay/{uuid.uuid4()}", "/agent/control"):
                    with (
                        pytest.raises(WebSocketDenialResponse) as refused,
                        client.websocket_connect(path),
                    ):
                        pass
                    assert refused.value.status_code == 429
                first.close()
            # Closed sockets free their places: an honest client gets in again.
            with client.websocket_connect("/agent/control") as again:
                assert json.loads(again.receive_text())["type"] == "challenge"
        with state.readers() as db:
            (event,) = probing_events(state, db)
            assert _kinds(event) == {"socket_cap": 2}
            assert {s["path"] for s in json.loads(event.details)["samples"]} >= {"/agent/control"}
    finally:
        state.engine.dispose()


def test_silent_sockets_on_the_main_port_cut_their_sources_allowance(
    tmp_path, database_url, clock
) -> None:
    """The main port's relay and control link (uvicorn's, not the lean listeners', whose
    own tests are in test_relay_listener.py and test_agent_listener.py): a relay socket
    without its join and a control link without its hello, each silent past
    ws_silent_seconds, are strikes; at two the source keeps one socket, refused 429."""
    from fastapi.testclient import TestClient

    from fjernhjelp.server.state import build_state

    settings = conftest.test_settings(
        tmp_path, database_url, ws_silent_seconds=0.2, ws_silent_strikes=2, ws_silent_allowance=1
    )
    state = build_state(settings)
    state.clock = clock
    try:
        with (
            TestClient(create_app(state=state)) as client,
            client.websocket_connect(f"/relay/{uuid.uuid4()}"),
            client.websocket_connect("/agent/control") as link,
        ):
            link.receive_text()  # the challenge; no hello follows
            deadline = time.monotonic() + 30
            while state.probes.noted("testclient").get("silent_socket", 0) < 2:
                assert time.monotonic() < deadline, "never noted as silent"
                time.sleep(0.02)
            assert client.app.state.access.hub.admission.in_progress == 0  # type: ignore[attr-defined]
            with (
                pytest.raises(WebSocketDenialResponse) as refused,
                client.websocket_connect("/agent/control"),
            ):
                pass
            assert refused.value.status_code == 429
        with state.readers() as db:
            (event,) = probing_events(state, db)
            assert _kinds(event) == {"silent_socket": 2, "silent_socket_cap": 1}
    finally:
        state.engine.dispose()


def test_the_nodes_cap_answers_503_on_the_main_port(tmp_path, database_url, clock) -> None:
    """The node's cap on logins in progress covers the main port too (the lean
    listener's side, from several addresses: tests/server/test_agent_listener.py)."""
    from fastapi.testclient import TestClient

    from fjernhjelp.server.state import build_state

    settings = conftest.test_settings(tmp_path, database_url, ws_unauthenticated_total=1)
    state = build_state(settings)
    state.clock = clock
    try:
        with (
            TestClient(create_app(state=state)) as client,
            client.websocket_connect(f"/relay/{uuid.uuid4()}"),
        ):
            # Accepted, so counted: a relay socket waiting for its token.
            assert state.unauthenticated_sockets.count_all() == 1
            with (
                pytest.raises(WebSocketDenialResponse) as refused,
                client.websocket_connect("/agent/control"),
            ):
                pass
            assert refused.value.status_code == 503
            assert refused.value.headers["retry-after"] == "5"
    finally:
        state.engine.dispose()


async def test_after_pairing_the_relay_takes_a_tunnel_record_and_no_more() -> None:
    from fjernhjelp.server.relay import CloseCode, Relay
    from fjernhjelp.tunnel.limits import MAX_RECORD
    from tests.server.test_relay import _run_pair

    relay = Relay()
    tech, agent, t1, t2 = await _run_pair(relay, "records")
    await tech.inbox.put(b"r" * MAX_RECORD)  # the largest record passes
    await tech.inbox.put(b"x" * (MAX_RECORD + 1))
    results = await asyncio.gather(t1, t2)
    outcome = next(r for r in results if r is not None)
    assert outcome.reason == "technician_message_too_big"
    assert agent.sent == [b"r" * MAX_RECORD]  # nothing of the oversized one went on
    assert agent.closed[0] == tech.closed[0] == CloseCode.TOO_BIG


def test_the_server_never_buffers_a_websocket_message_over_a_record() -> None:
    from fjernhjelp.cli.serve import uvicorn_options
    from fjernhjelp.config import Settings
    from fjernhjelp.tunnel.limits import MAX_RECORD

    options = uvicorn_options(Settings())
    assert options["ws_max_size"] == MAX_RECORD  # uvicorn's default is 16 MiB
    assert options["ws_max_size"] > AGENT_HELLO_MAX and RELAY_JOIN_MAX < AGENT_HELLO_MAX


def test_the_largest_honest_first_messages_fit_under_the_pre_auth_limits() -> None:
    from fjernhjelp.control.messages import Dial, Hello, MachineInfo

    # Every field at its maximum, in Norwegian letters (two bytes each in UTF-8).
    info = MachineInfo(
        hostname="æ" * 255,
        os="ø" * 255,
        users=["å" * 64] * 32,
        agent_version="9" * 32,
    )
    hello = Hello(machine_id=uuid.uuid4(), signature="A" * 88, info=info)
    assert len(hello.model_dump_json().encode()) < AGENT_HELLO_MAX
    token_max = Dial.model_fields["relay_token"].metadata[0].max_length
    join = json.dumps({"role": "technician", "token": "t" * token_max})
    assert len(join.encode()) < RELAY_JOIN_MAX


def test_probes_are_written_when_the_server_stops(app, state, db) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        for _ in range(3):
            assert client.delete("/api/v1/operators/1").status_code in (404, 405)
        assert _events(db, "security.probing") == []  # counted, not yet written
    (event,) = _events(db, "security.probing")  # the lifespan's end wrote it
    assert json.loads(event.details)["count"] == 3


def test_sockets_from_one_ipv6_prefix_share_one_cap() -> None:
    """The attack: one host with an IPv6 /64 rotates its address for every socket, each
    within a per-address cap of its own. The sockets of a /64 count as one source."""
    from fjernhjelp.server.ws_guard import Cap, PendingSockets

    pending = PendingSockets(per_address=2, total=100)
    assert pending.admit("2001:db8:1:2::1") is None
    assert pending.admit("2001:db8:1:2:ffff::7") is None
    assert pending.admit("2001:db8:1:2:aaaa:bbbb:cccc:dddd") is Cap.ADDRESS
    # Another /64, and IPv4 addresses, each are sources of their own.
    assert pending.admit("2001:db8:1:3::1") is None
    assert pending.admit("192.0.2.7") is None
    assert pending.admit("192.0.2.8") is None
    assert pending.count("2001:db8:1:2::99") == 2
    pending.release("2001:db8:1:2::1")
    assert pending.admit("2001:db8:1:2::1234") is None  # room again in that /64
    for address in ("2001:db8:1:2:ffff::7", "2001:db8:1:2::1234", "2001:db8:1:3::1"):
        pending.release(address)
    pending.release("192.0.2.7")
    pending.release("192.0.2.8")
    assert pending.count_all() == 0
