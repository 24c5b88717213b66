"""Demo data for ``fjernhjelp demo``: an operator, a GP office and a vendor with a technician.

Accounts are created active, each with a random password and a TOTP factor, so a
newcomer can log in at once. The credentials are printed and written to
``<data dir>/demo-credentials.json``; running the demo again reuses them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth import factors
from fjernhjelp.auth.accounts import create_user
from fjernhjelp.auth.models import User, UserStatus
from fjernhjelp.auth.passwords import Passwords
from fjernhjelp.db.base import utcnow
from fjernhjelp.portal import demo_data as portal_demo
from fjernhjelp.portal.models import Organisation, OrgKind, default_access_enabled

CUSTOMER = ("990000018", "Demo legekontor", OrgKind.GP_OFFICE, True, False)
VENDOR = ("990000026", "Demo Journalleverandør AS", OrgKind.VENDOR, False, True)
OPERATOR_ORG = ("990000034", "Demo driftsoperatør", OrgKind.OTHER, False, False)


@dataclass
class DemoAccount:
    username: str
    password: str
    totp_secret: str
    role: str
    organisation: str


def _org(db: Session, spec: tuple[str, str, OrgKind, bool, bool], actor: Actor) -> Organisation:
    orgnr, name, kind, receives, gives = spec
    org = db.execute(select(Organisation).where(Organisation.orgnr == orgnr)).scalar_one_or_none()
    if org is None:
        org = Organisation(
            orgnr=orgnr,
            name=name,
            kind=kind,
            receives_help=receives,
            gives_help=gives,
            access_enabled=default_access_enabled(kind),
        )
        db.add(org)
        db.flush()
        record(
            db,
            "organisation.created",
            Outcome.SUCCESS,
            actor=actor,
            customer_org_id=org.id,
            details={"orgnr": orgnr, "name": name, "kind": str(kind)},
        )
    return org


def _password() -> str:
    # Four random words would be friendlier; random text is what we can promise unique.
    return "demo-" + secrets.token_urlsafe(12)


def seed(db: Session, passwords: Passwords, at_rest_key: bytes) -> list[DemoAccount]:
    actor = Actor.command_line()
    customer = _org(db, CUSTOMER, actor)
    vendor = _org(db, VENDOR, actor)
    operator_org = _org(db, OPERATOR_ORG, actor)
    wanted = [
        ("operator", "Olav Operatør", operator_org, {"is_operator": True}, "operator"),
        ("legekontor-admin", "Lise Legekontor", customer, {"is_admin": True}, "organisation admin"),
        ("leverandor-admin", "Vera Leverandør", vendor, {"is_admin": True}, "organisation admin"),
        ("tekniker", "Tore Tekniker", vendor, {"is_technician": True}, "technician"),
    ]
    accounts: list[DemoAccount] = []
    for username, display, org, roles, role_name in wanted:
        if db.execute(select(User).where(User.username == username)).scalar_one_or_none():
            continue
        user = create_user(
            db,
            organisation=org,
            username=username,
            email=f"{username}@demo.invalid",
            display_name=display,
            actor=actor,
            **roles,
        )
        password = _password()
        user.password_hash = passwords.hash(password)
        user.password_changed_at = utcnow()
        user.status = UserStatus.ACTIVE
        factor, secret = factors.start_totp(db, at_rest_key, user, "Demo authenticator")
        factor.confirmed = True
        record(
            db,
            "account.enrolment",
            Outcome.SUCCESS,
            actor=actor,
            customer_org_id=org.id,
            factor="totp",
            details={"user": username, "demo": True},
        )
        accounts.append(DemoAccount(username, password, secret, role_name, org.name))
    db.flush()
    by_name = {u.username: u for u in db.execute(select(User)).scalars()}
    portal_demo.seed(
        db,
        by_name["operator"],
        customer,
        by_name["legekontor-admin"],
        vendor,
        by_name["leverandor-admin"],
    )
    return accounts


def save(path: Path, url: str, accounts: list[DemoAccount]) -> dict[str, object]:
    existing: dict[str, object] = {}
    if path.exists():
        existing = json.loads(path.read_text())
    known = {a["username"]: a for a in existing.get("accounts", [])}  # type: ignore[union-attr]
    for account in accounts:
        known[account.username] = asdict(account)
    data = {"url": url, "accounts": list(known.values())}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    path.chmod(0o600)
    return data
