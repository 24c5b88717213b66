"""Throughput through the relay and the whole tunnel, and session setup time.

Baselines, measured in the same run on the same loopback:
- direct: 64 KiB binary WebSocket messages from one client to a plain `websockets` sink;
- relay: the same messages through the server's relay endpoint (two paired sockets);
- tunnel: a file copied to a real agent through the relay, end-to-end encrypted, checked
  by SHA-256 at both ends and written to disk (what a technician's `--put` does).
Setup: from asking the server for a session to the first stream open at the agent,
against the time of one plain WebSocket connect and echo round trip.

Run: .venv/bin/python bench/tunnel.py [--megabytes 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websockets

from bench._live import live_site
from fjernhjelp.streams.files.technician import put_file
from fjernhjelp.technician.api import Api
from fjernhjelp.technician.tunnel import open_session

CHUNK = 64 * 1024


async def _pump(send_ws, recv_ws, total: int) -> float:  # type: ignore[no-untyped-def]
    payload = os.urandom(CHUNK)
    count = total // CHUNK

    async def receiver() -> None:
        got = 0
        while got < count:
            await recv_ws.recv()
            got += 1

    start = time.perf_counter()
    task = asyncio.create_task(receiver())
    for _ in range(count):
        await send_ws.send(payload)
    await task
    return total / (time.perf_counter() - start) / 1e6


async def direct(total: int) -> float:
    done: asyncio.Queue[object] = asyncio.Queue()

    async def sink(ws) -> None:  # type: ignore[no-untyped-def]
        await done.put(ws)
        await ws.wait_closed()

    async with websockets.serve(sink, "127.0.0.1", 0, max_size=None, compression=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with websockets.connect(
            f"ws://127.0.0.1:{port}", max_size=None, compression=None
        ) as client:
            server_side = await done.get()
            return await _pump(client, server_side, total)


def _relay_tokens(site, machine_id: str) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """A session made directly in the database, so both relay tokens are known here: the
    two ends of the relay are then plain sockets pumping bytes, and no tunnel runs."""
    import uuid

    from fjernhjelp.caller import Caller
    from fjernhjelp.remote import sessions

    db = site.world.db
    db.rollback()
    issued = sessions.request(
        db,
        Caller.of_person(site.world.tech.user, site.state.now()),
        machine_id=uuid.UUID(machine_id),
        technician_key=os.urandom(32),
        signing_key=site.state.keys.signing,
        node_id="bench",
    )
    db.commit()
    return str(issued.session.id), issued.technician_token, issued.agent_token


async def relay(site, machine_id: str, total: int) -> float:  # type: ignore[no-untyped-def]
    session_id, tech_token, agent_token = _relay_tokens(site, machine_id)
    url = site.server.url.replace("http", "ws") + f"/relay/{session_id}"
    async with (
        websockets.connect(url, max_size=None, compression=None) as tech,
        websockets.connect(url, max_size=None, compression=None) as agent,
    ):
        await tech.send(json.dumps({"role": "technician", "token": tech_token}))
        await agent.send(json.dumps({"role": "agent", "token": agent_token}))
        return await _pump(tech, agent, total)


async def tunnel_put(api: Api, machine_id: str, total: int, workdir: Path) -> float:
    source = workdir / "payload.bin"
    with source.open("wb") as fh:
        for _ in range(total // (1 << 20)):
            fh.write(os.urandom(1 << 20))
    session = await open_session(api, machine_id)
    try:
        stream = await session.tunnel.open("files")
        start = time.perf_counter()
        await put_file(stream, source, f"payload-{time.monotonic_ns()}.bin")
        return total / (time.perf_counter() - start) / 1e6
    finally:
        await session.close()


async def setup_time(api: Api, machine_id: str) -> float:
    start = time.perf_counter()
    session = await open_session(api, machine_id)
    stream = await session.tunnel.open("info")
    await stream.recv()
    elapsed = time.perf_counter() - start
    await session.close()
    return elapsed * 1000


async def ws_round_trip() -> float:
    async def echo(ws) -> None:  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        start = time.perf_counter()
        async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send(b"x")
            await ws.recv()
        return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    total = args.megabytes * (1 << 20)
    with live_site() as site:
        share = Path(tempfile.mkdtemp(prefix="fjh-share-", dir="/dev/shm"))
        site.agent("bench-pc", file_roots=[share]).start()
        site.login(site.world.tech)
        token = site.api_token(site.world.tech)
        machine = site.wait_online(token, {"bench-pc"})[0]
        assert site.server is not None
        api = Api(site.server.url, token)
        results: dict[str, list[float]] = {
            "direct": [],
            "relay": [],
            "tunnel": [],
            "setup": [],
            "rtt": [],
        }
        for _ in range(args.rounds):
            results["direct"].append(asyncio.run(direct(total)))
            results["relay"].append(asyncio.run(relay(site, machine["id"], total)))
            results["tunnel"].append(asyncio.run(tunnel_put(api, machine["id"], total, site.tmp)))
            for item in share.iterdir():
                item.unlink()
            results["setup"].append(asyncio.run(setup_time(api, machine["id"])))
            results["rtt"].append(asyncio.run(ws_round_trip()))
        api.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"direct loopback WebSocket (baseline): {med['direct']:8.1f} MB/s")
    print(
        f"raw bytes through the server's relay: {med['relay']:8.1f} MB/s   "
        f"ratio {med['relay'] / med['direct']:.3f}"
    )
    print(
        f"file put through relay + tunnel:      {med['tunnel']:8.1f} MB/s   "
        f"ratio {med['tunnel'] / med['direct']:.3f}"
    )
    print(f"plain WebSocket connect + echo:       {med['rtt']:8.1f} ms")
    print(
        f"session setup to first stream:        {med['setup']:8.1f} ms   "
        f"ratio {med['setup'] / med['rtt']:.1f}"
    )
    print(json.dumps({k: [round(x, 2) for x in v] for k, v in results.items()}))


if __name__ == "__main__":
    main()
