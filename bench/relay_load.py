"""The relay under load: 50 desktop sessions at once, then the same with 2 bulk file
copies through the same node; the desktop sessions' frame latency against the quiet run.

Each desktop session is the RFB-through-tunnel pattern (docs/BENCHMARKS.md, "Desktop
stream"): the agent's end sends frame updates 30 times a second, each split into tunnel
records of at most 16 KiB (default 19.5 KB an update, the moving-window scene's size),
and the technician's end sends 64-byte input messages 20 times a second. Latency is from
the agent's end starting a frame to the technician's end holding all of it, both ends in
this process (one clock); the sessions' frames are spread evenly over the 1/30 s period
(PHASES). The bulk copies push 16 KiB records one way as fast as the relay
takes them, from a process of their own (so they compete for the server, not for this
process's event loop). Server: a real ``fjernhjelp serve`` (bench/_relay_rig.py).

Which relay (``--relay``): the node's main port (uvicorn, Starlette), its lean relay
listener (FJERNHJELP_RELAY_BIND), or a bare `websockets` relay (the baseline; ``all``
runs the three one after the other). The CPU each process used in each phase is printed
(the server, this process's desktop clients, the bulk copies' process, and the machine's
idle share), so a latency that comes from the benchmark's own clients being starved of
CPU is told apart from the relay's: the bare relay under the same load is the yardstick.

Run: make bench-relay
     (= .venv/bin/python bench/relay_load.py [--sessions 50] [--seconds 10] [--bulk 2]
        [--relay main|lean|bare|all] [--bulk-nice 19|0] [--phases even|connect])
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import websockets

from bench._relay_rig import (
    Server,
    Ticket,
    bench_site,
    fake_tickets,
    join,
    start_bare,
    start_ours,
    tickets,
)

RECORD = 16 * 1024
FPS = 30
# PHASES: where in the 1/FPS period each session's frames fall. "even" (the default since
# 2026-12-06): session i of n at i/n of the period, as independent desktops would be
# (one frame every 0.67 ms for 50 sessions). "connect": each session's clock starts when
# its connect returns, as before: on the lean listener, which answers the upgrade at
# once, the 50 clocks started within ~3.5 ms of each other, so every 33 ms the 50 frames
# came as one ~1 MB burst that queued in this process, and that queue was most of the
# lean listener's "quiet" latency (docs/BENCHMARKS.md, "The relay under load", 15:40).
PHASES = ("even", "connect")
INPUT_HZ = 20
# No keepalive pings: on a loaded machine a late pong would end a session mid-run.
OPTIONS = {"compression": None, "max_size": 1 << 20, "ping_interval": None}


@dataclass
class Samples:
    phase: str = "warmup"
    latencies: dict[str, list[list[float]]] = field(default_factory=dict)  # phase -> per session

    def add(self, session: int, seconds: float) -> None:
        per = self.latencies.setdefault(self.phase, [])
        while len(per) <= session:
            per.append([])
        per[session].append(seconds)


async def desktop(
    server: Server,
    ticket: Ticket,
    index: int,
    frame: int,
    samples: Samples,
    stop: asyncio.Event,
    phase: float | None = None,
) -> None:
    url = server.url(ticket.session_id)
    async with (
        websockets.connect(url, **OPTIONS) as tech,
        websockets.connect(url, **OPTIONS) as agent,
    ):
        await tech.send(join("technician", ticket.technician))
        await agent.send(join("agent", ticket.agent))
        body = os.urandom(frame)
        records = [body[i : i + RECORD] for i in range(0, frame, RECORD)]

        async def frames() -> None:
            tick = time.perf_counter()
            if phase is not None:
                # This session's frames fall at its own point of the 1/FPS period (see
                # PHASES), from its first such point after now.
                period = 1 / FPS
                tick = phase + period * (1 + (tick - phase) // period)
                await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            while not stop.is_set():
                stamp = struct.pack("!d", time.perf_counter())
                await agent.send(stamp + records[0][8:])
                for record in records[1:]:
                    await agent.send(record)
                tick += 1 / FPS
                await asyncio.sleep(max(0.0, tick - time.perf_counter()))

        async def inputs() -> None:
            while not stop.is_set():
                await tech.send(b"i" * 64)
                await asyncio.sleep(1 / INPUT_HZ)

        async def screen() -> None:
            while True:
                first = await tech.recv()
                assert isinstance(first, bytes)
                for _ in records[1:]:
                    await tech.recv()
                (sent,) = struct.unpack("!d", first[:8])
                samples.add(index, time.perf_counter() - sent)

        async def input_sink() -> None:
            while True:
                await agent.recv()

        readers = [asyncio.create_task(screen()), asyncio.create_task(input_sink())]
        await asyncio.gather(frames(), inputs())
        for task in readers:
            task.cancel()


async def bulk_copy(url: str, ticket: Ticket, seconds: float) -> int:
    async with (
        websockets.connect(url, **OPTIONS) as tech,
        websockets.connect(url, **OPTIONS) as agent,
    ):
        await tech.send(join("technician", ticket.technician))
        await agent.send(join("agent", ticket.agent))
        record = os.urandom(RECORD)
        moved = 0

        async def sink() -> None:
            nonlocal moved
            while True:
                moved += len(await agent.recv())

        task = asyncio.create_task(sink())
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            await tech.send(record)
        task.cancel()
        return moved


async def _bulk_child(spec: dict[str, object]) -> None:
    # The copies stand for other machines: at nice 19 (the default) their clients take only
    # the CPU the desktop clients and the server leave, while the server still has to relay
    # every byte they send, so the figure is the relay's and not the 2-core machine's.
    os.nice(int(str(spec["nice"])))
    base = str(spec["base"])
    raw = spec["tickets"]
    assert isinstance(raw, list)
    seconds = float(str(spec["seconds"]))
    done = await asyncio.gather(
        *(bulk_copy(f"{base}/relay/{t[0]}", Ticket(*t), seconds) for t in raw)
    )
    print(
        json.dumps({"bytes": sum(done), "seconds": seconds, "cpu": time.process_time()}),
        flush=True,
    )


class Cpu:
    """CPU-seconds of the server and of this process (the desktop clients), and the
    machine's idle time, between two marks."""

    def __init__(self, server: Server) -> None:
        self.server = psutil.Process(server.proc.pid)
        self.me = psutil.Process()
        self.mark()

    def _now(self) -> tuple[float, float, float, float]:
        s, m = self.server.cpu_times(), self.me.cpu_times()
        return (
            time.perf_counter(),
            s.user + s.system,
            m.user + m.system,
            psutil.cpu_times().idle,
        )

    def mark(self) -> None:
        self._start = self._now()

    def cores(self) -> dict[str, float]:
        """Cores used on average since the mark (1.0 = one core all the time)."""
        end = self._now()
        wall = end[0] - self._start[0]
        return {
            "server": (end[1] - self._start[1]) / wall,
            "desktop_clients": (end[2] - self._start[2]) / wall,
            "machine_idle": (end[3] - self._start[3]) / wall,
        }


