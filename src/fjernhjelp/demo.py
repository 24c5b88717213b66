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

from fjernhjelp.auth import enrolment
from fjernhjelp.auth.accounts import create_user
from fjernhjelp.auth.models import User
from fjernhjelp.auth.passwords import Passwords
from fjernhjelp.caller import Caller
from fjernhjelp.db.base import utcnow
from fjernhjelp.portal import demo_data as portal_demo
from fjernhjelp.portal import organisations
from fjernhjelp.portal.models import Organisation, OrgKind

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


def _org(db: Session, spec: tuple[str, str, OrgKind, bool, bool], caller: Caller) -> Organisation:
    orgnr, name, kind, receives, gives = spec
    existing = organisations.by_orgnr(db, orgnr)
    if existing is not None:
        return existing
    return organisations.register(
        db, caller, orgnr=orgnr, name=name, kind=kind, receives_help=receives, gives_help=gives
    )


def _password() -> str:
    # Four random words would be friendlier; random text is what we can promise unique.
    return "demo-" + secrets.token_urlsafe(12)


def seed(db: Session, passwords: Passwords, at_rest_key: bytes) -> list[DemoAccount]:
    caller = Caller.system(utcnow())
    customer = _org(db, CUSTOMER, caller)
    vendor = _org(db, VENDOR, caller)
    operator_org = _org(db, OPERATOR_ORG, caller)
    wanted = [
        ("operator", "Olav Operatør", operator_org, "operator", "operator"),
        ("legekontor-admin", "Lise Legekontor", customer, "admin", "organisation admin"),
        ("leverandor-admin", "Vera Leverandør", vendor, "admin", "organisation admin"),
        ("tekniker", "Tore Tekniker", vendor, "technician", "technician"),
    ]
    accounts: list[DemoAccount] = []
    for username, display, org, role, role_name in wanted:
        if db.execute(select(User).where(User.username == username)).scalar_one_or_none():
            continue
        user = create_user(
            db,
            organisation=org,
            username=username,
            email=f"{username}@demo.invalid",
            display_name=display,
            is_operator=role == "operator",
            is_admin=role == "admin",
            is_technician=role == "technician",
            actor=caller.actor,
        )
        password = _password()
        secret = enrolment.activate_for_demo(
            db, caller, user, passwords=passwords, at_rest_key=at_rest_key, password=password
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
    existing: list[dict[str, object]] = []
    if path.exists():
        existing = json.loads(path.read_text()).get("accounts", [])
    known = {str(a["username"]): a for a in existing}
    for account in accounts:
        known[account.username] = asdict(account)
    data: dict[str, object] = {"url": url, "accounts": list(known.values())}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    path.chmod(0o600)
    return data
