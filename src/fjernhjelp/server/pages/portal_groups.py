"""Machine groups of a receiving organisation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from fjernhjelp.portal import groups
from fjernhjelp.portal.errors import PortalError
from fjernhjelp.server.deps import DB, T
from fjernhjelp.server.pages.portal_view import done, notice_text, settled
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller

router = APIRouter(prefix="/portal/groups")


def _page(
    request: Request, db: DB, t: T, caller: PageCaller, status_code: int = 200, **extra: object
) -> Response:
    return render(
        request,
        t,
        "portal_groups.html",
        status_code=status_code,
        groups=groups.list_own(db, caller),
        **extra,
    )


def _result(request: Request, db: DB, t: T, caller: PageCaller, result: object) -> Response:
    if isinstance(result, PortalError):
        return _page(request, db, t, caller, result.status, error=t(result.reason))
    return done("/portal/groups")


@router.get("", response_class=HTMLResponse)
def groups_page(
    request: Request, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    return _page(request, db, t, caller, notice=notice_text(t, notice))


@router.post("", response_class=HTMLResponse)
def create(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    name: Annotated[str, Form(max_length=200)],
) -> Response:
    result = settled(db, lambda: groups.create(db, caller, name))
    return _result(request, db, t, caller, result)


@router.post("/{group_id}/rename", response_class=HTMLResponse)
def rename(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    group_id: uuid.UUID,
    name: Annotated[str, Form(max_length=200)],
) -> Response:
    result = settled(db, lambda: groups.rename(db, caller, group_id, name))
    return _result(request, db, t, caller, result)


@router.post("/{group_id}/delete", response_class=HTMLResponse)
def delete(request: Request, db: DB, t: T, caller: PageCaller, group_id: uuid.UUID) -> Response:
    result = settled(db, lambda: groups.delete(db, caller, group_id))
    return _result(request, db, t, caller, result)
