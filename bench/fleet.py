"""A fleet of simulated agents across nodes behind HAProxy: memory per idle agent, server
CPU per (re)connect, and time back after a node restart, each as a ratio to bare
`websockets` servers run the same way in the same run; then the relay's latency under
load (bench/relay_load.py: 50 desktop sessions with 2 bulk copies, the lean relay
listener against a bare `websockets` relay).

- The fjernhjelp nodes are real `fjernhjelp serve` processes sharing PostgreSQL and Redis.
- The agents are real control-link logins (challenge checked against the pinned server key,
  nonce signed with each agent's own Ed25519 key), made by a compact swarm
  (bench/_swarm.py, raw websockets clients, a few processes), with the agent's back-off.
- The baseline: bare `websockets` servers (bench/_bare_node.py) doing the same handshake's
  crypto (sign the challenge, verify the proof) with no database, no Redis, no audit.
- HAProxy (Debian's) in front of both, configured by bench/fleet-haproxy.cfg.

Run: make bench-fleet   (or .venv/bin/python bench/fleet.py --agents 20000)
     [--profile DIR]   (py-spy of each of our nodes while the agents connect, raw format)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert
from tests.e2e.conftest import ServerProcess, free_port, start_server
from tests.portal.world import build_world

from bench import relay_load
from bench._common import throwaway_postgres
from fjernhjelp.agent.backoff import STABLE_AFTER
from fjernhjelp.config import Settings
from fjernhjelp.db import migrate
from fjernhjelp.machines.models import Machine
from fjernhjelp.server.state import build_state

BENCH = Path(__file__).resolve().parent
PER_PROXY = 8000
# What one node may hold at once on this machine (its 20,000 open files, less its own):
# with 20,000 agents on 2 nodes the one left during a restart cannot take them all, and
# an accept that fails for want of a file is a connection refused. Each HAProxy sends a
# node at most its share of this; the rest wait in HAProxy's queue for a node with room
# (the restarted one), as a deployment sizes `maxconn` to its nodes.
NODE_CONNECTIONS = 18000
REDIS_URL = os.environ.get("FJERNHJELP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")


@dataclass
class Agents:
    ids: list[uuid.UUID]
    seeds: list[bytes]
    public: dict[str, str] = field(default_factory=dict)


def make_agents(n: int) -> Agents:
    ids, seeds, public = [], [], {}
    for _ in range(n):
        key = Ed25519PrivateKey.generate()
        mid = uuid.uuid4()
        ids.append(mid)
        seeds.append(key.private_bytes_raw())
        public[str(mid)] = key.public_key().public_bytes_raw().hex()
    return Agents(ids, seeds, public)


def database() -> AbstractContextManager[str]:
    return throwaway_postgres("fjh_fleet")


def enrol_directly(settings: Settings, agents: Agents) -> bytes:
    """The machines as enrolment leaves them, written in bulk (enrolment is not what is
    measured); returns the server's public signing key the agents pin."""
    state = build_state(settings)
    migrate.upgrade(state.engine)
    with state.readers() as db:
        world = build_world(db, state, agreement=False, grant=False)
        org, group = world.gp.id, world.group.id
        db.commit()
    rows = [
        {
            "id": mid,
            "organisation_id": org,
            "group_id": group,
            "identity_public_key": bytes.fromhex(agents.public[str(mid)]),
            "hostname": f"pc-{str(mid)[:8]}",
            "os": "bench",
            "agent_version": "0",
        }
        for mid in agents.ids
    ]
    with state.engine.begin() as conn:
        for start in range(0, len(rows), 2000):
            conn.execute(insert(Machine), rows[start : start + 2000])
    public = state.keys.signing.public_key().public_bytes_raw()
    state.engine.dispose()
    return public


