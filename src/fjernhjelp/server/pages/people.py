"""People in the caller's organisation: invite with a one-time link, delegate and
withdraw admin rights, deactivate and reactivate."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from fjernhjelp.caller import Caller
from fjernhjelp.portal import members
from fjernhjelp.portal.errors import PortalError
from fjernhjelp.portal.members import Invitation
from fjernhjelp.server.deps import DB, State, T
from fjernhjelp.server.pages.portal_view import done, notice_text, settled
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller, link_lifetime
from fjernhjelp.server.state import AppState

router = APIRouter(prefix="/portal/people")


def _page(
    request: Request, db: DB, t: T, caller: PageCaller, status_code: int = 200, **extra: object
) -> Response:
    people = members.list_members(db, caller)
    return render(
        request,
        t,
        "portal_people.html",
        status_code=status_code,
        people=people,
        organisation=caller.org,
        **extra,
    )


def show_link(
    request: Request, t: T, state: AppState, invitation: Invitation, back: str
) -> Response:
    """The one-time link, shown once: only its hash is stored."""
    return render(
        request,
        t,
        "portal_link.html",
        person=invitation.user,
        link=invitation.link(state.settings.effective_public_url),
        hours=state.settings.enrolment_link_hours,
        back=back,
    )


@router.get("", response_class=HTMLResponse)
def people_page(
    request: Request, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    return _page(request, db, t, caller, notice=notice_text(t, notice))


@router.post("", response_class=HTMLResponse)
def invite(
    request: Request,
    state: State,
    db: DB,
    t: T,
    caller: PageCaller,
    display_name: Annotated[str, Form(max_length=200)],
    username: Annotated[str, Form(max_length=64)],
    email: Annotated[str, Form(max_length=254)],
    admin: Annotated[bool, Form()] = False,
    technician: Annotated[bool, Form()] = False,
    outside_eea: Annotated[bool, Form()] = False,
) -> Response:
    result = settled(
        db,
        lambda: members.invite(
            db,
            caller,
            username=username,
            email=email,
            display_name=display_name,
            admin=admin,
            technician=technician,
            outside_eea=outside_eea,
            link_lifetime=link_lifetime(state),
        ),
    )
    if isinstance(result, PortalError):
        form = {"display_name": display_name, "username": username, "email": email}
        return _page(request, db, t, caller, result.status, error=t(result.reason), form=form)
    return show_link(request, t, state, result, "/portal/people")


def _change(
    request: Request, db: DB, t: T, caller: Caller, change: Callable[[], object]
) -> Response:
    result = settled(db, change)
    if isinstance(result, PortalError):
        return _page(request, db, t, caller, result.status, error=t(result.reason))
    return done("/portal/people", "changed")


@router.post("/{user_id}/admin", response_class=HTMLResponse)
def set_admin(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    user_id: uuid.UUID,
    admin: Annotated[bool, Form()] = False,
) -> Response:
    return _change(request, db, t, caller, lambda: members.set_admin(db, caller, user_id, admin))


@router.post("/{user_id}/outside-eea", response_class=HTMLResponse)
def set_outside_eea(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    user_id: uuid.UUID,
    outside_eea: Annotated[bool, Form()] = False,
) -> Response:
    return _change(
        request,
        db,
        t,
        caller,
        lambda: members.set_outside_eea(db, caller, user_id, outside_eea),
    )


@router.post("/{user_id}/deactivate", response_class=HTMLResponse)
def deactivate(request: Request, db: DB, t: T, caller: PageCaller, user_id: uuid.UUID) -> Response:
    return _change(
        request,
        db,
        t,
        caller,
        lambda: members.deactivate(db, caller, user_id),
    )


@router.post("/{user_id}/reactivate", response_class=HTMLResponse)
def reactivate(request: Request, db: DB, t: T, caller: PageCaller, user_id: uuid.UUID) -> Response:
    return _change(
        request,
        db,
        t,
        caller,
        lambda: members.reactivate(db, caller, user_id),
    )


@router.post("/{user_id}/link", response_class=HTMLResponse)
def new_link(
    request: Request, state: State, db: DB, t: T, caller: PageCaller, user_id: uuid.UUID
) -> Response:
    result = settled(
        db,
        lambda: members.new_link(db, caller, user_id, link_lifetime=link_lifetime(state)),
    )
    if isinstance(result, PortalError):
        return _page(request, db, t, caller, result.status, error=t(result.reason))
    back = "/portal/people"
    if result.user.organisation_id != caller.user.organisation_id:
        back = f"/portal/ops/organisations/{result.user.organisation_id}"
    return show_link(request, t, state, result, back)
