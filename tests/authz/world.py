"""The world the authorisation matrix runs in: the portal's Access site (tests/portal/
access_world.py: a GP office, its vendor with a technician, a dentist next door) plus a
second pair of its own (the dentist and another vendor, with an agreement, a grant, a
technician and a machine), every role logged in for real, and builders of fresh objects so
that a cell which changes something never disturbs another cell.

"Own" means the caller's side: the GP office, its vendor and what lies between them (the
operator's own side is its own organisation and its people; groups, machines and grants
of the GP office stand in for everything else, which the operator reaches only from afar).
"Other" means the dentist, the other vendor and what lies between them.
"""

from __future__ import annotations

import base64
import itertools
import os
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fjernhjelp.auth import enrolment
from fjernhjelp.auth.models import UserStatus
from fjernhjelp.caller import Caller
from fjernhjelp.control.package import read_package
from fjernhjelp.machines import packages
from fjernhjelp.machines.models import Machine
from fjernhjelp.portal import agreements, grants, groups, notifications, terms
from fjernhjelp.portal.agreements import AgreementSpec
from fjernhjelp.portal.grants import GrantTerms
from fjernhjelp.portal.models import (
    Agreement,
    AgreementKind,
    Grant,
    MachineGroup,
    Organisation,
    OrgKind,
)
from fjernhjelp.remote import support
from fjernhjelp.server.state import AppState
from tests.helpers import Account, csrf_from, make_org, make_user
from tests.portal.access_world import Site, build_site
from tests.portal.web import Api
from tests.portal.world import ATTENDED
from tests.server.test_pages_login import web_login

ROLES = ("anonymous", "technician", "vendor_admin", "customer_admin", "operator")
SCOPES = ("own", "other")
_names = itertools.count(1)


def fresh_name(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:6]}"


@dataclass
class Side:
    customer: Organisation
    customer_admin: Account
    vendor: Organisation
    vendor_admin: Account
    tech: Account
    group: MachineGroup
    agreement: Agreement
    grant: Grant
    machine: Machine


@dataclass
class Login:
    """One person's real logins: a bearer token for the API, a cookie jar for the pages
    (with the CSRF token its forms carry)."""

    account: Account | None
    api: dict[str, str]
    cookies: httpx.Cookies
    csrf: str