class HAProxy:
    def __init__(self, tmp: Path, nodes: list[Node], index: int, of: int) -> None:
        self.port = free_port()
        template = (BENCH / "fleet-haproxy.cfg").read_text()
        # As the deployment: each node checked on its main port's /healthz, its agent
        # listener following that check (a bare node answers /healthz on a second port).
        checked = "\n".join(
            f"    server node{i} 127.0.0.1:{node.main_port} check" for i, node in enumerate(nodes)
        )
        agents = "\n".join(
            f"    server node{i} 127.0.0.1:{node.port} track nodes/node{i}"
            f" maxconn {NODE_CONNECTIONS // of}"
            for i, node in enumerate(nodes)
        )
        self.cfg = tmp / f"haproxy-{index}.cfg"
        self.cfg.write_text(
            template.replace("@PORT@", str(self.port))
            .replace("@NODES@", checked)
            .replace("@AGENTS@", agents)
        )
        # Its log (servers marked down or up, 503s for want of one) for the report.
        self.log = tmp / f"haproxy-{index}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.cfg)], stdout=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited")
            if _listening(self.port):
                return
            time.sleep(0.1)
        raise TimeoutError("haproxy did not listen")

    def events(self) -> list[str]:
        """What HAProxy said about its servers (marked down or up, none left)."""
        return [
            line.strip()
            for line in self.log.read_text(errors="replace").splitlines()
            if " is DOWN" in line or " is UP" in line or "no server available" in line
        ]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Swarm:
    """The swarm processes and their running count of logged-in agents."""

    def __init__(self, urls: list[str], server_key: bytes, agents: Agents, processes: int) -> None:
        self.counts = [0] * processes
        self.drop_counts = [0] * processes
        self.failure_counts = [0] * processes
        self.procs: list[subprocess.Popen[str]] = []
        self.changed = threading.Condition()
        pairs = [[str(m), s.hex()] for m, s in zip(agents.ids, agents.seeds, strict=True)]
        for i in range(processes):
            proc = subprocess.Popen(
                [sys.executable, str(BENCH / "_swarm.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdin is not None
            config = {
                "url": urls[i % len(urls)],
                "server_key": server_key.hex(),
                "agents": pairs[i::processes],
            }
            proc.stdin.write(json.dumps(config) + "\n")
            proc.stdin.flush()
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(i, proc), daemon=True).start()

    def _read(self, i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            parts = line.split()
            with self.changed:
                self.counts[i] = int(parts[1])
                self.drop_counts[i] = int(parts[5])
                self.failure_counts[i] = int(parts[7])
                self.changed.notify_all()

    @property
    def up(self) -> int:
        return sum(self.counts)

    @property
    def drops(self) -> int:
        return sum(self.drop_counts)

    @property
    def failures(self) -> int:
        return sum(self.failure_counts)

    def wait(self, test: Callable[[int], bool], timeout: float) -> float:
        return self.wait_for(lambda: test(self.up), timeout)

    def wait_for(self, test: Callable[[], bool], timeout: float) -> float:
        start = time.perf_counter()
        with self.changed:
            if not self.changed.wait_for(lambda: test() or self._progress(start), timeout):
                raise TimeoutError(f"{self.up} agents up after {timeout} s")
        return time.perf_counter() - start

    _said = 0.0

    def _progress(self, start: float) -> bool:
        now = time.perf_counter()
        if now - self._said > 10:
            self._said = now
            progress(
                f"{self.up} up, {self.drops} links lost, {self.failures} attempts failed so far,"
                f" {now - start:.0f} s"
            )
        return False

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def rss(pids: list[int]) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids)


@dataclass
class Figures:
    per_agent: float  # bytes
    cpu_per_connect: float  # seconds
    connect_all: float  # seconds, wall
    back_after_restart: float  # seconds, wall
    restarted_held: int


Started = tuple[subprocess.Popen[bytes] | ServerProcess, int, int]


class Node:
    """One server process (fjernhjelp or bare), restartable on its ports: ``port`` takes
    the agents' links, ``main_port`` answers /healthz."""

    def __init__(self, start: Callable[[int | None], Started]) -> None:
        self._start = start
        self.handle, self.port, self.main_port = start(None)
        self.started_in = 0.0  # seconds from the last restart's start to listening

    @property
    def pid(self) -> int:
        h = self.handle
        return h.proc.pid if isinstance(h, ServerProcess) else h.pid

    def stop(self) -> None:
        h = self.handle
        if isinstance(h, ServerProcess):
            h.stop()
        else:
            # As ServerProcess.stop: a graceful stop, killed if it takes over 10 s.
            h.send_signal(signal.SIGTERM)
            try:
                h.wait(10)
            except subprocess.TimeoutExpired:
                h.kill()
                h.wait()

    def restart(self) -> None:
        self.stop()
        started = time.perf_counter()
        self.handle, self.port, self.main_port = self._start(self.port)
        self.started_in = time.perf_counter() - started


def profile_nodes(pids: list[int], into: Path | None) -> Callable[[], None]:
    """Starts py-spy (pip-installed into the venv) on each node; returns what stops it.
    With native frames: the garbage collector and the C extensions show by name."""
    if into is None:
        return lambda: None
    into.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(
            [
                *(
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--rate",
                    "200",
                    "--native",
                ),
                *("--pid", str(pid), "-o", str(into / f"node-{i}.txt"), "--format", "raw"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i, pid in enumerate(pids)
    ]

    def stop() -> None:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        progress(f"profiles of the nodes while connecting: {into}/node-*.txt")

    return stop


def measure(
    nodes: list[Node],
    tmp: Path,
    server_key: bytes,
    agents: Agents,
    swarms: int,
    settle: float,
    profile: Path | None = None,
) -> Figures:
    n = len(agents.ids)
    # This machine's hard limit is 20,000 open files per process and HAProxy holds two per
    # agent: one HAProxy per PER_PROXY agents, the swarms spread over them.
    count = -(-n // PER_PROXY)
    proxies = [HAProxy(tmp, nodes, i, count) for i in range(count)]
    try:
        pids = [node.pid for node in nodes]
        time.sleep(settle)
        rss_before, cpu_before = rss(pids), cpu(pids)
        urls = [f"ws://127.0.0.1:{proxy.port}/agent/control" for proxy in proxies]
        # Each proxy takes whole swarms, as many as the others (its maxconn holds them).
        per_proxy = -(-max(swarms, len(proxies)) // len(proxies))
        stop_profile = profile_nodes(pids, profile)
        swarm = Swarm(urls, server_key, agents, per_proxy * len(proxies))
        try:
            try:
                connect_all = swarm.wait(lambda up: up >= n, timeout=1800)
            finally:
                stop_profile()
            connected = time.perf_counter()
            progress(f"all {n} connected in {connect_all:.1f} s")
            cpu_per_connect = (cpu(pids) - cpu_before) / n
            time.sleep(settle)  # writes behind the logins (batches) and garbage settle
            per_agent = (rss(pids) - rss_before) / n
            held = sum(
                1
                for c in psutil.Process(nodes[0].pid).net_connections("tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == nodes[0].port
            )
            # A restart meets links that have idled: the agents' back-off starts over after
            # a link that held STABLE_AFTER (agent/backoff.py), so the restart waits for it.
            time.sleep(max(0.0, STABLE_AFTER + 1 - (time.perf_counter() - connected)))
            drops, failures = swarm.drops, swarm.failures
            restarted = time.perf_counter()
            nodes[0].restart()
            # From the node's stop to every agent it held logged in again (through the
            # other node while it was away, or to it once HAProxy sees it back).
            lost = swarm.wait_for(lambda: swarm.drops - drops >= held, timeout=1800)
            swarm.wait_for(lambda: swarm.drops - drops >= held and swarm.up >= n, timeout=1800)
            back = time.perf_counter() - restarted
            progress(
                f"{held} held by the restarted node: links lost after {lost:.1f} s, all back"
                f" in {back:.1f} s, {swarm.failures - failures} attempts failed meanwhile;"
                f" the node took {nodes[0].started_in:.1f} s from its start to answering"
            )
            for proxy in proxies:
                for line in proxy.events():
                    progress(f"haproxy: {line}")
            return Figures(per_agent, cpu_per_connect, connect_all, back, held)
        finally:
            swarm.stop()
    finally:
        for proxy in proxies:
            proxy.stop()


def bare_node(tmp: Path, agents: Agents, server_seed: bytes) -> Callable[[int | None], Started]:
    keys = tmp / "bare-keys.json"
    keys.write_text(json.dumps({"server_seed": server_seed.hex(), "agents": agents.public}))

    health_ports: dict[int, int] = {}  # each node's /healthz port, by its agents' port

    def start(port: int | None) -> Started:
        port = port or free_port()
        health_port = health_ports.setdefault(port, free_port())
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / "_bare_node.py"), str(port), str(health_port), str(keys)]
        )
        deadline = time.monotonic() + 60
        while not _listening(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("bare node did not start")
            time.sleep(0.1)
        return proc, port, health_port

    return start


def fjernhjelp_node(tmp: Path, database_url: str, name: str) -> Callable[[int | None], Started]:
    """A node whose agents' links go to its lean listener (server/agent_listener.py):
    returns that port, the one HAProxy sends /agent/control to, and the main port."""
    data = tmp / "data"
    main_port = free_port()

    def start(agent_port: int | None) -> Started:
        agent_port = agent_port or free_port()
        server = start_server(
            "serve",
            data,
            database_url,
            extra_env={
                "FJERNHJELP_NODE_ID": name,
                "FJERNHJELP_REDIS_URL": REDIS_URL,
                "FJERNHJELP_AGENT_BIND": f"127.0.0.1:{agent_port}",
                # The swarm is a country's agents from one address (through HAProxy):
                # neither a source's cap nor its strikes for silent sockets (a swarm
                # client busy with thousands of handshakes answers some late) apply.
                "FJERNHJELP_WS_UNAUTHENTICATED_PER_ADDRESS": "1000000",
                "FJERNHJELP_WS_SILENT_STRIKES": "1000000",
                "FJERNHJELP_TRUSTED_PROXIES": '["127.0.0.1/32"]',
            },
            port=main_port,
        )
        return server, agent_port, main_port

    return start


def report(
    n: int, nodes: int, bare: Figures, ours: Figures, relay: list[dict[str, Any]] | None
) -> None:
    def row(label: str, b: float, o: float, unit: str, scale: float = 1.0) -> None:
        print(f"{label:<44} {b * scale:9.2f} {o * scale:9.2f} {unit:<5} ratio {o / b:5.2f}")

    print(f"agents: {n} across {nodes} nodes behind HAProxy; load average {os.getloadavg()}")
    print(f"{'':<44} {'bare':>9} {'ours':>9}")
    row("server memory per idle agent", bare.per_agent, ours.per_agent, "KiB", 1 / 1024)
    row("server CPU per connect", bare.cpu_per_connect, ours.cpu_per_connect, "ms", 1000)
    row(f"all {n} connected (wall)", bare.connect_all, ours.connect_all, "s")
    row(
        f"back after a node restart ({ours.restarted_held} held)",
        bare.back_after_restart,
        ours.back_after_restart,
        "s",
    )
    if relay:
        # bench/relay_load.py's run: the lean relay listener and a bare websockets relay,
        # 50 desktop sessions, then with 2 bulk copies (each against its own quiet run).
        by = {r["relay"]: r for r in relay}
        lean, plain = by["lean"], by["bare"]
        row(
            "relay: desktop frame latency, 2 bulk copies",
            plain["loaded"]["median_ms"],
            lean["loaded"]["median_ms"],
            "ms",
        )
        row(
            "  the same as a ratio to its quiet relay",
            plain["loaded"]["median_ms"] / plain["quiet"]["median_ms"],
            lean["loaded"]["median_ms"] / lean["quiet"]["median_ms"],
            "x",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--swarms", type=int, default=4)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    parser.add_argument(
        "--relay-seconds",
        type=float,
        default=10,
        help="each phase of the relay's latency under load (bench/relay_load.py); 0: none",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fjh-fleet-"))
    try:
        agents = make_agents(args.agents)
        with database() as url:
            settings = Settings(data_dir=tmp / "data", database_url=url)
            server_key = enrol_directly(settings, agents)
            bare_key = Ed25519PrivateKey.generate()
            start_bare = bare_node(tmp, agents, bare_key.private_bytes_raw())
            bare_nodes = [Node(start_bare) for _ in range(args.nodes)]
            progress("bare websockets nodes")
            try:
                bare = measure(
                    bare_nodes,
                    tmp,
                    bare_key.public_key().public_bytes_raw(),
                    agents,
                    args.swarms,
                    args.settle,
                )
            finally:
                for node in bare_nodes:
                    node.stop()
            ours_nodes = [Node(fjernhjelp_node(tmp, url, f"fleet-{i}")) for i in range(args.nodes)]
            progress("fjernhjelp nodes")
            try:
                ours = measure(
                    ours_nodes, tmp, server_key, agents, args.swarms, args.settle, args.profile
                )
            finally:
                for node in ours_nodes:
                    node.stop()
        relay = None
        if args.relay_seconds > 0:
            progress("the relay under load: the lean listener, then a bare websockets relay")
            relay_args = relay_load.parser().parse_args(["--seconds", str(args.relay_seconds)])
            relay = relay_load.measure(relay_args, ["lean", "bare"])
        report(args.agents, args.nodes, bare, ours, relay)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
