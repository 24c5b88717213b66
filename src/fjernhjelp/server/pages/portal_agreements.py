"""Agreements: the customer records and ends them; both parties read them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from fjernhjelp.portal import agreements, dates, grants
from fjernhjelp.portal.agreements import AgreementSpec
from fjernhjelp.portal.errors import PortalError
from fjernhjelp.portal.models import AgreementCovers, GrantStatus
from fjernhjelp.server.deps import DB, State, T
from fjernhjelp.server.pages.portal_view import done, notice_text, settled
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller

router = APIRouter(prefix="/portal/agreements")

# In the order a clinic reads them: the kind that needs nothing installed first.
COVERS_CHOICES = [
    c.value for c in (AgreementCovers.SUPPORT, AgreementCovers.ACCESS, AgreementCovers.BOTH)
]


def _page(
    request: Request, db: DB, t: T, caller: PageCaller, status_code: int = 200, **extra: object
) -> Response:
    caller.require_admin()
    org = caller.org
    extra.setdefault("form", {})
    return render(
        request,
        t,
        "portal_agreements.html",
        status_code=status_code,
        own=agreements.list_as_customer(db, caller) if org.receives_help else None,
        vendors=agreements.vendors(db, caller) if org.receives_help else [],
        received=agreements.list_as_vendor(db, caller) if org.gives_help else None,
        covers_choices=COVERS_CHOICES,
        # A customer that may not yet receive Access (a municipality, until the operator
        # turns it on) is told so where it chooses what the agreement covers.
        access_enabled=org.access_enabled,
        status_of=lambda a: agreements.effective_status(a, caller.now),
        today=dates.local_day(caller.now, request.app.state.fjh.settings.time_zone).isoformat(),
        **extra,
    )


@router.get("", response_class=HTMLResponse)
def agreements_page(
    request: Request, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    return _page(request, db, t, caller, notice=notice_text(t, notice))


@router.post("", response_class=HTMLResponse)
def record(
    request: Request,
    state: State,
    db: DB,
    t: T,
    caller: PageCaller,
    vendor_org_id: Annotated[str, Form(max_length=64)],
    kind: Annotated[str, Form(max_length=32)],
    reference: Annotated[str, Form(max_length=200)],
    valid_from: Annotated[str, Form(max_length=10)],
    valid_until: Annotated[str, Form(max_length=10)] = "",
    # No default that means something: the admin must choose (agreement.bad_covers).
    covers: Annotated[str, Form(max_length=16)] = "",
    allows_preapproved: Annotated[bool, Form()] = False,
    preapproved_clause: Annotated[str, Form(max_length=8000)] = "",
    non_eea_staff_allowed: Annotated[bool, Form()] = False,
) -> Response:
    form = {
        "vendor_org_id": vendor_org_id,
        "kind": kind,
        "covers": covers,
        "reference": reference,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "allows_preapproved": allows_preapproved,
        "preapproved_clause": preapproved_clause,
        "non_eea_staff_allowed": non_eea_staff_allowed,
    }
    zone = state.settings.time_zone
    try:
        first = dates.parse_day(valid_from)
        last = dates.parse_day(valid_until)
        vendor = uuid.UUID(vendor_org_id)
    except ValueError as exc:
        key = "agreement.unknown_vendor" if "UUID" in str(exc) else "agreement.bad_date"
        return _page(request, db, t, caller, 422, error=t(key), form=form)
    if first is None:
        return _page(request, db, t, caller, 422, error=t("agreement.bad_date"), form=form)
    spec = AgreementSpec(
        vendor_org_id=vendor,
        kind=kind,
        covers=covers,
        reference=reference,
        valid_from=dates.start_of_day(first, zone),
        valid_until=dates.end_of_day(last, zone) if last else None,
        allows_preapproved=allows_preapproved,
        preapproved_clause=preapproved_clause,
        non_eea_staff_allowed=non_eea_staff_allowed,
    )
    result = settled(db, lambda: agreements.record(db, caller, spec))
    if isinstance(result, PortalError):
        return _page(request, db, t, caller, result.status, error=t(result.reason), form=form)
    return done(f"/portal/agreements/{result.id}", "agreement_recorded")


@router.get("/{agreement_id}", response_class=HTMLResponse)
def agreement_page(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    agreement_id: uuid.UUID,
    notice: str | None = None,
) -> Response:
    return _agreement(request, db, t, caller, agreement_id, notice=notice_text(t, notice))


def _agreement(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    agreement_id: uuid.UUID,
    status_code: int = 200,
    **extra: object,
) -> Response:
    agreement = agreements.get_visible(db, caller, agreement_id)
    is_customer = agreement.customer_org_id == caller.user.organisation_id
    resting = [
        g for g in agreements.grants_resting_on(db, agreement.id) if g.status == GrantStatus.ACTIVE
    ]
    return render(
        request,
        t,
        "portal_agreement.html",
        status_code=status_code,
        agreement=agreement,
        status=agreements.effective_status(agreement, caller.now),
        is_customer=is_customer,
        grants=resting,
        gives_access=grants.gives_access(agreement, caller.now),
        **extra,
    )


@router.post("/{agreement_id}/revoke", response_class=HTMLResponse)
def revoke(request: Request, db: DB, t: T, caller: PageCaller, agreement_id: uuid.UUID) -> Response:
    result = settled(db, lambda: agreements.revoke(db, caller, agreement_id))
    if isinstance(result, PortalError):
        return _agreement(
            request, db, t, caller, agreement_id, result.status, error=t(result.reason)
        )
    return done(f"/portal/agreements/{agreement_id}", "agreement_revoked")
