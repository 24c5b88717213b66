"""The relay's CPU cost per byte: server CPU-seconds per GB relayed, ours against a bare
`websockets` relay in the same run, plain and with TLS terminated by the server.

N sessions at once (default 10), each pushing M MiB of S-byte binary messages (default
16 KiB, the tunnel's record size) from the technician's end to the agent's, through a
real ``fjernhjelp serve`` (bench/_relay_rig.py) and through the baseline. CPU is the
server process's user+system time over the transfer (psutil), all threads included.
Behind a TLS-terminating proxy our node sees the plain case.

Run: .venv/bin/python bench/relay_cost.py [--sessions 10] [--megabytes 64] [--size 16384]
     [--rounds 3] [--profile DIR]   (py-spy flame graphs of our server, plain and TLS)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websockets

from bench._relay_rig import (
    Server,
    Ticket,
    bench_site,
    fake_tickets,
    join,
    self_signed,
    start_bare,
    start_ours,
    tickets,
)

COMPRESSION: str | None = None  # --client-compression


async def _session(server: Server, ticket: Ticket, count: int, payload: bytes) -> None:
    url = server.url(ticket.session_id)
    # As our own ends do (agent, technician CLI): no per-message compression offered,
    # unless asked to offer it as a browser does (the server then decides).
    options = {"compression": COMPRESSION, "max_size": 1 << 20, "ssl": server.ssl}
    async with (
        websockets.connect(url, **options) as tech,
        websockets.connect(url, **options) as agent,
    ):
        await tech.send(join("technician", ticket.technician))
        await agent.send(join("agent", ticket.agent))

        async def receive() -> None:
            for _ in range(count):
                # Whole and in order: the relay passes frames, it must not cut them.
                if await agent.recv() != payload:
                    raise AssertionError("the relay changed a message")

        receiver = asyncio.create_task(receive())
        for _ in range(count):
            await tech.send(payload)
        await receiver


SYSTEM: dict[str, list[float]] = {}  # the kernel's share of each measurement


async def _run(server: Server, batch: list[Ticket], count: int, size: int) -> float:
    payload = os.urandom(size)
    user, system = server.cpu_split()
    await asyncio.gather(*(_session(server, t, count, payload) for t in batch))
    user_after, system_after = server.cpu_split()
    spent = user_after - user + system_after - system
    SYSTEM.setdefault(server.name, []).append((system_after - system) / spent if spent else 0)
    return spent


def measure(server: Server, batch: list[Ticket], count: int, size: int) -> float:
    """CPU-seconds per GB (10^9 bytes) relayed, of the server process."""
    cpu = asyncio.run(_run(server, batch, count, size))
    return cpu / (len(batch) * count * size / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--megabytes", type=int, default=64, help="MiB per session")
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--no-tls", action="store_true", help="the plain case only")
    parser.add_argument(
        "--client-compression",
        choices=["none", "deflate"],
        default="none",
        help="offer permessage-deflate as browsers do",
    )
    args = parser.parse_args()
    global COMPRESSION
    COMPRESSION = None if args.client_compression == "none" else "deflate"
    count = args.megabytes * (1 << 20) // args.size
    tmp = Path(tempfile.mkdtemp(prefix="fjh-relay-cost-"))
    tls = self_signed(tmp)
    results: dict[str, list[float]] = {}
    with bench_site() as (site, machine_id):
        makers = {
            "ours": lambda: start_ours(site, "plain"),
            "lean": lambda: start_ours(site, "lean", lean=True),
            "bare": lambda: start_bare(tmp),
            "ours+tls": lambda: start_ours(site, "tls", tls),
            "lean+tls": lambda: start_ours(site, "lean-tls", tls, lean=True),
            "bare+tls": lambda: start_bare(tmp, tls),
        }
        servers = {
            name: make()
            for name, make in makers.items()
            if args.no_tls is False or not name.endswith("+tls")
        }
        try:
            for _ in range(args.rounds):
                for name, server in servers.items():
                    batch = (
                        fake_tickets(args.sessions)
                        if name.startswith("bare")
                        else tickets(site, machine_id, args.sessions)
                    )
                    results.setdefault(name, []).append(measure(server, batch, count, args.size))
            if args.profile:
                _profile(args, site, machine_id, servers, count)
        finally:
            for server in servers.values():
                server.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    total = args.sessions * count * args.size / 1e9
    print(
        f"{args.sessions} sessions x {args.megabytes} MiB of {args.size}-byte messages "
        f"({total:.2f} GB a round), medians of {args.rounds} rounds, server CPU-s per GB:"
    )
    for mode in ("", "+tls"):
        if "bare" + mode not in med:
            continue
        ours, lean, bare = med["ours" + mode], med["lean" + mode], med["bare" + mode]
        label = "TLS at the node" if mode else "plain (or behind a TLS proxy)"
        print(
            f"  {label:30s} main port {ours:5.2f} (ratio {ours / bare:4.2f})   "
            f"lean listener {lean:5.2f} (ratio {lean / bare:4.2f})   "
            f"bare websockets relay {bare:5.2f}"
        )
    print(json.dumps({k: [round(x, 3) for x in v] for k, v in results.items()}))
    shares = {k: f"{statistics.median(v):.0%}" for k, v in SYSTEM.items()}
    print("system (kernel) share of the server's CPU:", json.dumps(shares))


def _profile(args, site, machine_id, servers, count) -> None:  # type: ignore[no-untyped-def]
    args.profile.mkdir(parents=True, exist_ok=True)
    for name in ("ours", "lean", "ours+tls", "lean+tls"):
        server = servers.get(name)
        if server is None:
            continue
        out = args.profile / f"{name.replace('+', '-')}.txt"
        spy = subprocess.Popen(
            [
                *(str(Path(sys.executable).parent / "py-spy"), "record", "--threads", "--native"),
                *("--pid", str(server.proc.pid), "-o", str(out), "--format", "raw"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        measure(server, tickets(site, machine_id, args.sessions), count, args.size)
        spy.send_signal(2)
        spy.wait(60)
        print(f"profile of {name}: {out}")


if __name__ == "__main__":
    main()
