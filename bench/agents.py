"""Memory per connected idle agent, and how long N agents take to come back after a
server restart.

Baseline, measured in the same run: a bare `websockets` server process holding the same
number of idle connections (no TLS, no authentication, no application state). The agents
are real control links (fjernhjelp.agent.link.ControlLink), enrolled with a real package;
they run as tasks in this process, the server in its own process.

Run: .venv/bin/python bench/agents.py [--agents 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psutil
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._live import live_site, package_for
from fjernhjelp.agent.link import ControlLink, LinkConfig
from fjernhjelp.control import statements
from fjernhjelp.control.messages import MachineInfo, b64
from fjernhjelp.control.package import read_package

BARE_SERVER = textwrap.dedent(
    """
    import asyncio, sys, websockets
    async def hold(ws):
        await ws.wait_closed()
    async def main():
        async with websockets.serve(hold, "127.0.0.1", 0, compression=None) as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.Future()
    asyncio.run(main())
    """
)


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


async def enrol_all(url: str, token: str, n: int) -> list[tuple[uuid.UUID, Ed25519PrivateKey]]:
    out: list[tuple[uuid.UUID, Ed25519PrivateKey]] = []
    limit = asyncio.Semaphore(16)

    async def one(i: int, client: httpx.AsyncClient) -> None:
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes_raw()
        async with limit:
            r = await client.post(
                "/api/v1/agents/enrol",
                json={
                    "token": token,
                    "public_key": b64(public),
                    "signature": b64(key.sign(statements.enrol_statement(token, public))),
                    "info": {"hostname": f"pc-{i:05d}", "os": "bench", "agent_version": "0"},
                },
            )
        r.raise_for_status()
        out.append((uuid.UUID(r.json()["machine_id"]), key))

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(one(i, client) for i in range(n)))
    return out


async def online_count(url: str, admin_token: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        r = await client.get("/api/v1/machines", headers={"Authorization": f"Bearer {admin_token}"})
        return sum(1 for m in r.json() if m["online"])


async def wait_online(url: str, admin_token: str, n: int, limit_seconds: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < limit_seconds:
        if await online_count(url, admin_token) >= n:
            return time.perf_counter() - start
        await asyncio.sleep(0.25)
    raise TimeoutError(f"not all {n} agents came online")


async def bare_baseline(n: int) -> tuple[float, float]:
    """Bytes per idle connection and seconds to open n connections, on a bare server."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BARE_SERVER, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    port = int(await proc.stdout.readline())
    before = rss(proc.pid)
    start = time.perf_counter()
    clients = await asyncio.gather(
        *(websockets.connect(f"ws://127.0.0.1:{port}", compression=None) for _ in range(n))
    )
    elapsed = time.perf_counter() - start
    await asyncio.sleep(1)
    per = (rss(proc.pid) - before) / n
    await asyncio.gather(*(c.close() for c in clients))
    proc.terminate()
    await proc.wait()
    return per, elapsed


async def run(n: int) -> None:
    with live_site() as site:
        assert site.server is not None
        package = read_package(package_for(site, n))
        admin_token = site.api_token(site.world.gp_admin)
        identities = await enrol_all(site.server.url, package.enrolment_token, n)
        server_pid = site.server.proc.pid
        before = rss(server_pid)

        async def ignore(_: object) -> None:
            return None

        control = site.server.url.replace("http", "ws") + "/agent/control"
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        server_key = Ed25519PublicKey.from_public_bytes(package.server_public_key)
        links = [
            ControlLink(
                LinkConfig(
                    control_url=control, server_public_key=server_key, machine_id=mid, identity=key
                ),
                machine_info=lambda i=i: MachineInfo(
                    hostname=f"pc-{i:05d}", os="bench", agent_version="0"
                ),
                on_dial=ignore,
                on_cut=ignore,
            )
            for i, (mid, key) in enumerate(identities)
        ]
        tasks = [asyncio.create_task(link.run_forever()) for link in links]
        first = await wait_online(site.server.url, admin_token, n, limit_seconds=600)
        await asyncio.sleep(2)
        per_agent = (rss(server_pid) - before) / n

        site.restart_server()
        restarted = time.perf_counter()
        await wait_online(site.server.url, admin_token, n, limit_seconds=900)
        reconnect = time.perf_counter() - restarted
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    bare_per, bare_connect = await bare_baseline(n)
    print(f"agents: {n}")
    print(f"bare websockets server, per idle connection (baseline): {bare_per / 1024:7.1f} KiB")
    print(
        f"fjernhjelp server, per connected idle agent:            {per_agent / 1024:7.1f} KiB"
        f"   ratio {per_agent / bare_per:.2f}"
    )
    print(f"first connection of all agents (enrolled, authenticated): {first:6.1f} s")
    print(f"bare server: {n} plain connections opened in            {bare_connect:6.2f} s")
    print(
        f"all agents back after a server restart:                 {reconnect:6.1f} s"
        f"   ratio {reconnect / bare_connect:.1f} to opening as many plain connections"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.agents))


if __name__ == "__main__":
    main()