def _summary(samples: list[list[float]]) -> dict[str, float]:
    everything = sorted(x for per in samples for x in per)
    medians = sorted(statistics.median(per) for per in samples if per)
    return {
        "median_ms": 1000 * statistics.median(everything),
        "p95_ms": 1000 * everything[int(0.95 * (len(everything) - 1))],
        "worst_session_median_ms": 1000 * medians[-1],
        "frames": len(everything),
    }


async def _run(
    args: argparse.Namespace, server: Server, desk: list[Ticket], heavy: list[Ticket]
) -> dict[str, object]:
    samples = Samples()
    stop = asyncio.Event()
    epoch = time.perf_counter()
    sessions = [
        asyncio.create_task(
            desktop(
                server,
                t,
                i,
                args.frame,
                samples,
                stop,
                epoch + i / len(desk) / FPS if args.phases == "even" else None,
            )
        )
        for i, t in enumerate(desk)
    ]
    await asyncio.sleep(2)  # every session connected and at its pace
    samples.phase = "quiet"
    cpu = Cpu(server)
    await asyncio.sleep(args.seconds)
    quiet_cores = cpu.cores()
    samples.phase = "loaded-start"
    spec = {
        "base": server.ws_base,
        "tickets": [[t.session_id, t.technician, t.agent] for t in heavy],
        "seconds": args.seconds + 2,
        "nice": args.bulk_nice,
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--bulk-child", json.dumps(spec), stdout=subprocess.PIPE
    )
    await asyncio.sleep(1)  # the copies under way
    samples.phase = "loaded"
    cpu.mark()
    await asyncio.sleep(args.seconds)
    loaded_cores = cpu.cores()
    samples.phase = "after"
    out, _ = await child.communicate()
    stop.set()
    await asyncio.gather(*sessions)
    bulk = json.loads(out)
    quiet = _summary(samples.latencies["quiet"])
    loaded = _summary(samples.latencies["loaded"])
    due = args.sessions * FPS * args.seconds
    print(
        f"[{server.name}] {args.sessions} desktop sessions ({args.frame} B frames at {FPS} fps, "
        f"64 B input at {INPUT_HZ}/s) through one node; frame latency, agent end to technician end:"
    )
    print(f"  mode: {_mode(args.bulk_nice)}; the sessions' frame clocks: {args.phases}")
    for name, s in (("quiet relay", quiet), (f"with {args.bulk} bulk copies", loaded)):
        print(
            f"  {name:22s} median {s['median_ms']:6.2f} ms   p95 {s['p95_ms']:6.2f} ms   "
            f"worst session's median {s['worst_session_median_ms']:6.2f} ms   "
            f"({s['frames']} of {due} frames due)"
        )
    print(
        f"  ratio loaded/quiet: median {loaded['median_ms'] / quiet['median_ms']:.2f}   "
        f"p95 {loaded['p95_ms'] / quiet['p95_ms']:.2f}   worst session "
        f"{loaded['worst_session_median_ms'] / quiet['worst_session_median_ms']:.2f}"
    )
    print(
        f"  bulk copies moved {bulk['bytes'] / 1e6 / bulk['seconds']:.1f} MB/s together "
        f"while the desktops ran (their process: {bulk['cpu'] / bulk['seconds']:.2f} cores)"
    )
    # The server's CPU for the copies' bytes (its loaded cores less its quiet ones, over
    # the copies' rate): the cost of fairness shows here next to the latency ratio.
    rate = bulk["bytes"] / 1e9 / bulk["seconds"]
    copy_cost = (loaded_cores["server"] - quiet_cores["server"]) / rate if rate else 0.0
    print(
        f"  server while loaded: {loaded_cores['server']:.2f} cores, "
        f"{copy_cost:.2f} CPU-s per GB of the copies (less its quiet cores)"
    )
    for name, cores in (("quiet", quiet_cores), ("loaded", loaded_cores)):
        print(
            f"  cores used, {name:6s}: server {cores['server']:.2f}   desktop clients "
            f"{cores['desktop_clients']:.2f}   machine idle {cores['machine_idle']:.2f} "
            f"of {psutil.cpu_count()}   load average {os.getloadavg()[0]:.1f}"
        )
    result = {
        "relay": server.name,
        "quiet": quiet,
        "loaded": loaded,
        "bulk": bulk,
        "cores": {"quiet": quiet_cores, "loaded": loaded_cores},
        "server_cpu_s_per_copied_gb": copy_cost,
        "bulk_nice": args.bulk_nice,
        "phases": args.phases,
    }
    print(json.dumps(result))
    return result


