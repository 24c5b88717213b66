"""The CPU of agents' logins in a node's worker thread: batches through connections.log_in.

A node writes the agents' control-link logins in batches (server/batches.py; ~10-13 a
batch in bench/fleet.py's runs): one transaction per batch, each attempt's Ed25519 proof
checked and audited. This measures the thread's CPU time (``time.thread_time``: the
Python, SQLAlchemy and psycopg work of the node's side, not PostgreSQL's) per login for
batches of ``--batch`` logins, each machine logging in again as after a node's restart,
against two baselines measured in the same process, rounds interleaved:

- verify: the Ed25519 checks of the same attempts alone (the bare server's work too);
- before: the batch path as main had it at 9203c8a (bench/_logins_before.py).

Each figure is the minimum over ``--rounds`` of the CPU per login over ``--batches``
batches. ``--profile FILE`` writes a cProfile of the new path's batches instead.

Run: flock /work/bench.lock .venv/bin/python bench/agent_logins.py [--sqlite]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import insert
from tests.helpers import make_org

from bench import _logins_before
from bench._common import temp_sqlite_url, throwaway_postgres
from fjernhjelp.audit.log import Actor
from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.config import Settings
from fjernhjelp.control import statements
from fjernhjelp.control.messages import MachineInfo
from fjernhjelp.db import migrate
from fjernhjelp.machines import connections
from fjernhjelp.machines.models import Machine
from fjernhjelp.portal import groups
from fjernhjelp.server.state import AppState, build_state

INFO = MachineInfo(hostname="lege-pc", os="bench", agent_version="1", users=["lege"])

LogIn = Callable[..., list[Any]]


def postgres() -> AbstractContextManager[str]:
    return throwaway_postgres("fjh_logins")


def enrol(state: AppState, n: int) -> list[tuple[uuid.UUID, Ed25519PrivateKey]]:
    with state.db_sessions() as db:
        org = make_org(db)
        group = groups.ensure_default(db, org, Actor.system())
        db.commit()
        org_id, group_id = org.id, group.id
    made = [(uuid.uuid4(), Ed25519PrivateKey.generate()) for _ in range(n)]
    rows = [
        {
            "id": mid,
            "organisation_id": org_id,
            "group_id": group_id,
            "identity_public_key": key.public_key().public_bytes_raw(),
            "hostname": INFO.hostname,
            "os": INFO.os,
            "agent_version": INFO.agent_version,
            "users": ",".join(INFO.users),
        }
        for mid, key in made
    ]
    with state.engine.begin() as conn:
        conn.execute(insert(Machine), rows)
    return made


def attempts_for(
    machines: Sequence[tuple[uuid.UUID, Ed25519PrivateKey]], size: int
) -> list[list[connections.LoginAttempt]]:
    """Batches of fresh attempts (signed here: the agents' side, not measured)."""
    batches = []
    for start in range(0, len(machines), size):
        batch = []
        for mid, key in machines[start : start + size]:
            nonce = os.urandom(statements.NONCE_BYTES)
            proof = key.sign(statements.agent_proof_statement(nonce, mid))
            batch.append(connections.LoginAttempt(mid, nonce, proof, INFO, "192.0.2.7"))
        batches.append(batch)
    return batches


def run_batches(state: AppState, log_in: LogIn, batches: list[list[Any]]) -> float:
    """CPU seconds of this thread per login."""
    started = time.thread_time()
    for batch in batches:
        with state.db_sessions() as db:
            log_in(db, batch, node_id="bench", now=state.now())
            db.commit()
    return (time.thread_time() - started) / sum(len(b) for b in batches)


def run_verify(
    keys: dict[uuid.UUID, bytes], batches: list[list[connections.LoginAttempt]]
) -> float:
    started = time.thread_time()
    for batch in batches:
        for a in batch:
            Ed25519PublicKey.from_public_bytes(keys[a.machine_id]).verify(
                a.signature, statements.agent_proof_statement(a.nonce, a.machine_id)
            )
    return (time.thread_time() - started) / sum(len(b) for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--batches", type=int, default=80)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()

    with postgres() if not args.sqlite else _nothing(temp_sqlite_url()) as url:
        settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="fjh-bench-")), database_url=url)
        state = build_state(settings)
        migrate.upgrade(state.engine)
        machines = enrol(state, args.batches * args.batch)
        keys = {mid: key.public_key().public_bytes_raw() for mid, key in machines}
        # Warm both paths (compiled statements, psycopg's prepared statements).
        for log_in in (connections.log_in, _logins_before.log_in):
            run_batches(state, log_in, attempts_for(machines, args.batch)[:10])
        if args.profile is not None:
            profiler = cProfile.Profile(time.thread_time)
            batches = attempts_for(machines, args.batch)
            profiler.enable()
            run_batches(state, connections.log_in, batches)
            profiler.disable()
            profiler.dump_stats(args.profile)
            print(f"profile of {len(batches)} batches written to {args.profile}")
            return
        figures: dict[str, list[float]] = {"verify": [], "before": [], "now": []}
        for _ in range(args.rounds):
            batches = attempts_for(machines, args.batch)
            figures["verify"].append(run_verify(keys, batches))
            figures["before"].append(run_batches(state, _logins_before.log_in, batches))
            batches = attempts_for(machines, args.batch)
            figures["now"].append(run_batches(state, connections.log_in, batches))
        with state.readers() as db:
            report = verify_chain(db)
        state.engine.dispose()
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    best = {name: min(values) for name, values in figures.items()}
    print(
        f"{backend}: {args.rounds} rounds x {args.batches} batches of {args.batch} logins;"
        f" chain verified: {report.ok}"
    )
    print(f"{'per login, CPU of the thread':<34} {'min':>9} {'max':>9}")
    for name in ("verify", "before", "now"):
        print(f"{name:<34} {best[name] * 1e3:7.3f}ms {max(figures[name]) * 1e3:7.3f}ms")
    print(f"now / before   {best['now'] / best['before']:5.2f}")
    print(f"before / verify {best['before'] / best['verify']:5.2f}")
    print(f"now / verify    {best['now'] / best['verify']:5.2f}")


@contextmanager
def _nothing(value: str) -> Iterator[str]:
    yield value


if __name__ == "__main__":
    main()
