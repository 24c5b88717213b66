"""Expired login sessions and stale throttle counters are removed in the background."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from fjernhjelp.auth import throttle
from fjernhjelp.auth.models import LoginSession, Throttle
from tests.helpers import make_org, make_user
from tests.server.test_pages_login import web_login


def test_expired_sessions_and_old_throttles_are_purged(app, client, db, state, clock) -> None:
    org = make_org(db)
    tech = make_user(db, state, org, "tekniker")
    throttle.record_failure(db, "address:192.0.2.1", state.login.address_rule, state.now())
    db.commit()
    web_login(client, tech)
    clock.advance(hours=state.settings.session_absolute_hours + 25)
    app.state.housekeeping.run_now("purge_login_sessions")
    app.state.housekeeping.run_now("purge_throttles")
    db.rollback()
    assert db.execute(select(func.count()).select_from(LoginSession)).scalar_one() == 0
    assert db.get(Throttle, "address:192.0.2.1") is None
    assert timedelta(hours=1) < throttle.FORGET_AFTER
