"""Grants: who has access to what (the customer's view), giving and changing access,
and what a vendor has received, one customer at a time."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from fjernhjelp.caller import Caller
from fjernhjelp.portal import agreements, dates, grants, groups, overview
from fjernhjelp.portal.errors import PortalError
from fjernhjelp.portal.grants import GrantTerms
from fjernhjelp.portal.models import Agreement, Grant, Permission
from fjernhjelp.server.deps import DB, State, T
from fjernhjelp.server.pages.portal_view import done, notice_text, settled
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller

router = APIRouter()

PERMISSIONS = [p.value for p in Permission]


def _terms(
    permissions: list[str],
    consent: str,
    expires: str,
    technician_ids: list[str],
    zone: str,
    may_make_packages: bool,
) -> GrantTerms:
    try:
        last = dates.parse_day(expires)
    except ValueError:
        raise PortalError("agreement.bad_date") from None
    try:
        named = frozenset(uuid.UUID(v) for v in technician_ids)
    except ValueError:
        raise PortalError("grant.unknown_technician") from None
    return GrantTerms(
        permissions=grants.parse_permissions(permissions),
        consent_required=consent != "preapproved",
        expires_at=dates.end_of_day(last, zone) if last else None,
        technician_ids=named,
        may_make_packages=may_make_packages,
    )


# -- the customer's overview -----------------------------------------------------


@router.get("/portal/grants", response_class=HTMLResponse)
def grants_page(
    request: Request, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    rows = overview.who_has_access(db, caller)
    mine = grants.list_as_customer(db, caller)
    # Only agreements a grant can rest on: in force and covering Access (not Support only).
    valid = [
        a for a in agreements.list_as_customer(db, caller) if grants.gives_access(a, caller.now)
    ]
    return render(
        request,
        t,
        "portal_grants.html",
        rows=rows,
        history=[g for g in mine if grants.effective_status(g, caller.now) != "active"],
        agreements=valid,
        status_of=lambda g: grants.effective_status(g, caller.now),
        notice=notice_text(t, notice),
    )


# -- giving access ---------------------------------------------------------------


def _form_page(
    request: Request,
    db: DB,
    t: T,
    caller: Caller,
    agreement: Agreement,
    *,
    grant: Grant | None = None,
    status_code: int = 200,
    **extra: object,
) -> Response:
    return render(
        request,
        t,
        "portal_grant_form.html",
        status_code=status_code,
        agreement=agreement,
        grant=grant,
        groups=groups.list_own(db, caller) if grant is None else [],
        technicians=grants.eligible_technicians(db, caller, agreement.vendor_org_id),
        permissions=PERMISSIONS,
        offered=agreement.coverage.access,
        **extra,
    )


@router.get("/portal/grants/new", response_class=HTMLResponse)
def new_grant(request: Request, db: DB, t: T, caller: PageCaller, agreement: uuid.UUID) -> Response:
    chosen = agreements.get_own(db, caller, agreement)
    if not chosen.coverage.access:
        # Reached only by a typed or stale link: say why instead of a form that must fail.
        refusal = PortalError("grant.agreement_support_only")
        return _form_page(
            request,
            db,
            t,
            caller,
            chosen,
            status_code=refusal.status,
            error=t(refusal.reason),
            form={"permissions": []},
        )
    return _form_page(request, db, t, caller, chosen, form={"permissions": ["view", "chat"]})


@router.post("/portal/grants", response_class=HTMLResponse)
def create_grant(
    request: Request,
    state: State,
    db: DB,
    t: T,
    caller: PageCaller,
    agreement_id: Annotated[uuid.UUID, Form()],
    group_id: Annotated[uuid.UUID, Form()],
    permissions: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    consent: Annotated[str, Form(max_length=16)] = "required",
    expires: Annotated[str, Form(max_length=10)] = "",
    technician_ids: Annotated[list[str], Form()] = [],  # noqa: B006
    may_make_packages: Annotated[bool, Form()] = False,
) -> Response:
    zone = state.settings.time_zone
    form = {
        "group_id": str(group_id),
        "permissions": permissions,
        "consent": consent,
        "expires": expires,
        "technician_ids": technician_ids,
        "may_make_packages": may_make_packages,
    }

    def change() -> Grant:
        wanted = _terms(permissions, consent, expires, technician_ids, zone, may_make_packages)
        return grants.create(
            db, caller, group_id=group_id, agreement_id=agreement_id, wanted=wanted
        )

    result = settled(db, change)
    if isinstance(result, PortalError):
        agreement = agreements.get_own(db, caller, agreement_id)
        return _form_page(
            request,
            db,
            t,
            caller,
            agreement,
            status_code=result.status,
            error=t(result.reason),
            form=form,
        )
    return done(f"/portal/grants/{result.id}", "grant_created")


# -- one grant -------------------------------------------------------------------


def _grant_page(
    request: Request,
    db: DB,
    t: T,
    caller: Caller,
    grant_id: uuid.UUID,
    status_code: int = 200,
    **extra: object,
) -> Response:
    grant = grants.get_visible(db, caller, grant_id)
    is_customer = grant.customer_org_id == caller.user.organisation_id
    status = grants.effective_status(grant, caller.now)
    editable = is_customer and status == "active"
    zone = request.app.state.fjh.settings.time_zone
    form = {
        "permissions": [p.value for p in grant.permissions],
        "consent": "required" if grant.consent_required else "preapproved",
        "expires": dates.last_day(grant.expires_at, zone).isoformat() if grant.expires_at else "",
        "technician_ids": [str(u.id) for u in grant.technicians],
        "may_make_packages": grant.may_make_packages,
    }
    return render(
        request,
        t,
        "portal_grant.html",
        status_code=status_code,
        grant=grant,
        status=status,
        is_customer=is_customer,
        editable=editable,
        technicians=grants.eligible_technicians(db, caller, grant.vendor_org_id)
        if editable
        else [],
        permissions=PERMISSIONS,
        form=extra.pop("form", form),
        **extra,
    )


@router.get("/portal/grants/{grant_id}", response_class=HTMLResponse)
def grant_page(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    grant_id: uuid.UUID,
    notice: str | None = None,
) -> Response:
    return _grant_page(request, db, t, caller, grant_id, notice=notice_text(t, notice))


@router.post("/portal/grants/{grant_id}", response_class=HTMLResponse)
def change_grant(
    request: Request,
    state: State,
    db: DB,
    t: T,
    caller: PageCaller,
    grant_id: uuid.UUID,
    permissions: Annotated[list[str], Form()] = [],  # noqa: B006
    consent: Annotated[str, Form(max_length=16)] = "required",
    expires: Annotated[str, Form(max_length=10)] = "",
    technician_ids: Annotated[list[str], Form()] = [],  # noqa: B006
    may_make_packages: Annotated[bool, Form()] = False,
) -> Response:
    zone = state.settings.time_zone

    def change() -> Grant:
        wanted = _terms(permissions, consent, expires, technician_ids, zone, may_make_packages)
        return grants.update(db, caller, grant_id, wanted)

    result = settled(db, change)
    if isinstance(result, PortalError):
        form = {
            "permissions": permissions,
            "consent": consent,
            "expires": expires,
            "technician_ids": technician_ids,
            "may_make_packages": may_make_packages,
        }
        return _grant_page(
            request,
            db,
            t,
            caller,
            grant_id,
            result.status,
            error=t(result.reason),
            form=form,
        )
    return done(f"/portal/grants/{grant_id}")


@router.post("/portal/grants/{grant_id}/revoke", response_class=HTMLResponse)
def revoke_grant(
    request: Request, db: DB, t: T, caller: PageCaller, grant_id: uuid.UUID
) -> Response:
    result = settled(db, lambda: grants.revoke(db, caller, grant_id))
    if isinstance(result, PortalError):
        return _grant_page(request, db, t, caller, grant_id, result.status, error=t(result.reason))
    return done(f"/portal/grants/{grant_id}", "grant_revoked")


# -- the vendor's view -------------------------------------------------------------


@router.get("/portal/received", response_class=HTMLResponse)
def received_page(request: Request, db: DB, t: T, caller: PageCaller) -> Response:
    return render(
        request,
        t,
        "portal_received.html",
        blocks=overview.received_by_customer(db, caller),
        status_of=lambda g: grants.effective_status(g, caller.now),
    )
