"""The cost of the access decision and of the expiry sweep, as ratios.

- decide: ``portal.access.decide`` (account, vendor, terms, grants, customer, agreement)
  against one primary-key read of the grant it finds: how many plain reads one
  authorisation is worth. Measured with a handful of grants and again with many
  customers, to show it does not grow with the size of the service.
- sweep: one expiry sweep with nothing due, against the same primary-key read: what the
  server's timer costs when there is nothing to do.

Run: .venv/bin/python bench/portal.py [--database-url URL] [--customers 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import make_org, make_user
from tests.portal.world import ATTENDED, build_world

from bench._common import median_rate, temp_sqlite_url
from fjernhjelp.auth.models import User
from fjernhjelp.config import Settings
from fjernhjelp.db import migrate
from fjernhjelp.portal import agreements, grants, groups, sweep, terms
from fjernhjelp.portal.access import decide
from fjernhjelp.portal.agreements import AgreementSpec
from fjernhjelp.portal.models import Grant
from fjernhjelp.server.state import build_state


def add_customers(world, n: int) -> None:  # type: ignore[no-untyped-def]
    """``n`` more customers, each with a group, an agreement and a grant to the vendor."""
    db = world.db
    for i in range(n):
        org = make_org(db, f"Kunde {i}")
        admin = make_user(db, world.state, org, f"kunde-{i}", admin=True, technician=False)
        groups.ensure_default(db, org, world.caller(world.operator).actor)
        terms.accept(db, world.caller(admin), "receiving")
        caller = world.caller(admin)
        agreement = agreements.record(
            db,
            caller,
            AgreementSpec(
                vendor_org_id=world.vendor.id,
                kind="remote_support",
                reference=f"Avtale {i}",
                valid_from=world.state.now() - timedelta(days=1),
                valid_until=None,
            ),
        )
        group = groups.list_own(db, caller)[0]
        grants.create(
            db,
            caller,
            group_id=group.id,
            agreement_id=agreement.id,
            wanted=grants.GrantTerms(permissions=ATTENDED),
        )
        if i % 200 == 199:
            db.commit()
    db.commit()


def measure(world, rounds: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Each call in a fresh session, as a request handler would make it."""
    factory = world.state.db_sessions
    tech_id, group_id, grant_id = world.tech.user.id, world.group.id, world.grant.id
    now = world.state.now()

    def one_decision() -> None:
        with factory() as db:
            assert decide(db, db.get(User, tech_id), group_id, now).allowed

    def one_read() -> None:
        with factory() as db:
            assert db.get(Grant, grant_id) is not None

    def one_sweep() -> None:
        with factory() as db:
            report = sweep.run(db, now, inactive_after=timedelta(days=3650))
            db.rollback()
        assert report.grants_expired == 0

    for warm_up in (one_read, one_decision):  # compiled-statement caches, page cache
        for _ in range(50):
            warm_up()
    return {
        "read": median_rate(one_read, 300, rounds),
        "decide": median_rate(one_decision, 300, rounds),
        "sweep": median_rate(one_sweep, 20, rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    url = args.database_url or temp_sqlite_url()
    # The password hash plays no part in what is measured; a cheap one keeps set-up short.
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="fjh-bench-")),
        database_url=url,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )
    state = build_state(settings)
    migrate.upgrade(state.engine)
    with state.readers() as db:
        world = build_world(db, state)
        small = measure(world, args.rounds)
        add_customers(world, args.customers)
        large = measure(world, args.rounds)

    print(f"database: {state.engine.dialect.name}, customers added: {args.customers}")
    for label, figures in (("1 customer", small), (f"{args.customers + 1} customers", large)):
        print(
            f"{label:>16}: read {figures['read']:8.0f}/s  decide {figures['decide']:7.0f}/s"
            f"  (ratio {figures['decide'] / figures['read']:.3f})"
            f"  empty sweep {figures['sweep']:6.1f}/s"
            f"  (ratio {figures['sweep'] / figures['read']:.4f})"
        )
    print(
        "decide ratio, large / small service: "
        f"{(large['decide'] / large['read']) / (small['decide'] / small['read']):.2f}"
    )


if __name__ == "__main__":
    main()
