"""What the relay benchmarks share: servers to measure (ours, plain or with TLS; a bare
`websockets` relay as the baseline), sessions whose relay tokens are known here, and
the CPU time of a server process.

Our server is a real ``fjernhjelp serve`` process on the throwaway site's database
(bench/_live.py). Sessions are made directly in the database, so both relay tokens are
known and the two ends of each session are plain sockets: no tunnel runs, the relay's
cost alone is measured (its token check, size limit, counting and cut all stay on).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.exc import OperationalError
from tests.e2e.conftest import free_port

from fjernhjelp.caller import Caller
from fjernhjelp.remote import sessions

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Ticket:
    session_id: str
    technician: str
    agent: str


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    ws_base: str  # ws://host:port or wss://
    ssl: ssl.SSLContext | None

    def cpu(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def cpu_split(self) -> tuple[float, float]:
        """User and system CPU-seconds: the relay's own work against the kernel's copies."""
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user, times.system

    def url(self, session_id: str) -> str:
        return f"{self.ws_base}/relay/{session_id}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "bench-cert.pem", directory / "bench-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def client_ssl(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def _wait_ready(url: str, proc: subprocess.Popen[bytes], verify: Any, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=1, verify=verify).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"server not ready:\n{log.read_text()[-3000:]}")


def start_ours(
    site: Any, name: str, tls: tuple[Path, Path] | None = None, *, lean: bool = False
) -> Server:
    """A second ``fjernhjelp serve`` on the site's database: the one measured (the site's
    own server keeps the agent's link). Every bench client comes from 127.0.0.1, where in
    use each comes from its own address: the per-address cap on sockets still joining is
    raised accordingly. ``lean``: the relay's sockets go to the node's lean relay
    listener (FJERNHJELP_RELAY_BIND, server/relay_listener.py) instead of the main port."""
    port = free_port()
    relay_port = free_port() if lean else port
    log = site.tmp / f"{name}.log"
    env = {
        **os.environ,
        "FJERNHJELP_DATA_DIR": str(site.state.settings.data_dir),
        "FJERNHJELP_DATABASE_URL": site.database_url,
        "FJERNHJELP_BIND": f"127.0.0.1:{port}",
        "FJERNHJELP_NODE_ID": f"bench-{name}",
        "FJERNHJELP_LOG_LEVEL": "WARNING",
        # Every session's ends come from this one address.
        "FJERNHJELP_WS_UNAUTHENTICATED_PER_ADDRESS": "1000",
        "FJERNHJELP_WS_SILENT_STRIKES": "1000000",
    }
    if tls:
        env["FJERNHJELP_TLS_CERT"], env["FJERNHJELP_TLS_KEY"] = str(tls[0]), str(tls[1])
    if lean:
        env["FJERNHJELP_RELAY_BIND"] = f"127.0.0.1:{relay_port}"
    scheme = "https" if tls else "http"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fjernhjelp", "serve"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    _wait_ready(f"{scheme}://127.0.0.1:{port}", proc, str(tls[0]) if tls else True, log)
    return Server(
        name,
        proc,
        f"{'wss' if tls else 'ws'}://127.0.0.1:{relay_port}",
        client_ssl(tls[0]) if tls else None,
    )


def start_bare(tmp: Path, tls: tuple[Path, Path] | None = None) -> Server:
    """The baseline: a bare `websockets` relay (this file run as a script), pairing two
    sockets by path and copying messages, nothing else."""
    port = free_port()
    log = tmp / f"bare-{port}.log"
    args = [sys.executable, __file__, "--bare", str(port)]
    if tls:
        args += [str(tls[0]), str(tls[1])]
    proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)
    scheme = "https" if tls else "http"
    _wait_ready(f"{scheme}://127.0.0.1:{port}", proc, str(tls[0]) if tls else True, log)
    return Server(
        "bare+tls" if tls else "bare",
        proc,
        f"{'wss' if tls else 'ws'}://127.0.0.1:{port}",
        client_ssl(tls[0]) if tls else None,
    )


def tickets(site: Any, machine_id: str, count: int) -> list[Ticket]:
    # The servers write the same SQLite file (session ends, presence): a locked database
    # is worth another try here, as nothing was made yet.
    for attempt in range(20):
        try:
            return _tickets(site, machine_id, count)
        except OperationalError:
            site.world.db.rollback()
            time.sleep(0.2 * (attempt + 1))
    return _tickets(site, machine_id, count)


def _tickets(site: Any, machine_id: str, count: int) -> list[Ticket]:
    db = site.world.db
    db.rollback()
    made = []
    for _ in range(count):
        issued = sessions.request(
            db,
            Caller.of_person(site.world.tech.user, site.state.now()),
            machine_id=uuid.UUID(machine_id),
            technician_key=os.urandom(32),
            signing_key=site.state.keys.signing,
            node_id="bench",
        )
        made.append(Ticket(str(issued.session.id), issued.technician_token, issued.agent_token))
    db.commit()
    return made


def fake_tickets(count: int) -> list[Ticket]:
    """For the bare relay, which checks nothing."""
    return [Ticket(str(uuid.uuid4()), "x", "x") for _ in range(count)]


def join(role: str, token: str) -> str:
    return json.dumps({"role": role, "token": token})


@contextlib.contextmanager
def bench_site() -> Iterator[tuple[Any, str]]:
    """The throwaway site with one agent online (the sessions' machine)."""
    from bench._live import live_site

    with live_site() as site:
        site.agent("bench-pc").start()
        token = site.api_token(site.world.tech)
        machine = site.wait_online(token, {"bench-pc"})[0]
        yield site, machine["id"]


# -- the bare relay (run as a script) ---------------------------------------------------


async def _bare(port: int, cert: str | None, key: str | None) -> None:
    import websockets
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    waiting: dict[str, tuple[ServerConnection, asyncio.Future[ServerConnection]]] = {}

    def health(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(200, "ok\n")
        return None

    async def pipe(a: ServerConnection, b: ServerConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in a:
                await b.send(message)
        await b.close()

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else "/"
        await ws.recv()  # the join message; the baseline checks nothing
        if path in waiting:
            other, paired = waiting.pop(path)
            paired.set_result(ws)
            await pipe(ws, other)
        else:
            paired = asyncio.get_running_loop().create_future()
            waiting[path] = (ws, paired)
            await pipe(ws, await paired)

    ctx = None
    if cert and key:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    async with websockets.serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        max_size=1 << 20,
        ssl=ctx,
        process_request=health,
    ):
        await asyncio.Future()


if __name__ == "__main__" and sys.argv[1:2] == ["--bare"]:
    rest = sys.argv[2:]
    asyncio.run(_bare(int(rest[0]), *(rest[1:3] if len(rest) >= 3 else (None, None))))
