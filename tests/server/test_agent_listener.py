"""The lean listener for agents' control links (server/agent_listener.py): the same
login as on the main port (the pinned server key's challenge, the agent's signed proof),
written through the batched logins, and the same refusals, audited."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from starlette.testclient import WebSocketDenialResponse
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from fjernhjelp import metrics
from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.control import statements
from fjernhjelp.control.messages import b64, unb64
from fjernhjelp.machines.models import Machine
from fjernhjelp.server import admission, probes
from fjernhjelp.server.app import create_app
from fjernhjelp.server.state import build_state
from tests.conftest import test_settings as settings_for
from tests.server.test_login_batches import _machines


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lean(tmp_path, database_url) -> Iterator[tuple[object, str]]:  # type: ignore[no-untyped-def]
    port = _port()
    state = build_state(settings_for(tmp_path, database_url, agent_bind=f"127.0.0.1:{port}"))
    with TestClient(create_app(state=state)):  # the lifespan starts the listener
        yield state, f"ws://127.0.0.1:{port}"
    state.engine.dispose()


def _login(ws: ClientConnection, state, machine_id: uuid.UUID, key: Ed25519PrivateKey) -> dict:  # type: ignore[no-untyped-def]
    challenge = json.loads(ws.recv(timeout=30))
    nonce = unb64(challenge["nonce"], statements.NONCE_BYTES)
    # The pinned key's proof, checked as the agent checks it.
    state.keys.signing.public_key().verify(
        unb64(challenge["signature"], 64), statements.server_challenge_statement(nonce)
    )
    proof = key.sign(statements.agent_proof_statement(nonce, machine_id))
    info = {"hostname": "lege-pc", "os": "bench", "agent_version": "1"}
    hello = {"type": "hello", "machine_id": str(machine_id), "signature": b64(proof), "info": info}
    ws.send(json.dumps(hello))
    return dict(json.loads(ws.recv(timeout=30)))


def test_an_agent_logs_in_on_the_lean_listener_and_a_forged_proof_is_refused(lean) -> None:  # type: ignore[no-untyped-def]
    state, url = lean
    with state.readers() as db:
        (machine, key), (victim, _) = _machines(db, 2)
        victim_seen = victim.last_seen_at

    with connect(f"{url}/agent/control", compression=None) as ws:
        welcome = _login(ws, state, machine.id, key)
        assert welcome == {
            "type": "welcome",
            "machine_id": str(machine.id),
            "heartbeat_seconds": welcome["heartbeat_seconds"],
        }

    # The attack: the other machine's id with a key that is not its own.
    with (
        connect(f"{url}/agent/control", compression=None) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        _login(ws, state, victim.id, Ed25519PrivateKey.generate())
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    # Nothing but the control link is served there.
    with pytest.raises(InvalidStatus) as status:
        connect(f"{url}/api/v1/machines", compression=None)
    assert status.value.response.status_code == 404

    with state.readers() as db:
        events = list(
            db.execute(
                select(AuditEvent)
                .where(AuditEvent.action == "agent.connect")
                .order_by(AuditEvent.seq)
            ).scalars()
        )
        assert [(e.machine_id, e.outcome, e.reason) for e in events] == [
            (str(machine.id), "success", None),
            (str(victim.id), "denied", "bad_signature"),
        ]
        # The victim's record is as it was; the chain holds.
        assert db.get(Machine, victim.id).last_seen_at == victim_seen  # type: ignore[union-attr]
        assert verify_chain(db).ok


def _until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.02)


def _waiting(sockets: contextlib.ExitStack, url: str, source: str) -> None:
    """An unauthenticated socket from ``source`` that the server has admitted: its
    challenge arrived, and it says nothing more until ``sockets`` closes it."""
    ws = sockets.enter_context(
        connect(f"{url}/agent/control", compression=None, source_address=(source, 0))
    )
    json.loads(ws.recv(timeout=30))


def _probing_audited(state) -> dict[str | None, dict[str, int]]:  # type: ignore[no-untyped-def]
    """The probing events written once the tally is flushed: kinds by source address."""
    with state.db_sessions() as db:
        probes.flush(db, state.probes, state.now(), everything=True)
        return {
            e.source_address: json.loads(e.details)["kinds"]
            for e in db.execute(
                select(AuditEvent).where(AuditEvent.action == "security.probing")
            ).scalars()
        }


def _refused_with(url: str, source: str) -> tuple[int, str | None]:
    """The HTTP status and Retry-After of an upgrade refused before it was accepted."""
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{url}/agent/control", compression=None, source_address=(source, 0))
    response = refused.value.response
    return response.status_code, response.headers.get("Retry-After")


def test_logins_in_progress_are_capped_for_the_node_not_only_per_address(
    tmp_path, database_url
) -> None:  # type: ignore[no-untyped-def]
    port = _port()
    state = build_state(
        settings_for(
            tmp_path,
            database_url,
            agent_bind=f"127.0.0.1:{port}",
            ws_unauthenticated_per_address=2,
            ws_unauthenticated_total=4,
        )
    )
    url = f"ws://127.0.0.1:{port}"
    refused_before = (
        metrics.REGISTRY.get_sample_value("fjernhjelp_sockets_refused_total", {"cap": "node"})
        or 0.0
    )
    with TestClient(create_app(state=state)):
        with state.readers() as db:
            ((machine, key),) = _machines(db, 1)
        # The attack: two addresses, each within its own cap, fill the node's.
        with contextlib.ExitStack() as flood:
            for source in ("127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"):
                _waiting(flood, url, source)
            assert state.unauthenticated_sockets.count_all() == 4
            # A third address, within its own cap, is refused before the upgrade, as on
            # the main port: the node is full (503), try again later.
            assert _refused_with(url, "127.0.0.4") == (503, "5")
            # One of the flooding addresses meets its own cap first: too many (429).
            assert _refused_with(url, "127.0.0.2") == (429, "5")
            assert state.unauthenticated_sockets.count_all() == 4
        _until(lambda: state.unauthenticated_sockets.count_all() == 0)

        # A real agent logs in once they are gone.
        with connect(f"{url}/agent/control", compression=None) as ws:
            assert _login(ws, state, machine.id, key)["type"] == "welcome"

        refused = metrics.REGISTRY.get_sample_value(
            "fjernhjelp_sockets_refused_total", {"cap": "node"}
        )
        assert refused == refused_before + 1
        # Counted as probing of the refused address, like the per-address cap.
        noted = _probing_audited(state)
        assert noted == {"127.0.0.4": {"node_socket_cap": 1}, "127.0.0.2": {"socket_cap": 1}}
    state.engine.dispose()


def _admitting_two(tmp_path, database_url, monkeypatch, **settings: object) -> tuple[Any, str]:  # type: ignore[no-untyped-def]
    """A node with a lean listener whose admission limit is two logins in progress."""
    monkeypatch.setattr(admission, "FLOOR", 2)
    monkeypatch.setattr(admission, "BUDGET", 0.001)  # the limit is the floor: 2
    port = _port()
    state = build_state(
        settings_for(tmp_path, database_url, agent_bind=f"127.0.0.1:{port}", **settings)
    )
    return state, f"ws://127.0.0.1:{port}"


def test_a_node_with_more_logins_than_it_answers_in_time_says_when_to_come_back(
    tmp_path, database_url, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Over its admission limit (server/admission.py) the node refuses an agent's upgrade
    with 503 and Retry-After, before the challenge's signature or any database work; the
    refusal is counted, not audited (no identity was presented)."""
    # The two held sockets stand for logins at work here, however slow the machine:
    # silent ones stop counting (the test after this one).
    state, url = _admitting_two(tmp_path, database_url, monkeypatch, ws_silent_seconds=600)

    def busy() -> float:
        value = metrics.REGISTRY.get_sample_value(
            "fjernhjelp_sockets_refused_total", {"cap": "busy"}
        )
        return value or 0.0

    busy_before = busy()
    app = create_app(state=state)
    with TestClient(app):
        with state.readers() as db:
            ((machine, key),) = _machines(db, 1)
            audited_before = db.scalar(select(func.count()).select_from(AuditEvent))
        statements_seen: list[str] = []

        def seen(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            statements_seen.append(statement)

        with contextlib.ExitStack() as waiting:
            for _ in range(2):
                _waiting(waiting, url, "127.0.0.2")
            assert app.state.access.hub.admission.in_progress == 2
            event.listen(state.engine, "before_cursor_execute", seen)
            try:
                with pytest.raises(InvalidStatus) as refused:
                    connect(f"{url}/agent/control", compression=None)
            finally:
                event.remove(state.engine, "before_cursor_execute", seen)
            response = refused.value.response
            assert response.status_code == 503
            assert 1 <= int(response.headers["Retry-After"]) <= admission.MAX_RETRY_AFTER
            # Nothing of a login was read or written for it.
            assert not [s for s in statements_seen if "machines" in s or "audit" in s]
        _until(lambda: app.state.access.hub.admission.in_progress == 0)
        # Room again: the agent logs in.
        with connect(f"{url}/agent/control", compression=None) as ws:
            assert _login(ws, state, machine.id, key)["type"] == "welcome"
        with state.readers() as db:
            # One event, the login: the refusal is in the metrics only.
            audited = db.scalars(
                select(AuditEvent.action).order_by(AuditEvent.seq).offset(audited_before)
            ).all()
            # The login and, once its link closed, the departure (written behind it).
            assert audited[0] == "agent.connect" and set(audited[1:]) <= {"agent.disconnect"}
    assert busy() == busy_before + 1
    state.engine.dispose()


def test_sockets_held_open_without_a_word_neither_fill_admission_nor_keep_their_allowance(
    tmp_path, database_url, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The attack (an attacker's review): sockets opened and held without a hello. Each
    counted as a login in progress until its hello timeout, so a few dozen addresses
    kept a node over its admission limit and every agent was told to come back later.
    Now a socket silent past ws_silent_seconds stops counting, and a source with
    ws_silent_strikes of them keeps only ws_silent_allowance sockets: refused 429,
    noted as probing; other sources and the real agent are served."""
    state, url = _admitting_two(
        tmp_path,
        database_url,
        monkeypatch,
        ws_silent_seconds=0.2,
        ws_silent_strikes=3,
        ws_silent_allowance=1,
    )
    app = create_app(state=state)
    with TestClient(app):
        gate = app.state.access.hub.admission
        pending = state.unauthenticated_sockets
        with state.readers() as db:
            ((machine, key),) = _machines(db, 1)
        with contextlib.ExitStack() as held:
            for _ in range(2):
                _waiting(held, url, "127.0.0.2")
            # As many as the limit, said nothing, and still open: no longer counted.
            _until(lambda: gate.in_progress == 0)
            assert pending.count("127.0.0.2") == 2
            with connect(f"{url}/agent/control", compression=None) as ws:
                assert _login(ws, state, machine.id, key)["type"] == "welcome"
            # The third silent socket is the source's third strike: its allowance of one
            # is spent (it holds three), so the next is refused, before the upgrade.
            _waiting(held, url, "127.0.0.2")
            _until(lambda: gate.in_progress == 0)
            assert _refused_with(url, "127.0.0.2") == (429, "5")
            # Another address is not touched by it.
            _waiting(held, url, "127.0.0.3")
        _until(lambda: pending.count_all() == 0)
        # Closed, the struck source still keeps only its allowance: one, not two.
        with contextlib.ExitStack() as again:
            _waiting(again, url, "127.0.0.2")
            assert _refused_with(url, "127.0.0.2") == (429, "5")
        noted = _probing_audited(state)
    # Each silent socket a note; each refusal a note; the real agent's source none.
    assert noted["127.0.0.2"]["silent_socket_cap"] == 2
    assert noted["127.0.0.2"]["silent_socket"] >= 3
    assert "127.0.0.1" not in noted or set(noted["127.0.0.1"]) == {"silent_socket"}
    state.engine.dispose()


def test_the_main_ports_control_link_says_when_to_come_back_too(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    state = build_state(settings_for(tmp_path, database_url))
    app = create_app(state=state)
    with TestClient(app) as client:
        gate = app.state.access.hub.admission
        gate.in_progress = gate.limit  # as if that many logins were in progress
        with (
            pytest.raises(WebSocketDenialResponse) as refused,
            client.websocket_connect("/agent/control"),
        ):
            pass
        assert refused.value.status_code == 503
        assert 1 <= int(refused.value.headers["retry-after"]) <= admission.MAX_RETRY_AFTER
        gate.in_progress = 0
        with client.websocket_connect("/agent/control") as ws:
            assert json.loads(ws.receive_text())["type"] == "challenge"
    state.engine.dispose()


def test_a_nul_in_an_agents_host_name_is_refused_alone_not_with_its_batch(lean) -> None:  # type: ignore[no-untyped-def]
    """The attack: an enrolled machine says hello with a NUL in its host name. PostgreSQL
    cannot store it, and logins are written in batches: the whole batch was refused,
    every other agent's login in it too. Now the hello is refused as malformed (4400)
    before it reaches a batch; the others log in; nothing of it is written."""
    state, url = lean
    with state.readers() as db:
        (machine, key), (other, other_key) = _machines(db, 2)
    with connect(f"{url}/agent/control", compression=None) as bad:
        challenge = json.loads(bad.recv(timeout=30))
        nonce = unb64(challenge["nonce"], statements.NONCE_BYTES)
        proof = key.sign(statements.agent_proof_statement(nonce, machine.id))
        info = {"hostname": "lege\u0000pc", "os": "bench", "agent_version": "1"}
        hello = {"type": "hello", "machine_id": str(machine.id), "signature": b64(proof)}
        bad.send(json.dumps({**hello, "info": info}))
        with connect(f"{url}/agent/control", compression=None) as good:
            assert _login(good, state, other.id, other_key)["type"] == "welcome"
        with pytest.raises(ConnectionClosed) as closed:
            bad.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    with state.readers() as db:
        connects = [
            (e.machine_id, e.outcome)
            for e in db.scalars(select(AuditEvent).where(AuditEvent.action == "agent.connect"))
        ]
        assert connects == [(str(other.id), "success")]
        assert db.get(Machine, machine.id).hostname == "lege-pc"  # type: ignore[union-attr]
        assert verify_chain(db).ok
