"""Whose CPU a fleet's nodes spent: the event loop's thread against the worker threads.

Run next to bench/fleet.py (both started from the same snapshot, whose path the nodes'
PYTHONPATH holds): every 0.5 s it reads each `fjernhjelp serve` process's threads from
/proc (the main thread runs the event loop; the others are the worker threads that write
the login batches, departures and the housekeeping), and every 2 s the fleet's newest
database's successful `agent.connect` events per node. When the nodes have been gone
for 20 s it prints each node process's CPU seconds by thread kind and both per connect,
over the nodes' whole lives (start-up, the restart and the departures included).

Run: flock /work/bench.lock sh -c '(.venv/bin/python bench/node_threads.py SNAPSHOT &);
     PYTHONPATH=SNAPSHOT/src .venv/bin/python bench/fleet.py --agents 5000 --swarms 2'
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psycopg

ADMIN = os.environ.get("FJERNHJELP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TICK = os.sysconf("SC_CLK_TCK")


def nodes(marker: str) -> list[tuple[int, str]]:
    """The running nodes started from ``marker``'s snapshot: (pid, node id)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            if b"fjernhjelp" not in command or b"serve" not in command:
                continue
            pairs = (proc / "environ").read_bytes().split(b"\0")
            env = dict(p.split(b"=", 1) for p in pairs if b"=" in p)
        except OSError:
            continue
        if marker.encode() in env.get(b"PYTHONPATH", b""):
            found.append((int(proc.name), env.get(b"FJERNHJELP_NODE_ID", b"?").decode()))
    return found


def threads(pid: int) -> tuple[float, float]:
    """CPU seconds of the process's main thread and of all its other threads."""
    main = others = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        if int(task.name) == pid:
            main += cpu
        else:
            others += cpu
    return main, others


def connects() -> dict[str, int] | None:
    try:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            row = admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'fjh_fleet_%'"
                " ORDER BY oid DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        url = ADMIN.rsplit("/", 1)[0] + f"/{row[0]}"
        with psycopg.connect(url, autocommit=True) as db:
            found = db.execute(
                "SELECT details::json->>'node', count(*) FROM audit_events"
                " WHERE action = 'agent.connect' AND outcome = 'success' GROUP BY 1"
            ).fetchall()
        return {str(node): int(n) for node, n in found}
    except psycopg.Error:
        return None  # the database is made or dropped meanwhile


def main() -> None:
    marker = sys.argv[1]
    last: dict[int, tuple[str, float, float]] = {}
    counts: dict[str, int] = {}
    seen = 0.0
    rounds = 0
    while True:
        found = nodes(marker)
        if found:
            seen = time.monotonic()
        elif seen and time.monotonic() - seen > 20:
            break
        for pid, node in found:
            last[pid] = (node, *threads(pid))
        rounds += 1
        if found and rounds % 4 == 0:
            counts = connects() or counts
        time.sleep(0.5)
    print("per node process: CPU of the main thread (event loop), of the other threads")
    for pid, (node, main_cpu, other_cpu) in last.items():
        print(f"  {pid} {node}: main {main_cpu:.2f} s, others {other_cpu:.2f} s")
    print("agent.connect (success) per node:", counts)
    total = sum(counts.values()) or 1
    main_all = sum(v[1] for v in last.values())
    others_all = sum(v[2] for v in last.values())
    print(
        f"over {total} connects: main {main_all / total * 1e3:.3f} ms,"
        f" other threads {others_all / total * 1e3:.3f} ms per connect"
    )


if __name__ == "__main__":
    main()
