"""Builders for test data and small helpers that tests share."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from fjernhjelp.auth import factors, totp
from fjernhjelp.auth.models import User, UserStatus
from fjernhjelp.portal.models import Organisation, OrgKind, default_access_enabled
from fjernhjelp.portal.orgnr import check_digit
from fjernhjelp.server.state import AppState

PASSWORD = "correct horse battery staple"
_orgnr_seq = itertools.count(1)


def valid_orgnr(n: int | None = None) -> str:
    """A valid organisation number; successive calls give different ones."""
    while True:
        n = next(_orgnr_seq) if n is None else n
        prefix = f"9{n:07d}"
        digit = check_digit(prefix)
        if digit is not None:
            return prefix + str(digit)
        n = None


def make_org(
    db: Session,
    name: str = "Test legekontor",
    kind: OrgKind = OrgKind.GP_OFFICE,
    receives: bool = True,
    gives: bool = False,
) -> Organisation:
    org = Organisation(
        orgnr=valid_orgnr(),
        name=name,
        kind=kind,
        receives_help=receives,
        gives_help=gives,
        access_enabled=default_access_enabled(kind),
    )
    db.add(org)
    db.flush()
    return org


@dataclass
class Account:
    user: User
    password: str
    totp_secret: str | None
    state: AppState
    _last_step: int = -1

    @property
    def username(self) -> str:
        return self.user.username

    def code(self, steps_ahead: int = 0) -> str:
        """A TOTP code as the phone would show it now (on the app's clock).

        A code works once, so asking again within the same 30 s moves the app's clock
        to the next step, as a user would wait for a new code.
        """
        assert self.totp_secret
        step = totp.step_at(self.state.now().timestamp())
        if steps_ahead == 0 and step <= self._last_step:
            self.state.clock.advance(seconds=30 * (self._last_step - step + 1))  # type: ignore[attr-defined]
            step = totp.step_at(self.state.now().timestamp())
        if steps_ahead == 0:
            self._last_step = step
        return totp.code_at_step(self.totp_secret, step + steps_ahead)


def make_user(
    db: Session,
    state: AppState,
    org: Organisation,
    username: str,
    *,
    operator: bool = False,
    admin: bool = False,
    technician: bool = True,
    password: str = PASSWORD,
    with_totp: bool = True,
    status: UserStatus = UserStatus.ACTIVE,
) -> Account:
    user = User(
        organisation=org,
        username=username,
        email=f"{username}@example.no",
        display_name=username.title(),
        is_operator=operator,
        is_admin=admin,
        is_technician=technician,
        status=status,
        password_hash=state.login.passwords.hash(password),
    )
    db.add(user)
    db.flush()
    secret = None
    if with_totp:
        factor, secret = factors.start_totp(db, state.keys.at_rest, user, "phone")
        factor.confirmed = True
    db.flush()
    return Account(user, password, secret, state)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def probing_events(state: AppState, db: Session, address: str | None = "testclient") -> list:
    """Write the probe tally now (as the server does when an interval ends or it stops)
    and return the ``security.probing`` events of ``address``, oldest first."""
    from sqlalchemy import select

    from fjernhjelp.audit.models import AuditEvent
    from fjernhjelp.server import probes

    with state.db_sessions() as writer:
        probes.flush(writer, state.probes, state.now(), everything=True)
    db.rollback()
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == probes.ACTION)
    if address is not None:
        query = query.where(AuditEvent.source_address == address)
    return list(db.execute(query.order_by(AuditEvent.seq)).scalars())
