"""Faults with real processes: the server killed outright, the database gone for a while.

The technician's ends of the sessions run in this process (the CLI's own tunnel code,
technician/tunnel.py), twenty at once over a few real agents: twenty CLI processes would
measure the machine more than the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.remote.models import RemoteSession, SessionStatus
from fjernhjelp.technician.api import Api
from fjernhjelp.technician.tunnel import OpenedSession, open_session
from tests.asyncrun import LoopThread
from tests.e2e.conftest import free_port
from tests.live.conftest import FULL
from tests.live.live import LiveSite, web
from tests.portal.world import CLAUSE, build_world

pytestmark = pytest.mark.slow

AGENTS = 4
SESSIONS_PER_AGENT = 5


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.2)
    raise TimeoutError(f"waited {timeout} s for {what}")


def sessions(site: LiveSite) -> list[RemoteSession]:
    db = site.world.db
    db.rollback()
    db.expire_all()
    return list(db.execute(select(RemoteSession)).scalars())


def start_agents(site: LiveSite) -> tuple[str, list[dict[str, Any]]]:
    package = site.package(max_uses=AGENTS)
    names = {f"pc-{n}" for n in range(AGENTS)}
    for name in sorted(names):
        site.agent(name, package).start()
    token = site.api_token(site.world.tech)
    return token, site.wait_online(token, names, timeout=90)


async def open_many(api: Api, machines: list[dict[str, Any]]) -> list[OpenedSession]:
    wanted = [m["id"] for m in machines for _ in range(SESSIONS_PER_AGENT)]
    return list(await asyncio.gather(*(open_session(api, machine) for machine in wanted)))


def test_the_server_killed_during_twenty_sessions(site: LiveSite) -> None:
    token, machines = start_agents(site)
    assert site.server is not None
    api = Api(site.server.url, token, timeout=60)
    opened: list[OpenedSession] = []
    with LoopThread() as loop:
        try:
            opened = loop.run(open_many(api, machines))
            assert len(opened) == AGENTS * SESSIONS_PER_AGENT
            wait_for(
                "twenty active sessions",
                lambda: [s.status for s in sessions(site)].count(SessionStatus.ACTIVE) == 20,
            )

            # No shutdown of any kind: the process is gone between two instructions.
            site.server.proc.send_signal(signal.SIGKILL)
            site.server.proc.wait(30)
            site.restart_server()

            def all_ended() -> list[RemoteSession] | None:
                found = sessions(site)
                done = all(s.status == SessionStatus.ENDED and s.end_reason for s in found)
                return found if done else None

            ended = wait_for("every session ended with a reason", all_ended)
            assert len(ended) == 20
            assert {s.end_reason for s in ended} <= {"server_restart", "agent_closed"}, {
                s.end_reason for s in ended
            }
            assert all(s.ended_at is not None for s in ended)
            recorded = {json.loads(e.details)["session"] for e in site.events("session.ended")}
            assert {str(s.id) for s in ended} <= recorded
            site.world.db.rollback()
            assert verify_chain(site.world.db).ok
            site.wait_online(token, {m["hostname"] for m in machines}, timeout=90)
            assert "Exception in ASGI application" not in site.server.log.read_text()
        finally:
            for session in opened:
                loop.run(_quietly(session.close()), timeout=60)
            api.close()


async def _quietly(done: Any) -> None:
    try:
        await asyncio.wait_for(done, 10)
    except Exception:  # the server that held it is gone; closing is best effort
        return


OUTAGE_SECONDS = 30


class CuttableProxy:
    """A TCP forwarder between the server and PostgreSQL that the test can cut: while cut,
    the connections it carried are reset and new ones are refused, as when the database
    machine drops off the network; restored, it forwards again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._carried: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)  # so the accepting thread sees a cut
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            carried, self._carried = self._carried, set()
        if listener is not None:
            listener.close()
        for sock in carried:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    client.close()
                    upstream.close()
                    return
                self._carried |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def outage_site(db, state, backend, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:  # type: ignore[no-untyped-def]
    """As ``site``, with the server reaching PostgreSQL through a proxy the test can cut."""
    if backend.name != "postgresql":
        pytest.skip(
            "an unreachable database is a network fault: SQLite is a file inside the server's "
            "own process, which has no such state (its failing storage: tests/audit/"
            "test_disk_full.py)"
        )
    url = make_url(database_url)
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    world = build_world(db, state, agreement=False)
    world.agreement = world.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
    world.grant = world.make_grant(permissions=FULL, consent_required=False)
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    live = LiveSite(world, tmp_path, proxied)
    live.proxy = proxy  # type: ignore[attr-defined]
    live.start_server()
    yield live
    live.stop()
    proxy.cut()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503 and body["reason"] == "database_unavailable", body
    assert body["detail"] and body["instance"]


def test_the_database_unreachable_for_thirty_seconds(outage_site: LiveSite) -> None:
    site = outage_site
    proxy: CuttableProxy = site.proxy  # type: ignore[attr-defined]
    token, machines = start_agents(site)
    assert site.server is not None
    base = site.server.url + "/api/v1"
    bearer = {"Authorization": f"Bearer {token}"}
    names = {m["hostname"] for m in machines}
    site.world.db.rollback()
    # A session running when the database goes, that ends during the outage.
    api = Api(site.server.url, token, timeout=60)
    with LoopThread() as loop:
        try:
            running = loop.run(open_session(api, machines[1]["id"]))
            wait_for(
                "the session to run",
                lambda: [s.status for s in sessions(site)] == [SessionStatus.ACTIVE],
            )
            events_before = [e.seq for e in site.events("session.ticket_issued")]

            proxy.cut()
            cut_at = time.monotonic()
            cut_when = datetime.now(UTC)
            loop.run(_quietly(running.close()), timeout=60)
            # An agent that starts while the database is away must keep trying, not give up.
            site.agents[0].stop()
            site.agents[0].start()
            answers: list[httpx.Response] = []
            while time.monotonic() - cut_at < OUTAGE_SECONDS:
                answers.append(web.get(base + "/machines", headers=bearer))
                # An action during the outage is refused: not done without its audit event.
                answers.append(
                    web.post(
                        base + "/sessions",
                        headers=bearer,
                        json={"machine_id": machines[0]["id"], "technician_key": "A" * 43 + "="},
                    )
                )
                answers.append(
                    web.post(
                        base + "/auth/login", json={"username": "tekniker", "password": "x" * 12}
                    )
                )
                health = web.get(site.server.url + "/healthz")
                assert health.status_code == 503
                time.sleep(1)  # pacing the requests, not waiting for anything
            for answer in answers:
                assert_unavailable(answer)
            restored_when = datetime.now(UTC)
            proxy.restore()

            wait_for(
                "the API to answer", lambda: web.get(base + "/machines", headers=bearer).is_success
            )
            site.wait_online(token, names, timeout=90)
            assert "reconnecting in" in site.agents[0].log.read_text()
            # Every failure was one of the answers above, none an error of the server itself;
            # logged by its kind, never with a statement's values (logs.py), and without a
            # line for each agent's socket.
            server_log = site.server.log.read_text()
            assert "Exception in ASGI application" not in server_log
            assert "[parameters:" not in server_log and "connection open" not in server_log
            # The session that ended during the outage is recorded as it ended once the
            # database is back (server/late_ends.py), not left open until a restart.
            (ended,) = wait_for(
                "the late end to be recorded",
                lambda: [s for s in sessions(site) if s.status == SessionStatus.ENDED],
            )
            # Whichever end the relay saw go first (the agent follows the tunnel's close).
            assert ended.end_reason in ("technician_closed", "agent_closed")
            assert ended.ended_at is not None
            assert cut_when <= ended.ended_at <= restored_when
            (late,) = [json.loads(e.details) for e in site.events("session.ended")]
            assert late["recorded_late"] is True and late["session"] == str(ended.id)
            # Nothing asked for during the outage was done: no session, no event of one.
            assert len(sessions(site)) == 1
            assert [e.seq for e in site.events("session.ticket_issued")] == events_before
            site.world.db.rollback()
            assert verify_chain(site.world.db).ok
            # And the service works again: a session opens.
            opened = loop.run(open_session(api, machines[0]["id"]))
            loop.run(_quietly(opened.close()), timeout=60)
        finally:
            api.close()
