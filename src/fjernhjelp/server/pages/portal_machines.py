"""Machines: the customer admin's list of its own machines (online state from the
cluster), removing one after a confirmation page, and one machine's session history,
which a granted vendor's technician may also open for its own vendor's sessions (the
console links to it)."""

from __future__ import annotations

import functools
import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from fjernhjelp.caller import Caller
from fjernhjelp.machines import registry as machine_registry
from fjernhjelp.machines import removal
from fjernhjelp.machines.models import InstallerPackage, Machine, MachineStatus
from fjernhjelp.remote import history
from fjernhjelp.server.deps import DB, T, require
from fjernhjelp.server.pages.portal_view import done, notice_text
from fjernhjelp.server.pages.render import TEMPLATES, render
from fjernhjelp.server.portal_caller import PageCaller

router = APIRouter(prefix="/portal/machines")


def _users(machine: Machine) -> list[str]:
    return [u for u in machine.users.split(",") if u]


@router.get("", response_class=HTMLResponse)
async def machines_page(
    request: Request, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    require(caller.user, admin=True)

    def own() -> list[Machine]:
        # An admin who is also a technician sees granted machines in the console; the
        # portal lists the organisation's own.
        return [
            m
            for m in machine_registry.visible_to(db, caller)
            if m.organisation_id == caller.user.organisation_id
        ]

    rows = await run_in_threadpool(own)
    online = await request.app.state.access.cluster.online(str(m.id) for m in rows)
    return render(
        request,
        t,
        "portal_machines.html",
        machines=[(m, _users(m), str(m.id) in online) for m in rows],
        notice=notice_text(t, notice),
    )


PAGE_ROWS = 50  # sessions on one page of a machine's history


@router.get("/{machine_id}", response_class=HTMLResponse)
async def machine_page(
    request: Request,
    db: DB,
    t: T,
    caller: PageCaller,
    machine_id: uuid.UUID,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    try:
        after = history.Cursor.decode(cursor) if cursor is not None else None
    except ValueError as exc:
        raise HTTPException(404) from exc
    page = await run_in_threadpool(
        functools.partial(history.sessions_of, db, caller, machine_id, limit=PAGE_ROWS, after=after)
    )
    machine, sessions = page.machine, page.sessions
    online = await request.app.state.access.cluster.online([str(machine.id)])
    return render(
        request,
        t,
        "portal_machine.html",
        machine=machine,
        users=_users(machine),
        online=str(machine.id) in online,
        sessions=sessions,
        # Relative, so the link keeps whatever scheme and host a reverse proxy shows.
        older="?" + urlencode({"cursor": page.next.encode()}) if page.next else None,
        first_page=cursor is None,
        all_vendors=history.may_see_all(caller, machine),
        removable=removal.may_remove(caller, machine),
    )


def _removable(db: DB, caller: Caller, machine_id: uuid.UUID) -> Machine:
    machine = db.get(Machine, machine_id)
    if (
        machine is None
        or machine.status != MachineStatus.ACTIVE
        or not removal.may_remove(caller, machine)
    ):
        raise HTTPException(404)
    return machine


@router.get("/{machine_id}/remove", response_class=HTMLResponse)
def confirm_remove(
    request: Request, db: DB, t: T, caller: PageCaller, machine_id: uuid.UUID
) -> Response:
    require(caller.user, admin=True)
    machine = _removable(db, caller, machine_id)
    package = db.get(InstallerPackage, machine.package_id) if machine.package_id else None
    return render(
        request,
        t,
        "portal_machine_remove.html",
        machine=machine,
        users=_users(machine),
        package=package,
    )


@router.post("/{machine_id}/remove", response_class=HTMLResponse)
async def remove(request: Request, db: DB, caller: PageCaller, machine_id: uuid.UUID) -> Response:
    require(caller.user, admin=True)
    await request.app.state.access.remove_machine(db, caller, machine_id)
    return done("/portal/machines", "machine_removed")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _size(count: int) -> str:
    # Binary units, as the CLI's progress bar shows them.
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


TEMPLATES.env.filters["duration"] = _duration
TEMPLATES.env.filters["size"] = _size
