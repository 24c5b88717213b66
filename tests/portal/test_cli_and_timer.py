"""The sweep from the command line and on the server's timer; the demo's portal data."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from fjernhjelp.auth.models import User, UserStatus
from fjernhjelp.demo import seed as demo_seed
from fjernhjelp.portal import access, members, terms
from fjernhjelp.portal.models import Audience, GrantStatus
from fjernhjelp.portal.revocations import Revocation, RevocationKind
from fjernhjelp.server.app import create_app
from fjernhjelp.server.state import build_state
from tests.conftest import test_settings as settings_for
from tests.portal.world import World


def _cli(settings, *args: str) -> str:  # type: ignore[no-untyped-def]
    env = {
        "FJERNHJELP_DATA_DIR": str(settings.data_dir),
        "FJERNHJELP_DATABASE_URL": settings.effective_database_url,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "fjernhjelp", "admin", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_admin_sweep_expires_what_ran_out(world: World, settings) -> None:
    # Move the grant's end into the past (as time would), then sweep from the shell.
    world.grant.expires_at = world.state.now() - timedelta(minutes=1)
    world.db.commit()
    out = _cli(settings, "sweep")
    assert "grants expired: 1" in out
    world.db.rollback()
    world.db.expire_all()
    assert world.grant.status == GrantStatus.EXPIRED
    assert "grants expired: 0" in _cli(settings, "sweep")


def test_admin_reactivate_brings_back_a_deactivated_operator(world: World, settings) -> None:
    world.operator.user.status = UserStatus.DISABLED
    world.db.commit()
    assert "active again" in _cli(settings, "reactivate", "operator")
    world.db.rollback()
    world.db.expire_all()
    assert world.operator.user.status == UserStatus.ACTIVE


def test_the_server_sweeps_on_its_timer(tmp_path, database_url, clock) -> None:
    settings = settings_for(tmp_path, database_url, sweep_interval_seconds=1)
    state = build_state(settings)
    state.clock = clock
    from tests.portal.world import build_world

    with state.readers() as db:
        world = build_world(db, state)
        seen = threading.Event()
        events: list[Revocation] = []

        def watch(event: Revocation) -> None:
            events.append(event)
            seen.set()

        state.revocations.subscribe(watch)
        clock.advance(days=400)
        with TestClient(create_app(state=state, periodic=True)):
            # Waiting for the timer to fire, not measuring it.
            assert seen.wait(timeout=60)
        assert RevocationKind.GRANT_EXPIRED in {e.kind for e in events}
        assert world.grant.id in next(e.grant_ids for e in events)
    state.engine.dispose()


def test_demo_data_gives_the_technician_a_customer(db, state) -> None:
    demo_seed(db, state.login.passwords, state.keys.at_rest)
    demo_seed(db, state.login.passwords, state.keys.at_rest)  # a second run adds nothing
    db.commit()
    tech = db.execute(select(User).where(User.username == "tekniker")).scalar_one()
    customer_admin = db.execute(
        select(User).where(User.username == "legekontor-admin")
    ).scalar_one()
    assert terms.accepted_current(db, customer_admin.organisation_id, Audience.RECEIVING)
    from fjernhjelp.portal import groups

    group = groups.default_group(db, customer_admin.organisation_id)
    assert access.decide(db, tech, group.id, state.now()).allowed
    assert members.restored_status(tech) == UserStatus.ACTIVE
    # The demo's agreement covers both, so the technician may offer Support as well.
    from fjernhjelp.portal.support import SupportAllowed, decide_support

    assert isinstance(
        decide_support(db, tech, customer_admin.organisation_id, state.now()), SupportAllowed
    )
