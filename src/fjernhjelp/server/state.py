"""Everything a request handler needs, built once at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fjernhjelp.auth.login import LoginConfig
from fjernhjelp.auth.logins import SessionPolicy
from fjernhjelp.auth.passwords import HashCost, Passwords
from fjernhjelp.auth.throttle import ThrottleRule
from fjernhjelp.config import Settings
from fjernhjelp.db.base import utcnow
from fjernhjelp.db.engine import make_engine, make_session_factory
from fjernhjelp.keystore import Keys
from fjernhjelp.portal import revocations
from fjernhjelp.portal.revocations import RevocationBus
from fjernhjelp.server.probes import ProbeTally
from fjernhjelp.server.ws_guard import PendingSockets, SilenceRule


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    db_sessions: sessionmaker[Session]
    readers: sessionmaker[Session]  # long reads (exports) that must not hold a write lock
    keys: Keys
    login: LoginConfig
    clock: Callable[[], datetime] = field(default=utcnow)
    # Grants, agreements, users and organisations that stop: published after commit
    # by the portal, consumed by whatever holds live sessions (portal/revocations.py).
    revocations: RevocationBus = field(default_factory=RevocationBus)
    # Refusals of unauthenticated traffic, audited per address and interval
    # (server/probes.py), and the sockets still waiting to authenticate (ws_guard.py).
    probes: ProbeTally = field(init=False)
    unauthenticated_sockets: PendingSockets = field(init=False)

    def __post_init__(self) -> None:
        self.probes = ProbeTally(
            timedelta(seconds=self.settings.probe_audit_seconds),
            self.settings.probe_audit_max_addresses,
        )
        settings = self.settings
        self.unauthenticated_sockets = PendingSockets(
            settings.ws_unauthenticated_per_address,
            settings.ws_unauthenticated_total,
            SilenceRule(
                strikes=settings.ws_silent_strikes,
                window_seconds=settings.ws_silent_window_seconds,
                allowance=settings.ws_silent_allowance,
            ),
        )

    def now(self) -> datetime:
        return self.clock()


def login_config(settings: Settings, keys: Keys) -> LoginConfig:
    return LoginConfig(
        passwords=Passwords(
            HashCost(
                time_cost=settings.argon2_time_cost,
                memory_kib=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            )
        ),
        at_rest_key=keys.at_rest,
        policy=SessionPolicy(
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_absolute_hours),
            pending=timedelta(minutes=settings.login_pending_minutes),
        ),
        account_rule=ThrottleRule(
            settings.account_failures_before_lockout,
            settings.lockout_base_seconds,
            settings.lockout_max_seconds,
        ),
        address_rule=ThrottleRule(
            settings.address_failures_before_lockout,
            settings.lockout_base_seconds,
            settings.lockout_max_seconds,
        ),
    )


def build_state(settings: Settings, engine: Engine | None = None) -> AppState:
    engine = engine or make_engine(settings.effective_database_url)
    keys = Keys.load(settings.keys_dir)
    state = AppState(
        settings=settings,
        engine=engine,
        db_sessions=make_session_factory(engine),
        readers=make_session_factory(engine, deferred=True),
        keys=keys,
        login=login_config(settings, keys),
    )
    for factory in (state.db_sessions, state.readers):
        revocations.install(factory, state.revocations)
    return state
