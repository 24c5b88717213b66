"""Several nodes behind HAProxy, with real processes: two `fjernhjelp serve` nodes sharing
PostgreSQL and a Redis of the test's own, the repository's HAProxy configuration
(deploy/haproxy/haproxy.cfg) in front, and agents enrolled on the front's URL.

One test walks through the cluster's faults in an order that keeps every phase meaningful
(two nodes are needed until the last): a technician on one node reaches an agent held by
the other; a revocation made on one node cuts sessions on both; Redis restarted empty;
PostgreSQL unreachable for a while; and last a node killed outright. Starting the nodes,
HAProxy and the agents once for all of them keeps the wall time down.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.remote.models import RemoteSession, SessionStatus
from fjernhjelp.technician.api import Api
from fjernhjelp.technician.tunnel import OpenedSession, open_session
from tests.asyncrun import LoopThread
from tests.e2e.conftest import ServerProcess, free_port
from tests.live.conftest import FULL
from tests.live.live import LiveSite, web
from tests.live.test_live_faults import CuttableProxy, assert_unavailable, sessions
from tests.live.test_live_faults import wait_for as wait_for_within
from tests.portal.world import CLAUSE, build_world

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
HEARTBEAT = "2"  # seconds; a lost node is noticed after three missed beats
AGENTS = 2


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    # Two nodes, HAProxy, Redis and the agents on a loaded 2-core machine: generous.
    return wait_for_within(what, check, timeout)


class PrivateRedis:
    """A redis-server of this test's own: restarting the machine's shared one would pull
    the floor from under every other test. Without persistence, so a restart comes back
    empty, as a Redis that lost its memory does."""

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (make system-deps)")
        self.binary = binary
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.tmp),
            ],
            stdout=(self.tmp / "redis.log").open("a"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip

        def answers() -> bool:
            try:
                return bool(self.client().ping())
            except redis.RedisError:
                return False

        wait_for("redis-server to answer", answers)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@dataclass
class Front:
    """HAProxy with the repository's configuration; LiveSite's "server" (its URL is what
    users and agents use)."""

    url: str
    stats: str
    log: Path
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, tmp: Path, port: int, nodes: dict[str, str], listeners: dict[str, str]) -> Front:
        stats = free_port()
        env = {
            **os.environ,
            "FJH_BIND": f"127.0.0.1:{port}",
            "FJH_STATS_BIND": f"127.0.0.1:{stats}",
            "FJH_MAXCONN": "2000",
            **{f"FJH_NODE_{letter.upper()}": address for letter, address in nodes.items()},
            **listeners,
        }
        env.pop("FJH_TLS_PEM", None)
        log = tmp / "haproxy.log"
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            pytest.skip("haproxy is not installed (make system-deps)")
        proc = subprocess.Popen(
            [haproxy, "-db", "-f", str(HAPROXY_CFG)],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        front = cls(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stats}", log, proc)
        wait_for("HAProxy to see every node up", lambda: front.status("nodes") == {
            letter: "UP" for letter in nodes
        })  # fmt: skip
        return front

    def status(self, backend: str) -> dict[str, str]:
        """HAProxy's own view of the backend's checked servers (its statistics CSV)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"haproxy exited:\n{self.log.read_text()}")
        try:
            text = httpx.get(self.stats + "/;csv", timeout=5).text
        except httpx.HTTPError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row["status"].split()[0]
            for row in rows
            if row["pxname"] == backend
            and row["svname"] not in ("FRONTEND", "BACKEND")
            and not row["svname"].endswith("-unchecked")
        }

    def connections(self, backend: str) -> int:
        """How many connections HAProxy has sent to the backend since it started."""
        text = httpx.get(self.stats + "/;csv", timeout=5).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return sum(
            int(row["stot"] or 0)
            for row in rows
            if row["pxname"] == backend and row["svname"] == "BACKEND"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@dataclass
class Cluster:
    site: LiveSite
    front: Front
    redis: PrivateRedis
    proxy: CuttableProxy
    nodes: dict[str, ServerProcess]  # by the letter of its path on the front
    node_ids: dict[str, str]

    def presence(self, machine_id: str) -> str | None:
        node: str | None = self.redis.client().get(f"fjh:presence:{machine_id}")
        return node

    def letter_of(self, node_id: str | None) -> str | None:
        return next((k for k, v in self.node_ids.items() if v == node_id), None)


def _start_node(
    letter: str,
    node_id: str,
    site: LiveSite,
    database_url: str,
    redis_url: str,
    front: str,
    listeners: dict[str, str],
) -> tuple[ServerProcess, str]:
    port = free_port()
    env = {
        **os.environ,
        "FJERNHJELP_DATA_DIR": str(site.state.settings.data_dir),
        "FJERNHJELP_DATABASE_URL": database_url,
        "FJERNHJELP_BIND": f"127.0.0.1:{port}",
        # As in production (deploy/haproxy/haproxy.cfg): every node holds its agents on
        # its lean agent listener; node b also serves its relay from its lean relay
        # listener, so sessions cross both relay paths and both meet through the front.
        "FJERNHJELP_AGENT_BIND": listeners[f"FJH_AGENT_{letter.upper()}"],
        "FJERNHJELP_PUBLIC_URL": front,
        "FJERNHJELP_NODE_URL": f"{front}/nodes/{letter}",
        "FJERNHJELP_NODE_ID": node_id,
        "FJERNHJELP_REDIS_URL": redis_url,
        "FJERNHJELP_TRUSTED_PROXIES": '["127.0.0.1"]',
        "FJERNHJELP_NODE_HEARTBEAT_SECONDS": HEARTBEAT,
        "FJERNHJELP_RELAY_PAIR_SECONDS": "10",
    }
    if f"FJH_RELAY_{letter.upper()}" in listeners:
        env["FJERNHJELP_RELAY_BIND"] = listeners[f"FJH_RELAY_{letter.upper()}"]
    log = site.tmp / f"node-{letter}.log"
    return ServerProcess(["serve"], env, f"http://127.0.0.1:{port}", log), f"127.0.0.1:{port}"


@pytest.fixture
def cluster(db, state, backend, database_url: str, tmp_path: Path) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    if backend.name != "postgresql":
        pytest.skip(
            "several nodes share one database server: SQLite is a file inside one "
            "process's reach and has no second node (nor a server to restart)"
        )
    redis = PrivateRedis(tmp_path)
    url = make_url(database_url)
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    world = build_world(db, state, agreement=False)
    world.agreement = world.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
    world.grant = world.make_grant(permissions=FULL, consent_required=False)
    site = LiveSite(world, tmp_path, proxied)
    # The front's address first: each node is told its node URL on it.
    front_port = free_port()
    front_url = f"http://127.0.0.1:{front_port}"
    suffix = uuid.uuid4().hex[:6]
    node_ids = {letter: f"node-{letter}-{suffix}" for letter in ("a", "b")}
    listeners = {f"FJH_AGENT_{letter.upper()}": f"127.0.0.1:{free_port()}" for letter in node_ids}
    listeners["FJH_RELAY_B"] = f"127.0.0.1:{free_port()}"
    started = {
        letter: _start_node(letter, node_id, site, proxied, redis.url, front_url, listeners)
        for letter, node_id in node_ids.items()
    }
    nodes = {letter: server for letter, (server, _) in started.items()}
    front: Front | None = None
    try:
        for server in nodes.values():
            server.wait_ready(timeout=180)
        front = Front.start(
            tmp_path, front_port, {k: a for k, (_, a) in started.items()}, listeners
        )
        site.server = front  # type: ignore[assignment]
        yield Cluster(site, front, redis, proxy, nodes, node_ids)
    finally:
        for agent in site.agents:
            agent.stop()
        if front is not None:
            front.stop()
        for server in nodes.values():
            if server.proc.poll() is None:
                server.stop()
        proxy.cut()
        redis.stop()


# -- the technician's side, in this process --------------------------------------------------


async def info(opened: OpenedSession) -> dict[str, Any]:
    """A real stream through the tunnel: the agent's system information."""
    stream = await opened.tunnel.open("info")
    answer: dict[str, Any] = json.loads(await asyncio.wait_for(stream.recv(), 30))
    return answer


async def closed_quietly(opened: OpenedSession) -> None:
    try:
        await asyncio.wait_for(opened.close(), 30)
    except Exception:  # its node may be gone: closing is best effort
        # ... but the relay must see this end go, whatever became of the goodbye.
        with contextlib.suppress(Exception):
            opened.websocket.transport.abort()


def session_row(site: LiveSite, session_id: uuid.UUID) -> RemoteSession:
    [row] = [s for s in sessions(site) if s.id == session_id]
    return row


def ended(site: LiveSite, session_id: uuid.UUID) -> RemoteSession | None:
    row = session_row(site, session_id)
    return row if row.status == SessionStatus.ENDED and row.end_reason else None


def test_two_nodes_behind_haproxy_through_their_faults(cluster: Cluster) -> None:
    site, front = cluster.site, cluster.front
    world = site.world
    package = site.package(max_uses=AGENTS)
    names = {f"pc-{n}" for n in range(AGENTS)}
    for name in sorted(names):
        site.agent(name, package).start()
    token = site.api_token(world.tech)
    machines = site.wait_online(token, names, timeout=120)
    ids = [m["id"] for m in machines]
    wait_for("every agent's presence", lambda: all(cluster.presence(m) for m in ids))
    # Their control links came through the front to the nodes' lean agent listeners.
    assert front.connections("agents") >= AGENTS
    bearer = {"Authorization": f"Bearer {token}"}
    apis = {letter: Api(node.url, token, timeout=60) for letter, node in cluster.nodes.items()}
    through_front = Api(front.url, token, timeout=60)
    opened: list[OpenedSession] = []

    def other_nodes_machine(letter: str) -> str | None:
        own = cluster.node_ids[letter]
        return next((m for m in ids if cluster.presence(m) not in (None, own)), None)

    with LoopThread() as loop:
        try:
            # a) A technician on one node reaches an agent held by the other. The session
            #    is the node's that recorded it; its relay URL routes there on the front.
            crossed = 0
            for letter, api in apis.items():
                machine = other_nodes_machine(letter)
                if machine is None:
                    continue  # every agent is on this node: the other node crosses
                session = loop.run(open_session(api, machine))
                opened.append(session)
                assert loop.run(info(session))
                row = session_row(site, session.session_id)
                assert row.node_id == cluster.node_ids[letter]
                assert cluster.presence(machine) != row.node_id
                if letter == "b":  # both ends through node b's lean relay listener
                    assert front.connections("node_b") >= 2
                crossed += 1
            assert crossed >= 1
            # The way users go: through the front, whichever node answers.
            session = loop.run(open_session(through_front, ids[0]))
            opened.append(session)
            assert loop.run(info(session))
            for session in opened:
                loop.run(closed_quietly(session))
            try:
                for session in opened:
                    wait_for("the session's end", lambda s=session: ended(site, s.session_id))
            except TimeoutError as exc:
                rows = [(r.id, r.status, r.node_id, r.end_reason) for r in sessions(site)]
                log = cluster.nodes["a"].log.read_text()[-6000:]
                raise AssertionError(f"{rows}\n{log}") from exc
            opened.clear()

            # b) A revocation made on node b cuts the sessions relayed on a and on b.
            both = [
                loop.run(open_session(apis[letter], ids[n % len(ids)]))
                for n, letter in enumerate(("a", "b"))
            ]
            opened.extend(both)
            gp_admin = site.api_token(world.gp_admin)
            revoked = web.post(
                f"{cluster.nodes['b'].url}/api/v1/grants/{world.grant.id}/revoke",
                headers={"Authorization": f"Bearer {gp_admin}"},
            )
            assert revoked.status_code == 200, revoked.text
            for session in both:
                loop.run(session.tunnel.wait_closed(), timeout=120)
                row = wait_for("the cut recorded", lambda s=session: ended(site, s.session_id))
                assert row.end_reason is not None and "grant_revoked" in row.end_reason
            assert {session_row(site, s.session_id).node_id for s in both} == set(
                cluster.node_ids.values()
            )
            for session in both:
                loop.run(closed_quietly(session))
            opened.clear()
            world.grant = world.make_grant(permissions=FULL, consent_required=False)

            # d) Redis restarted empty, under a running session: presence comes back at
            #    the nodes' next beat, the bus carries dials again, nothing reconnects.
            held = other_nodes_machine("a") or ids[0]
            running = loop.run(open_session(apis["a"], held))
            opened.append(running)
            connects = len(site.events("agent.connect"))
            cluster.redis.stop()
            # Meanwhile nobody can tell where an agent is: a clear 503, not a 500.
            down = web.get(front.url + "/api/v1/machines", headers=bearer)
            assert down.status_code == 503, down.text
            assert down.json()["reason"] == "cluster_unavailable"
            assert int(down.headers["retry-after"]) > 0
            cluster.redis.start()
            bus = cluster.redis.client()
            wait_for("presence rebuilt", lambda: all(cluster.presence(m) for m in ids))
            wait_for(
                "both nodes subscribed again",
                lambda: all(
                    count == 1
                    for _, count in bus.pubsub_numsub(
                        *(f"fjh:node:{n}" for n in cluster.node_ids.values())
                    )
                ),
            )
            assert loop.run(info(running))  # the relay never needed Redis
            for letter, api in apis.items():
                machine = other_nodes_machine(letter)
                if machine is not None:
                    crossing = loop.run(open_session(api, machine))
                    assert loop.run(info(crossing))
                    loop.run(closed_quietly(crossing))
            assert len(site.events("agent.connect")) == connects
            assert site.wait_online(token, names)

            # e) PostgreSQL unreachable: every answer through the front is the nodes' own
            #    clear 503 (HAProxy's checks fail on both, the unchecked backups answer),
            #    an agent started meanwhile keeps trying, and the nodes recover unrestarted.
            cluster.proxy.cut()
            # Not the running session's agent: that session is to outlive the outage.
            by_name = {m["hostname"]: m["id"] for m in machines}
            restarted = next(a for a in site.agents if by_name[a.name] != held)
            restarted.stop()
            restarted.start()
            answers = [web.get(front.url + "/api/v1/machines", headers=bearer)]
            wait_for("HAProxy to mark both nodes down", lambda: set(
                front.status("nodes").values()
            ) == {"DOWN"})  # fmt: skip
            answers.append(web.get(front.url + "/api/v1/machines", headers=bearer))
            answers.append(
                web.post(
                    front.url + "/api/v1/sessions",
                    headers=bearer,
                    json={"machine_id": ids[0], "technician_key": "A" * 43 + "="},
                )
            )
            answers.append(
                web.post(front.url + "/api/v1/auth/login", json={"username": "x", "password": "y"})
            )
            for answer in answers:
                assert_unavailable(answer)
            assert loop.run(info(running))  # a running session outlives the outage too
            wait_for(
                "the agent started meanwhile to try again",
                lambda: "reconnecting in" in restarted.log.read_text(),
            )
            cluster.proxy.restore()
            wait_for("HAProxy to see both nodes up", lambda: set(
                front.status("nodes").values()
            ) == {"UP"})  # fmt: skip
            site.wait_online(token, names, timeout=120)
            loop.run(closed_quietly(running))
            opened.clear()

            # c) Node a killed outright while it relays sessions: its agents come back on
            #    b within their back-off, and b records the end of a's sessions.
            victims = [loop.run(open_session(apis["a"], machine)) for machine in ids]
            opened.extend(victims)
            for session in victims:
                assert loop.run(info(session))
            on_a = [m for m in ids if cluster.presence(m) == cluster.node_ids["a"]]
            cluster.nodes["a"].proc.send_signal(signal.SIGKILL)
            cluster.nodes["a"].proc.wait(30)
            survivor = cluster.node_ids["b"]
            wait_for(
                "every agent on the survivor",
                lambda: all(cluster.presence(m) == survivor for m in ids),
                timeout=120,
            )
            for session in victims:
                row = wait_for(
                    "the lost node's session ended", lambda s=session: ended(site, s.session_id)
                )
                assert row.end_reason == "node_lost" and row.ended_at is not None
            recorded = {json.loads(e.details)["session"] for e in site.events("session.ended")}
            assert {str(s.session_id) for s in victims} <= recorded
            if on_a:
                connects = site.events("agent.connect")
                assert any(survivor in (e.details or "") for e in connects)
            site.wait_online(token, names, timeout=120)
            # And the service goes on through the front: a session on the survivor.
            after = loop.run(open_session(through_front, ids[0]))
            opened.append(after)
            assert loop.run(info(after))
            assert session_row(site, after.session_id).node_id == survivor
            site.world.db.rollback()
            assert verify_chain(site.world.db).ok
            log = cluster.nodes["b"].log.read_text()
            assert "Exception in ASGI application" not in log
            assert "node heartbeat failed" not in log
        finally:
            for session in opened:
                loop.run(closed_quietly(session), timeout=60)
            for api in (*apis.values(), through_front):
                api.close()