@dataclass
class AuthzWorld:
    db: Session
    state: AppState
    client: TestClient  # one client, one event loop; each Login brings its own cookies
    site: Site
    operator_org: Organisation
    a: Side
    b: Side
    logins: dict[str, Login] = field(default_factory=dict)
    package_files: dict[uuid.UUID, bytes] = field(default_factory=dict)

    # -- who --------------------------------------------------------------------

    def account(self, role: str) -> Account:
        w = self.site.world
        return {
            "technician": w.tech,
            "vendor_admin": w.vendor_admin,
            "customer_admin": w.gp_admin,
            "operator": w.operator,
        }[role]

    def caller(self, account: Account) -> Caller:
        return Caller.of_person(account.user, self.state.now(), "192.0.2.10")

    def org_of(self, role: str, scope: str) -> Organisation:
        """The organisation a role's "own" or "other" object belongs to."""
        if scope == "own":
            return {
                "anonymous": self.a.customer,
                "technician": self.a.vendor,
                "vendor_admin": self.a.vendor,
                "customer_admin": self.a.customer,
                "operator": self.operator_org,
            }[role]
        return {
            "anonymous": self.b.customer,
            "technician": self.b.vendor,
            "vendor_admin": self.b.vendor,
            "customer_admin": self.b.customer,
            "operator": self.a.customer,
        }[role]

    def side(self, scope: str) -> Side:
        return self.a if scope == "own" else self.b

    def login(self, account: Account | None, *, api: bool = True, page: bool = True) -> Login:
        """A cookie jar of its own, logged in for real: the API's two steps for a bearer
        token, the pages' two steps for a session cookie (each as asked)."""
        c = self.client
        c.cookies = httpx.Cookies()
        csrf = csrf_from(c.get("/login").text)
        headers = Api(c, account).headers if (account is not None and api) else {}
        if account is not None and page:
            web_login(c, account)
            csrf = csrf_from(c.get("/account").text)
        return Login(account, headers, httpx.Cookies(c.cookies), csrf)

    def send(self, login: Login, method: str, url: str, **kw: Any) -> httpx.Response:
        """One request in ``login``'s cookie jar (which keeps what the answer set)."""
        c = self.client
        c.cookies = login.cookies
        try:
            return c.request(method, url, **kw)
        finally:
            login.cookies = httpx.Cookies(c.cookies)

    # -- fresh objects ------------------------------------------------------------

    def commit(self) -> None:
        self.db.commit()

    def fresh_person(self, org: Organisation, *, status: UserStatus = UserStatus.ACTIVE) -> Account:
        """Somebody in ``org`` with the one role its kind allows: a technician at a vendor,
        an admin elsewhere."""
        tech = org.gives_help
        account = make_user(
            self.db, self.state, org, fresh_name("p"), admin=not tech, technician=tech,
            status=status,
        )  # fmt: skip
        self.commit()
        return account

    def fresh_caller(self, role: str) -> Account:
        """A new organisation of the role's kind with a new account in it: for cells that
        change the caller's own organisation or account."""
        st, db = self.state, self.db
        op = self.caller(self.site.world.operator)
        if role == "operator":
            org = make_org(db, fresh_name("Drift"), kind=OrgKind.OTHER, receives=False)
            account = make_user(db, st, org, fresh_name("op"), operator=True, technician=False)
        elif role == "customer_admin":
            org = make_org(db, fresh_name("Legekontor"))
            account = make_user(db, st, org, fresh_name("adm"), admin=True, technician=False)
            groups.ensure_default(db, org, op.actor)
        else:
            org = make_org(db, fresh_name("Lev"), kind=OrgKind.VENDOR, receives=False, gives=True)
            admin = role == "vendor_admin"
            account = make_user(db, st, org, fresh_name("v"), admin=admin, technician=not admin)
        self.commit()
        if role in ("customer_admin", "vendor_admin"):
            audience = "receiving" if role == "customer_admin" else "giving"
            terms.accept(db, self.caller(account), audience)
            self.commit()
        return account

    def fresh_group(self, scope: str) -> MachineGroup:
        side = self.side(scope)
        group = groups.create(self.db, self.caller(side.customer_admin), fresh_name("Gruppe"))
        self.commit()
        return group

    def fresh_agreement(self, scope: str) -> Agreement:
        side = self.side(scope)
        now = self.state.now()
        agreement = agreements.record(
            self.db,
            self.caller(side.customer_admin),
            AgreementSpec(
                vendor_org_id=side.vendor.id,
                kind=AgreementKind.REMOTE_SUPPORT.value,
                reference=fresh_name("Avtale"),
                valid_from=now - timedelta(days=1),
                valid_until=now + timedelta(days=365),
                allows_preapproved=False,
                preapproved_clause=None,
                non_eea_staff_allowed=False,
                covers="both",
            ),
        )
        self.commit()
        return agreement

    def fresh_grant(self, scope: str) -> Grant:
        side = self.side(scope)
        group = self.fresh_group(scope)
        grant = grants.create(
            self.db,
            self.caller(side.customer_admin),
            group_id=group.id,
            agreement_id=side.agreement.id,
            wanted=GrantTerms(permissions=ATTENDED),
        )
        self.commit()
        return grant

    def fresh_machine(self, scope: str) -> Machine:
        side = self.side(scope)
        machine = self.site.machine(fresh_name("pc"), group=side.group)
        return machine

    def fresh_package(self, role: str, scope: str) -> uuid.UUID:
        """Made by the technician itself where it asks about its own, else by the
        customer's admin."""
        side = self.side(scope)
        maker = side.tech if (role == "technician" and scope == "own") else side.customer_admin
        made = packages.create(
            self.db,
            self.caller(maker),
            group_id=side.group.id,
            label=fresh_name("pakke"),
            lifetime=timedelta(hours=1),
            max_uses=1,
            server_url="http://127.0.0.1:8080",
            signing_key=self.state.keys.signing,
        )
        self.commit()
        # The file is handed out once; the one-file download posts it back.
        self.package_files[made.package.id] = made.file_bytes
        return made.package.id

    def support_config(self) -> support.SupportConfig:
        return support.support_config(self.state.settings, self.state.keys.at_rest)

    def fresh_support(self, scope: str) -> support.CreatedSupport:
        side = self.side(scope)
        created = support.create(
            self.db, self.caller(side.tech), self.support_config(), side.customer.id
        )
        self.commit()
        return created

    def fresh_notification(self, role: str, scope: str) -> uuid.UUID:
        org = self.org_of(role, scope)
        note = notifications.notify(self.db, org.id, "grant_created", customer="x", group="y")
        self.commit()
        return note.id

    def fresh_notice(self, role: str, scope: str) -> uuid.UUID:
        if scope == "own" and role != "anonymous":
            person = self.account(role).user
        else:
            person = self.b.customer_admin.user
        note = notifications.notify_person(self.db, person, "account_reenrolled", when="x", by="y")
        self.commit()
        return note.id

    def fresh_package_token(self) -> str:
        """The enrolment token inside a package the customer's admin just made."""
        made = packages.create(
            self.db,
            self.caller(self.a.customer_admin),
            group_id=self.a.group.id,
            label=fresh_name("pakke"),
            lifetime=timedelta(hours=1),
            max_uses=1,
            server_url="http://127.0.0.1:8080",
            signing_key=self.state.keys.signing,
        )
        self.commit()
        return read_package(made.file_bytes).enrolment_token

    def fresh_enrolment_token(self) -> str:
        org = self.a.customer
        account = make_user(
            self.db, self.state, org, fresh_name("ny"), admin=True, technician=False,
            with_totp=False, status=UserStatus.PENDING,
        )  # fmt: skip
        token = enrolment.issue_link(
            self.db,
            account.user,
            actor=self.caller(self.site.world.operator).actor,
            now=self.state.now(),
            lifetime=timedelta(hours=1),
        )
        self.commit()
        return token


