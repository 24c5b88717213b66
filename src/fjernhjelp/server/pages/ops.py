"""The operator's pages: organisations (register, first admin, policy, suspension),
suspending people, and publishing terms of use."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from fjernhjelp.caller import Caller
from fjernhjelp.portal import members, organisations, policy, terms
from fjernhjelp.portal.errors import PortalError
from fjernhjelp.portal.models import OrgKind
from fjernhjelp.server.deps import DB, State, T
from fjernhjelp.server.pages.people import show_link
from fjernhjelp.server.pages.portal_view import done, notice_text, settled
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller, link_lifetime

router = APIRouter(prefix="/portal/ops")

KINDS = [k.value for k in OrgKind]


def _list(
    request: Request, db: DB, t: T, caller: Caller, status_code: int = 200, **extra: object
) -> Response:
    extra.setdefault("form", {})
    return render(
        request,
        t,
        "ops_organisations.html",
        status_code=status_code,
        organisations=organisations.list_all(db, caller),
        kinds=KINDS,
        **extra,
    )


@router.get("/organisations", response_class=HTMLResponse)
def organisations_page(
    request: Request, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    return _list(request, db, t, caller, notice=notice_text(t, notice))


@router.post("/organisations", response_class=HTMLResponse)
def register(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    orgnr: Annotated[str, Form(max_length=20)],
    name: Annotated[str, Form(max_length=300)],
    kind: Annotated[str, Form(max_length=20)],
    receives_help: Annotated[bool, Form()] = False,
    gives_help: Annotated[bool, Form()] = False,
) -> Response:
    result = settled(
        db,
        lambda: organisations.register(
            db,
            caller,
            orgnr=orgnr,
            name=name,
            kind=kind,
            receives_help=receives_help,
            gives_help=gives_help,
        ),
    )
    if isinstance(result, PortalError):
        form = {
            "orgnr": orgnr,
            "name": name,
            "kind": kind,
            "receives_help": receives_help,
            "gives_help": gives_help,
        }
        return _list(request, db, t, caller, result.status, error=t(result.reason), form=form)
    return done(f"/portal/ops/organisations/{result.id}", "registered")


def _detail(
    request: Request,
    db: DB,
    t: T,
    caller: Caller,
    org_id: uuid.UUID,
    status_code: int = 200,
    **extra: object,
) -> Response:
    caller.require_operator()
    org = organisations.get(db, caller, org_id)
    return render(
        request,
        t,
        "ops_organisation.html",
        status_code=status_code,
        org=org,
        people=members.list_members(db, caller, org.id),
        **extra,
    )


@router.get("/organisations/{org_id}", response_class=HTMLResponse)
def organisation_page(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    org_id: uuid.UUID,
    notice: str | None = None,
) -> Response:
    return _detail(request, db, t, caller, org_id, notice=notice_text(t, notice))


def _org_change(
    request: Request,
    db: DB,
    t: T,
    caller: Caller,
    org_id: uuid.UUID,
    change: Callable[[], object],
) -> Response:
    result = settled(db, change)
    if isinstance(result, PortalError):
        return _detail(request, db, t, caller, org_id, result.status, error=t(result.reason))
    return done(f"/portal/ops/organisations/{org_id}")


@router.post("/organisations/{org_id}/policy", response_class=HTMLResponse)
def set_policy(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    org_id: uuid.UUID,
    access_enabled: Annotated[bool, Form()] = False,
    receives_help: Annotated[bool, Form()] = False,
    gives_help: Annotated[bool, Form()] = False,
) -> Response:
    wanted = policy.Policy(access_enabled, receives_help, gives_help)
    return _org_change(
        request,
        db,
        t,
        caller,
        org_id,
        lambda: policy.set_policy(db, caller, org_id, wanted),
    )


@router.post("/organisations/{org_id}/suspend", response_class=HTMLResponse)
def suspend(request: Request, db: DB, t: T, caller: PageCaller, org_id: uuid.UUID) -> Response:
    return _org_change(
        request,
        db,
        t,
        caller,
        org_id,
        lambda: organisations.suspend(db, caller, org_id),
    )


@router.post("/organisations/{org_id}/resume", response_class=HTMLResponse)
def resume(request: Request, db: DB, t: T, caller: PageCaller, org_id: uuid.UUID) -> Response:
    return _org_change(
        request,
        db,
        t,
        caller,
        org_id,
        lambda: organisations.resume(db, caller, org_id),
    )


@router.post("/organisations/{org_id}/admins", response_class=HTMLResponse)
def appoint_admin(
    request: Request,
    state: State,
    db: DB,
    t: T,
    caller: PageCaller,
    org_id: uuid.UUID,
    display_name: Annotated[str, Form(max_length=200)],
    username: Annotated[str, Form(max_length=64)],
    email: Annotated[str, Form(max_length=254)],
) -> Response:
    result = settled(
        db,
        lambda: organisations.appoint_admin(
            db,
            caller,
            org_id,
            username=username,
            email=email,
            display_name=display_name,
            link_lifetime=link_lifetime(state),
        ),
    )
    if isinstance(result, PortalError):
        return _detail(request, db, t, caller, org_id, result.status, error=t(result.reason))
    return show_link(request, t, state, result, f"/portal/ops/organisations/{org_id}")


@router.post("/accounts/{user_id}/suspend", response_class=HTMLResponse)
def suspend_account(
    request: Request, db: DB, t: T, caller: PageCaller, user_id: uuid.UUID
) -> Response:
    user = members.get_member(db, caller, user_id)
    return _org_change(
        request,
        db,
        t,
        caller,
        user.organisation_id,
        lambda: members.suspend(db, caller, user_id),
    )


@router.post("/accounts/{user_id}/unsuspend", response_class=HTMLResponse)
def unsuspend_account(
    request: Request, db: DB, t: T, caller: PageCaller, user_id: uuid.UUID
) -> Response:
    user = members.get_member(db, caller, user_id)
    return _org_change(
        request,
        db,
        t,
        caller,
        user.organisation_id,
        lambda: members.unsuspend(db, caller, user_id),
    )


# -- terms ---------------------------------------------------------------------------


def _terms_page(
    request: Request, db: DB, t: T, caller: Caller, status_code: int = 200, **extra: object
) -> Response:
    caller.require_operator()
    extra.setdefault("form", {})
    return render(
        request,
        t,
        "ops_terms.html",
        status_code=status_code,
        versions=terms.all_versions(db),
        **extra,
    )


@router.get("/terms", response_class=HTMLResponse)
def terms_page(
    request: Request, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    return _terms_page(request, db, t, caller, notice=notice_text(t, notice))


@router.post("/terms", response_class=HTMLResponse)
def publish_terms(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    audience: Annotated[str, Form(max_length=16)],
    title: Annotated[str, Form(max_length=300)],
    body_nb: Annotated[str, Form(max_length=100_000)],
    body_en: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    result = settled(
        db,
        lambda: terms.publish(
            db, caller, audience=audience, title=title, body_nb=body_nb, body_en=body_en
        ),
    )
    if isinstance(result, PortalError):
        form = {"audience": audience, "title": title, "body_nb": body_nb, "body_en": body_en}
        return _terms_page(request, db, t, caller, result.status, error=t(result.reason), form=form)
    return done("/portal/ops/terms", "terms_published")
