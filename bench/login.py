"""Logins per second (argon2id included) and audit appends per second.

Figures are ratios against a baseline measured in the same process, so they mean the
same on a busy shared machine:

- login: the full flow (throttle checks, password, pending session, TOTP with replay
  protection, session, four audit events) against one bare argon2id verify at the same
  cost. A ratio near 1 means the flow costs little beyond the password hash itself.
- audit: one chained append (head row lock, SHA-256 over canonical JSON, insert, commit)
  against one plain insert-and-commit of the same row without the chain.

Run: .venv/bin/python bench/login.py [--database-url URL] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argon2 import PasswordHasher, Type
from sqlalchemy import insert
from tests.helpers import make_org, make_user

from bench._common import median_rate, temp_sqlite_url
from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth import login, totp
from fjernhjelp.auth.logins import ClientInfo
from fjernhjelp.config import Settings
from fjernhjelp.db import migrate
from fjernhjelp.db.base import utcnow
from fjernhjelp.server.state import build_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--logins", type=int, default=10)
    parser.add_argument("--appends", type=int, default=300)
    args = parser.parse_args()

    url = args.database_url or temp_sqlite_url()
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="fjh-bench-")), database_url=url)
    state = build_state(settings)
    migrate.upgrade(state.engine)

    # A step counter on the app's clock: each login uses the next TOTP step, as real
    # logins minutes apart would (a code works once).
    offset = {"steps": 0}

    def clock():  # type: ignore[no-untyped-def]
        from datetime import timedelta

        return utcnow() + timedelta(seconds=30 * offset["steps"])

    state.clock = clock
    with state.db_sessions() as db:
        org = make_org(db, "Bench AS", gives=True)
        account = make_user(db, state, org, f"bench-{uuid.uuid4().hex[:8]}")
        db.commit()
    secret = account.totp_secret
    assert secret
    client = ClientInfo("127.0.0.1", "bench")

    def one_login() -> None:
        offset["steps"] += 1
        now = state.now()
        with state.db_sessions() as db:
            started = login.begin(db, state.login, account.username, account.password, client, now)
            db.commit()
            code = totp.code_at_step(secret, totp.step_at(now.timestamp()))
            login.finish(db, state.login, started.token, code, client, now)
            db.commit()

    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )
    stored = hasher.hash(account.password)

    def bare_verify() -> None:
        hasher.verify(stored, account.password)

    def chained_append() -> None:
        with state.db_sessions() as db:
            record(db, "bench.append", Outcome.INFO, actor=Actor.system(), details={"n": 1})
            db.commit()

    seq = {"n": 10_000_000}

    def plain_insert() -> None:
        seq["n"] += 1
        with state.db_sessions() as db:
            db.execute(
                insert(AuditEvent).values(
                    seq=seq["n"],
                    id=uuid.uuid4(),
                    occurred_at=utcnow(),
                    action="bench.plain",
                    outcome="info",
                    details='{"n":1}',
                    prev_hash="0" * 64,
                    hash="0" * 64,
                )
            )
            db.commit()

    backend = state.engine.dialect.name
    print(
        f"backend: {backend}; argon2id t={settings.argon2_time_cost} "
        f"m={settings.argon2_memory_kib} KiB p={settings.argon2_parallelism}"
    )
    verify_rate = median_rate(bare_verify, args.logins, args.rounds)
    login_rate = median_rate(one_login, args.logins, args.rounds)
    print(f"argon2id verify (baseline): {verify_rate:8.1f} /s")
    print(
        f"full two-factor login:      {login_rate:8.1f} /s   ratio {login_rate / verify_rate:.2f}"
    )
    plain_rate = median_rate(plain_insert, args.appends, args.rounds)
    append_rate = median_rate(chained_append, args.appends, args.rounds)
    print(f"plain insert+commit (base): {plain_rate:8.1f} /s")
    print(
        f"chained audit append:       {append_rate:8.1f} /s   ratio {append_rate / plain_rate:.2f}"
    )
    state.engine.dispose()


if __name__ == "__main__":
    main()