def _mode(nice: int) -> str:
    if nice >= 19:
        return (
            "the bulk copies' process at nice 19 (it stands for other machines' CPU; "
            "the server still relays all its bytes)"
        )
    return (
        f"the bulk copies' process at nice {nice} (it competes with the desktop "
        "clients for this machine's CPU)"
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--bulk", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--frame", type=int, default=19_500, help="bytes per frame update")
    parser.add_argument("--relay", choices=["main", "lean", "bare", "all"], default="lean")
    parser.add_argument(
        "--bulk-nice",
        type=int,
        default=19,
        help="CPU priority of the bulk copies' process: 19 (default) or 0, the old mode",
    )
    parser.add_argument(
        "--phases",
        choices=PHASES,
        default="even",
        help="the sessions' frames spread evenly over the period (default), or each "
        "session's clock from its connect (the old mode; clusters on the lean listener)",
    )
    return parser


def measure(args: argparse.Namespace, relays: list[str]) -> list[dict[str, object]]:
    """Each relay's run (``_run``'s result), one after the other; bench/fleet.py calls
    this too, for its row of the relay's latency under load."""
    results = []
    with bench_site() as (site, machine_id):
        for relay in relays:
            if relay == "bare":
                server = start_bare(Path(tempfile.mkdtemp(prefix="fjh-relay-load-")))
                desk, heavy = fake_tickets(args.sessions), fake_tickets(args.bulk)
            else:
                server = start_ours(site, relay, lean=relay == "lean")
                desk = tickets(site, machine_id, args.sessions)
                heavy = tickets(site, machine_id, args.bulk)
            try:
                results.append(asyncio.run(_run(args, server, desk, heavy)))
            finally:
                server.stop()
    return results


def main() -> None:
    if sys.argv[1:2] == ["--bulk-child"]:
        asyncio.run(_bulk_child(json.loads(sys.argv[2])))
        return
    args = parser().parse_args()
    relays = ["main", "lean", "bare"] if args.relay == "all" else [args.relay]
    results = measure(args, relays)
    if len(results) > 1:
        print(
            "median frame latency with the bulk copies, as a ratio to the quiet relay "
            f"({_mode(args.bulk_nice)}):"
        )
        for r in results:
            quiet, loaded = r["quiet"], r["loaded"]
            assert isinstance(quiet, dict) and isinstance(loaded, dict)
            print(f"  {r['relay']:6s} {loaded['median_ms'] / quiet['median_ms']:6.2f}")


if __name__ == "__main__":
    main()