def technician_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _side_b(site: Site, db: Session, state: AppState) -> Side:
    w = site.world
    dentist = w.db.get(Organisation, site.dentist_group.organisation_id)
    assert dentist is not None
    other = make_org(db, "Annen leverandør AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    other_admin = make_user(db, state, other, "annen-admin", admin=True, technician=False)
    other_tech = make_user(db, state, other, "annen-tekniker")
    db.commit()
    terms.accept(db, w.caller(other_admin), "giving")
    db.commit()
    now = state.now()
    agreement = agreements.record(
        db,
        w.caller(site.dentist_admin),
        AgreementSpec(
            vendor_org_id=other.id,
            kind=AgreementKind.REMOTE_SUPPORT.value,
            reference="Avtale tannlege",
            valid_from=now - timedelta(days=1),
            valid_until=now + timedelta(days=365),
            allows_preapproved=False,
            preapproved_clause=None,
            non_eea_staff_allowed=False,
            covers="both",
        ),
    )
    db.commit()
    grant = grants.create(
        db,
        w.caller(site.dentist_admin),
        group_id=site.dentist_group.id,
        agreement_id=agreement.id,
        wanted=GrantTerms(permissions=ATTENDED, may_make_packages=True),
    )
    db.commit()
    machine = site.machine("tann-pc-01", group=site.dentist_group)
    return Side(
        dentist, site.dentist_admin, other, other_admin, other_tech, site.dentist_group,
        agreement, grant, machine,
    )  # fmt: skip


def build(db: Session, state: AppState, client: TestClient) -> AuthzWorld:
    site = build_site(db, state)
    site.allow_packages()
    w = site.world
    assert w.agreement is not None and w.grant is not None
    a = Side(
        w.gp, w.gp_admin, w.vendor, w.vendor_admin, w.tech, w.group, w.agreement, w.grant,
        site.machine("lege-pc-01"),
    )  # fmt: skip
    b = _side_b(site, db, state)
    world = AuthzWorld(db, state, client, site, w.operator.user.organisation, a, b)
    world.logins["anonymous"] = world.login(None)
    for role in ROLES[1:]:
        world.logins[role] = world.login(world.account(role))
    # One finished Access session on each side, so history pages have rows to show.
    site.session(a.machine, w.tech)
    site.session(b.machine, b.tech)
    return world
