"""How the matrix calls each route: which object goes into the path or body, what the
body holds, and whose login makes the request.

Every request is real: bearer tokens for the API, a logged-in cookie jar and the form's
CSRF token for the pages. Safe methods read the standing objects of the world; unsafe
ones act on objects made fresh for the cell. A cell that would change the caller's own
organisation or account runs as a caller made for it (``caller="fresh_org"`` or
``"fresh_user"``), and login routes run in a cookie jar of their own (``"isolated"``).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from fjernhjelp.auth import factors
from fjernhjelp.auth.models import Factor, UserStatus
from fjernhjelp.control import statements
from fjernhjelp.control.messages import b64
from fjernhjelp.portal import terms
from fjernhjelp.portal.models import Organisation, OrgStatus
from tests.authz.world import AuthzWorld, Login, fresh_name, technician_key
from tests.helpers import PASSWORD, Account, make_org, make_user, valid_orgnr

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Cell:
    role: str
    scope: str
    method: str
    account: Account | None  # who asks (None: anonymous)
    login: Login
    target: str = ""  # the id (or code, token, audience) the recipe's object resolved to

    @property
    def unsafe(self) -> bool:
        return self.method in UNSAFE


Body = Callable[[AuthzWorld, Cell], dict[str, Any]]


@dataclass(frozen=True)
class Recipe:
    obj: str | None = None
    body: Body | None = None
    caller: str = "shared"  # shared | fresh_user | fresh_org | isolated
    after: Callable[[AuthzWorld], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# -- objects ---------------------------------------------------------------------------


def _org(w: AuthzWorld, cell: Cell) -> str:
    if cell.unsafe:
        if cell.scope == "own":
            assert cell.account is not None or cell.role == "anonymous"
            if cell.account is None:
                return str(w.a.customer.id)
            return str(cell.account.user.organisation_id)
        org = make_org(w.db, fresh_name("Kunde"))
        w.commit()
        return str(org.id)
    return str(w.org_of(cell.role, cell.scope).id)


def _suspended_org(w: AuthzWorld, cell: Cell) -> str:
    """Own: the caller's own organisation (never suspended: it could not be logged in);
    other: an organisation the operator suspended."""
    if cell.scope == "own":
        return _org(w, cell)
    org = make_org(w.db, fresh_name("Sperret"))
    org.status = OrgStatus.SUSPENDED
    w.commit()
    return str(org.id)


def _user(status: UserStatus) -> Callable[[AuthzWorld, Cell], str]:
    def make(w: AuthzWorld, cell: Cell) -> str:
        return str(w.fresh_person(w.org_of(cell.role, cell.scope), status=status).user.id)

    return make


def _standing(
    name: str, fresh: Callable[[AuthzWorld, str], Any]
) -> Callable[[AuthzWorld, Cell], str]:
    def resolve(w: AuthzWorld, cell: Cell) -> str:
        if cell.unsafe:
            return str(fresh(w, cell.scope).id)
        return str(getattr(w.side(cell.scope), name).id)

    return resolve


def _factor(w: AuthzWorld, cell: Cell) -> str:
    """An unconfirmed authenticator of the caller (own) or of someone else (other)."""
    if cell.scope == "own" and cell.account is not None:
        user = cell.account.user
    else:
        user = w.b.customer_admin.user
    factor, _ = factors.start_totp(w.db, w.state.keys.at_rest, user, fresh_name("mobil"))
    w.commit()
    return str(factor.id)


def _confirmed_factor(w: AuthzWorld, cell: Cell) -> str:
    """A confirmed second authenticator (so removing it leaves one)."""
    factor_id = _factor(w, cell)
    factor = w.db.get(Factor, uuid.UUID(factor_id))
    assert factor is not None
    factor.confirmed = True
    w.commit()
    return factor_id


def _audience(w: AuthzWorld, cell: Cell) -> str:
    mine = "giving" if cell.role in ("technician", "vendor_admin") else "receiving"
    if cell.scope == "own":
        return mine
    return "receiving" if mine == "giving" else "giving"


def _joined_support(w: AuthzWorld, cell: Cell) -> str:
    """A Support session joined from this very browser (own) or from another (other)."""
    created = w.fresh_support(cell.scope)
    joiner = cell.login if cell.scope == "own" else w.login(None)
    r = w.send(joiner, "POST", "/s", data={"code": created.code, "csrf_token": joiner.csrf})
    assert r.status_code in (200, 303), r.text
    return str(created.session.id)


OBJECTS: dict[str, Callable[[AuthzWorld, Cell], str]] = {
    "org": _org,
    "org:suspended": _suspended_org,
    "user": _user(UserStatus.ACTIVE),
    "user:deactivated": _user(UserStatus.DISABLED),
    "user:suspended": _user(UserStatus.SUSPENDED),
    "group": _standing("group", AuthzWorld.fresh_group),
    "agreement": _standing("agreement", AuthzWorld.fresh_agreement),
    "grant": _standing("grant", AuthzWorld.fresh_grant),
    "machine": _standing("machine", AuthzWorld.fresh_machine),
    "package": lambda w, c: str(w.fresh_package(c.role, c.scope)),
    "support": lambda w, c: str(w.fresh_support(c.scope).session.id),
    "support:joined": _joined_support,
    "code": lambda w, c: w.fresh_support(c.scope).code,
    "notification": lambda w, c: str(w.fresh_notification(c.role, c.scope)),
    "notice": lambda w, c: str(w.fresh_notice(c.role, c.scope)),
    "vendor": lambda w, c: str(w.side(c.scope).vendor.id),
    "audience": _audience,
    "factor": _factor,
    "factor:confirmed": _confirmed_factor,
    # An enrolment link's token is its own credential: a real one, or one nobody issued.
    "token": lambda w, c: w.fresh_enrolment_token() if c.scope == "own" else "x" * 43,
    "lang": lambda w, c: "en",
}


# -- bodies ------------------------------------------------------------------------------


def _person(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    name = fresh_name("ny")
    vendor = cell.role in ("technician", "vendor_admin")
    return {
        "username": name,
        "email": f"{name}@example.no",
        "display_name": name.title(),
        "admin": not vendor,
        "technician": vendor,
    }


def _new_org(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    return {"orgnr": valid_orgnr(), "name": fresh_name("Klinikk"), "kind": "gp_office",
            "receives_help": True}  # fmt: skip


def _agreement(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    side = w.side(cell.scope)
    return {
        "vendor_org_id": str(side.vendor.id),
        "kind": "remote_support",
        "covers": "both",
        "reference": fresh_name("Avtale"),
        "valid_from": (w.state.now() - timedelta(days=1)).isoformat(),
    }


def _agreement_form(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    body = _agreement(w, cell)
    body["valid_from"] = (w.state.now() - timedelta(days=1)).date().isoformat()
    return body


def _grant(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    side = w.side(cell.scope)
    return {
        "group_id": str(w.fresh_group(cell.scope).id),
        "agreement_id": str(side.agreement.id),
        "permissions": ["view", "control", "chat"],
    }


def _terms(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    return {"audience": "receiving", "title": fresh_name("Vilkår"), "body_nb": "Tekst.",
            "body_en": "Text."}  # fmt: skip


def _accept_everywhere(w: AuthzWorld) -> None:
    """New terms were published: the world's organisations accept them again, so that
    the cells after this one meet the world as it was."""
    w.db.rollback()
    for side in (w.a, w.b):
        terms.accept(w.db, w.caller(side.customer_admin), "receiving")
        terms.accept(w.db, w.caller(side.vendor_admin), "giving")
    w.commit()


def _login_body(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    if cell.account is None:
        return {"username": "ingen", "password": "feil passord"}
    return {"username": cell.account.username, "password": cell.account.password}


def _factor_body(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    """The second step of a real login (the first step is made here)."""
    if cell.account is None:
        return {"pending_token": "x" * 40, "code": "000000"}
    r = w.send(cell.login, "POST", "/api/v1/auth/login", json=_login_body(w, cell))
    assert r.status_code == 200, r.text
    return {"pending_token": r.json()["pending_token"], "code": cell.account.code()}


def _page_login_body(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    return {**_login_body(w, cell), "next": "/"}


def _page_factor_body(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    if cell.account is None:
        return {"code": "000000", "next": "/"}
    data = {**_page_login_body(w, cell), "csrf_token": cell.login.csrf}
    r = w.send(cell.login, "POST", "/login", data=data)
    assert r.status_code == 303, r.text
    return {"code": cell.account.code(), "next": "/"}


def _enrol(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    """An agent's enrolment, as the agent makes it: with the token of a package the
    customer's admin just made (own), or with one nobody issued (other). The route is
    public; the token is the credential."""
    token = w.fresh_package_token() if cell.scope == "own" else "t" * 43
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    return {
        "token": token,
        "public_key": b64(public),
        "signature": b64(key.sign(statements.enrol_statement(token, public))),
        "info": {"hostname": fresh_name("pc"), "os": "Linux", "agent_version": "0.9.1",
                 "users": ["kari"]},
    }  # fmt: skip


def _code_body(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    return {"code": cell.target}


def const(**values: Any) -> Body:
    return lambda w, cell: dict(values)


def _with_target(key: str) -> Body:
    return lambda w, cell: {key: cell.target}


def _customer(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    return {"customer_org_id": str(w.side(cell.scope).customer.id)}


def _package(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    return {"group_id": str(w.side(cell.scope).group.id)}


def _package_file(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    return {"package": base64.b64encode(w.package_files[uuid.UUID(cell.target)]).decode()}


def _session(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    return {"machine_id": str(w.side(cell.scope).machine.id), "technician_key": technician_key()}


def _password(w: AuthzWorld, cell: Cell) -> dict[str, Any]:
    new = "a different horse battery staple " + fresh_name("x")
    return {"current": PASSWORD, "new": new, "new_again": new}


R = Recipe
PERSON_FLAGS = const(admin="true")
ROUTES: dict[tuple[str, str], Recipe] = {
    # -- public and the login steps
    ("GET", "/healthz"): R(),
    ("GET", "/metrics"): R(),
    ("GET", "/api/v1/openapi.json"): R(),
    ("GET", "/api/v1/docs"): R(),
    ("GET", "/docs/oauth2-redirect"): R(),
    ("GET", "/favicon.ico"): R(),
    ("GET", "/"): R(),
    ("GET", "/lang/{code}"): R("lang"),
    ("POST", "/api/v1/auth/login"): R(body=_login_body, caller="isolated"),
    ("POST", "/api/v1/auth/factor"): R(body=_factor_body, caller="isolated"),
    ("POST", "/api/v1/auth/logout"): R(caller="fresh_user"),
    ("GET", "/login"): R(),
    ("POST", "/login"): R(body=_page_login_body, caller="isolated"),
    ("GET", "/login/factor"): R(),
    ("POST", "/login/factor"): R(body=_page_factor_body, caller="isolated"),
    ("POST", "/logout"): R(caller="fresh_user"),
    ("GET", "/enroll/{token}"): R("token"),
    ("POST", "/enroll/{token}"): R(
        "token", const(password=PASSWORD, password_again=PASSWORD + "!", code="000000")
    ),
    ("POST", "/api/v1/agents/enrol"): R(body=_enrol),
    ("POST", "/api/v1/support/join"): R("code", _code_body),
    ("GET", "/s/{code}"): R("code"),
    ("POST", "/s"): R("code", _code_body),
    ("GET", "/s/{session_id}/client"): R("support:joined"),
    # -- who am I, notices
    ("GET", "/api/v1/me"): R(),
    ("POST", "/api/v1/me/notices/{notice_id}/dismiss"): R("notice"),
    ("GET", "/account"): R(),
    ("POST", "/account/factors/totp"): R(body=const(label="Ny mobil"), caller="fresh_user"),
    ("POST", "/account/factors/totp/{factor_id}/confirm"): R(
        "factor", const(code="000000"), caller="fresh_user"
    ),
    ("POST", "/account/factors/yubikey"): R(
        body=const(aes_key="0" * 32, private_id="0" * 12, otp="c" * 44), caller="fresh_user"
    ),
    ("POST", "/account/factors/{factor_id}/remove"): R("factor:confirmed", caller="fresh_user"),
    ("POST", "/account/password"): R(body=_password, caller="fresh_user"),
    ("GET", "/account/notices"): R(),
    ("POST", "/account/notices/{notification_id}/dismiss"): R("notice"),
    # -- audit
    ("GET", "/api/v1/audit/events"): R(),
    ("GET", "/api/v1/audit/checkpoints"): R(),
    ("GET", "/portal/audit"): R(),
    ("GET", "/portal/audit/export.jsonl"): R(),
    ("GET", "/portal/audit/checkpoints.json"): R(),
    # -- organisations (the operator's)
    ("GET", "/api/v1/organisations"): R(),
    ("POST", "/api/v1/organisations"): R(body=_new_org),
    ("GET", "/api/v1/organisations/{org_id}"): R("org"),
    ("GET", "/api/v1/organisations/{org_id}/accounts"): R("org"),
    ("PUT", "/api/v1/organisations/{org_id}/policy"): R(
        "org", const(access_enabled=True, receives_help=True, gives_help=True), caller="fresh_org"
    ),
    ("POST", "/api/v1/organisations/{org_id}/suspend"): R("org", caller="fresh_org"),
    ("POST", "/api/v1/organisations/{org_id}/resume"): R("org:suspended", caller="fresh_org"),
    ("POST", "/api/v1/organisations/{org_id}/admins"): R("org", _person, caller="fresh_org"),
    ("GET", "/portal/ops/organisations"): R(),
    ("POST", "/portal/ops/organisations"): R(body=_new_org),
    ("GET", "/portal/ops/organisations/{org_id}"): R("org"),
    ("POST", "/portal/ops/organisations/{org_id}/policy"): R(
        "org",
        const(access_enabled="true", receives_help="true", gives_help="true"),
        caller="fresh_org",
    ),
    ("POST", "/portal/ops/organisations/{org_id}/suspend"): R("org", caller="fresh_org"),
    ("POST", "/portal/ops/organisations/{org_id}/resume"): R("org:suspended", caller="fresh_org"),
    ("POST", "/portal/ops/organisations/{org_id}/admins"): R("org", _person, caller="fresh_org"),
    ("POST", "/portal/ops/accounts/{user_id}/suspend"): R("user"),
    ("POST", "/portal/ops/accounts/{user_id}/unsuspend"): R("user:suspended"),
    # -- people
    ("GET", "/api/v1/accounts"): R(),
    ("POST", "/api/v1/accounts"): R(body=_person),
    ("GET", "/api/v1/accounts/{user_id}"): R("user"),
    ("POST", "/api/v1/accounts/{user_id}/enrolment-link"): R("user"),
    ("PUT", "/api/v1/accounts/{user_id}/admin"): R("user", const(value=True)),
    ("PUT", "/api/v1/accounts/{user_id}/outside-eea"): R("user", const(value=True)),
    ("POST", "/api/v1/accounts/{user_id}/deactivate"): R("user"),
    ("POST", "/api/v1/accounts/{user_id}/reactivate"): R("user:deactivated"),
    ("POST", "/api/v1/accounts/{user_id}/suspend"): R("user"),
    ("POST", "/api/v1/accounts/{user_id}/unsuspend"): R("user:suspended"),
    ("GET", "/portal/people"): R(),
    ("POST", "/portal/people"): R(body=_person),
    ("POST", "/portal/people/{user_id}/admin"): R("user", PERSON_FLAGS),
    ("POST", "/portal/people/{user_id}/outside-eea"): R("user", const(outside_eea="true")),
    ("POST", "/portal/people/{user_id}/deactivate"): R("user"),
    ("POST", "/portal/people/{user_id}/reactivate"): R("user:deactivated"),
    ("POST", "/portal/people/{user_id}/link"): R("user"),
    # -- terms
    ("GET", "/api/v1/terms"): R(),
    ("GET", "/api/v1/terms/versions"): R(),
    ("POST", "/api/v1/terms"): R(body=_terms, after=_accept_everywhere),
    ("POST", "/api/v1/terms/{audience}/accept"): R("audience"),
    ("GET", "/portal/terms"): R(),
    ("POST", "/portal/terms/{audience}/accept"): R("audience"),
    ("GET", "/portal/ops/terms"): R(),
    ("POST", "/portal/ops/terms"): R(body=_terms, after=_accept_everywhere),
    # -- groups
    ("GET", "/api/v1/groups"): R(),
    ("POST", "/api/v1/groups"): R(body=lambda w, c: {"name": fresh_name("Gruppe")}),
    ("GET", "/api/v1/groups/{group_id}"): R("group"),
    ("PATCH", "/api/v1/groups/{group_id}"): R("group", lambda w, c: {"name": fresh_name("Nytt")}),
    ("DELETE", "/api/v1/groups/{group_id}"): R("group"),
    ("GET", "/portal/groups"): R(),
    ("POST", "/portal/groups"): R(body=lambda w, c: {"name": fresh_name("Gruppe")}),
    ("POST", "/portal/groups/{group_id}/rename"): R(
        "group", lambda w, c: {"name": fresh_name("Nytt")}
    ),
    ("POST", "/portal/groups/{group_id}/delete"): R("group"),
    # -- vendors, agreements
    ("GET", "/api/v1/vendors"): R(),
    ("GET", "/api/v1/vendors/{vendor_id}/technicians"): R("vendor"),
    ("GET", "/api/v1/agreements"): R(),
    ("GET", "/api/v1/agreements/received"): R(),
    ("POST", "/api/v1/agreements"): R(body=_agreement),
    ("GET", "/api/v1/agreements/{agreement_id}"): R("agreement"),
    ("POST", "/api/v1/agreements/{agreement_id}/revoke"): R("agreement"),
    ("GET", "/portal/agreements"): R(),
    ("POST", "/portal/agreements"): R(body=_agreement_form),
    ("GET", "/portal/agreements/{agreement_id}"): R("agreement"),
    ("POST", "/portal/agreements/{agreement_id}/revoke"): R("agreement"),
    # -- grants
    ("GET", "/api/v1/grants"): R(),
    ("GET", "/api/v1/grants/received"): R(),
    ("GET", "/api/v1/access-overview"): R(),
    ("POST", "/api/v1/grants"): R(body=_grant),
    ("GET", "/api/v1/grants/{grant_id}"): R("grant"),
    ("PUT", "/api/v1/grants/{grant_id}"): R("grant", const(permissions=["view"])),
    ("POST", "/api/v1/grants/{grant_id}/revoke"): R("grant"),
    ("GET", "/portal/grants"): R(),
    ("GET", "/portal/grants/new"): R("agreement", extra={"query": "agreement"}),
    ("POST", "/portal/grants"): R(body=_grant),
    ("GET", "/portal/grants/{grant_id}"): R("grant"),
    ("POST", "/portal/grants/{grant_id}"): R("grant", const(permissions=["view"])),
    ("POST", "/portal/grants/{grant_id}/revoke"): R("grant"),
    ("GET", "/portal/received"): R(),
    # -- notifications
    ("GET", "/api/v1/notifications"): R(),
    ("POST", "/api/v1/notifications/{notification_id}/dismiss"): R("notification"),
    ("GET", "/portal"): R(),
    ("POST", "/portal/notifications/{notification_id}/dismiss"): R("notification"),
    # -- machines, Access sessions, packages
    ("GET", "/api/v1/machines"): R(),
    ("GET", "/api/v1/machines/{machine_id}"): R("machine"),
    ("DELETE", "/api/v1/machines/{machine_id}"): R("machine"),
    ("GET", "/api/v1/machines/{machine_id}/sessions"): R("machine"),
    ("POST", "/api/v1/sessions"): R(body=_session),
    ("GET", "/portal/machines"): R(),
    ("GET", "/portal/machines/{machine_id}"): R("machine"),
    ("GET", "/portal/machines/{machine_id}/remove"): R("machine"),
    ("POST", "/portal/machines/{machine_id}/remove"): R("machine"),
    ("GET", "/console"): R(),
    ("GET", "/console/connect/{machine_id}"): R("machine"),
    ("POST", "/api/v1/packages"): R(body=_package),
    ("GET", "/api/v1/packages"): R(),
    ("POST", "/api/v1/packages/{package_id}/revoke"): R("package"),
    ("GET", "/portal/packages"): R(),
    ("POST", "/portal/packages"): R(body=_package),
    ("GET", "/portal/packages/{package_id}/revoke"): R("package"),
    ("POST", "/portal/packages/{package_id}/revoke"): R("package"),
    ("POST", "/portal/packages/{package_id}/agent.run"): R("package", body=_package_file),
    # -- Support
    ("POST", "/api/v1/support-sessions"): R(body=_customer),
    ("GET", "/api/v1/support-sessions"): R(),
    ("GET", "/api/v1/support-customers"): R(),
    ("GET", "/api/v1/support-sessions/{support_id}"): R("support"),
    ("POST", "/api/v1/support-sessions/{support_id}/cancel"): R("support"),
    ("POST", "/api/v1/support-sessions/{support_id}/tunnel"): R(
        "support", lambda w, c: {"technician_key": technician_key()}
    ),
    ("GET", "/console/support/new"): R(),
    ("POST", "/console/support"): R(body=_customer),
    ("GET", "/console/support/{support_id}"): R("support"),
    ("POST", "/console/support/{support_id}/cancel"): R("support"),
    ("GET", "/portal/support-sessions"): R(),
}


def fresh_account(w: AuthzWorld, role: str) -> Account:
    """Another person with the same role in the same organisation."""
    base = w.account(role).user
    account = make_user(
        w.db, w.state, base.organisation, fresh_name(role[:4]), operator=base.is_operator,
        admin=base.is_admin, technician=base.is_technician,
    )  # fmt: skip
    w.commit()
    return account


def _who(w: AuthzWorld, role: str, recipe: Recipe, api: bool) -> tuple[Account | None, Login]:
    if role == "anonymous":
        login = w.logins["anonymous"]
        if recipe.caller == "isolated":
            return None, w.login(None)
        return None, login
    if recipe.caller == "shared":
        return w.account(role), w.logins[role]
    if recipe.caller == "isolated":
        account = fresh_account(w, role)
        return account, w.login(None)
    account = w.fresh_caller(role) if recipe.caller == "fresh_org" else fresh_account(w, role)
    return account, w.login(account, api=api, page=not api)


def run_cell(w: AuthzWorld, method: str, path: str, role: str, scope: str) -> str:
    """Make one cell's request and return the status it was answered with, marked
    ``LEAK`` where a list or page of the caller's side shows the other side's objects."""
    recipe = ROUTES[(method, path)]
    api = path.startswith("/api/")
    account, login = _who(w, role, recipe, api)
    cell = Cell(role, scope, method, account, login)
    url = path
    if recipe.obj is not None:
        cell.target = OBJECTS[recipe.obj](w, cell)
        if "query" in recipe.extra:
            url = f"{path}?{recipe.extra['query']}={cell.target}"
        elif "{" in path:
            url = _fill(path, cell.target)
    body = recipe.body(w, cell) if recipe.body else None
    w.db.rollback()
    if api:
        # Without a bearer token the call is a browser page's script: it sends the CSRF
        # header as the portal's scripts do, so the cell shows the login check.
        headers = dict(login.api) or {"X-CSRF-Token": login.csrf}
        if method in ("GET", "DELETE"):
            r = w.send(login, method, url, headers=headers)
        else:
            r = w.send(login, method, url, headers=headers, json=body or {})
    elif method == "GET":
        r = w.send(login, method, url)
    else:
        r = w.send(login, method, url, data={**(body or {}), "csrf_token": login.csrf})
    if recipe.after is not None:
        recipe.after(w)
    if method == "GET" and recipe.obj is None and scope == "other" and leaks(w, role, r.text):
        return f"{r.status_code} LEAK"
    return str(r.status_code)


def secrets_of_the_other_side(w: AuthzWorld) -> dict[str, str]:
    """What a page or list of the caller's side must never show: the other customer, its
    groups, machines, agreement and grant, its people. (The other vendor is not on the
    list: customers choose a vendor from a directory of all of them.)"""
    b = w.b
    return {
        "customer id": str(b.customer.id),
        "customer name": b.customer.name,
        "group id": str(b.group.id),
        "machine id": str(b.machine.id),
        "machine name": b.machine.hostname,
        "agreement id": str(b.agreement.id),
        "agreement reference": b.agreement.reference,
        "grant id": str(b.grant.id),
        "customer admin": b.customer_admin.username,
        "technician": b.tech.username,
    }


def leaks(w: AuthzWorld, role: str, text: str) -> list[str]:
    if role in ("anonymous", "operator"):
        return []  # nothing to show / sees every organisation
    return [what for what, value in secrets_of_the_other_side(w).items() if value in text]


def _fill(path: str, value: str) -> str:
    start, end = path.index("{"), path.index("}")
    return path[:start] + value + path[end + 1 :]


def organisation_of(w: AuthzWorld, org_id: str) -> Organisation | None:
    return w.db.execute(
        select(Organisation).where(Organisation.id == uuid.UUID(org_id))
    ).scalar_one_or_none()
