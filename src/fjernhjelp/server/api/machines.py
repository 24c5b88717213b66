"""Machines a technician may reach, with online state; and asking for a session."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from fjernhjelp.machines import registry as machine_registry
from fjernhjelp.machines.models import Machine
from fjernhjelp.refusals import SessionRefused
from fjernhjelp.remote import history
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.server.deps import DB, State
from fjernhjelp.server.portal_caller import ApiCaller

router = APIRouter(tags=["access"])


class Named(BaseModel):
    id: uuid.UUID
    name: str


class MachineOut(BaseModel):
    id: uuid.UUID
    hostname: str
    os: str
    users: list[str]
    customer: Named
    group: Named
    online: bool
    last_seen_at: datetime | None
    agent_version: str


def _out(machine: Machine, online: bool) -> MachineOut:
    return MachineOut(
        id=machine.id,
        hostname=machine.hostname,
        os=machine.os,
        users=[u for u in machine.users.split(",") if u],
        customer=Named(id=machine.organisation_id, name=machine.organisation.name),
        group=Named(id=machine.group_id, name=machine.group.name),
        online=online,
        last_seen_at=machine.last_seen_at,
        agent_version=machine.agent_version,
    )


@router.get("/machines", response_model=list[MachineOut])
async def list_machines(request: Request, db: DB, caller: ApiCaller) -> list[MachineOut]:
    rows = await run_in_threadpool(machine_registry.visible_to, db, caller)
    online = await request.app.state.access.cluster.online(str(m.id) for m in rows)
    return [_out(m, str(m.id) in online) for m in rows]


@router.get("/machines/{machine_id}", response_model=MachineOut)
async def get_machine(
    request: Request, db: DB, caller: ApiCaller, machine_id: uuid.UUID
) -> MachineOut:
    machine = await run_in_threadpool(machine_registry.get_visible, db, caller, machine_id)
    online = await request.app.state.access.cluster.online([str(machine.id)])
    return _out(machine, str(machine.id) in online)


@router.delete(
    "/machines/{machine_id}",
    status_code=204,
    responses={404: {"description": "no such machine, or not the caller's to remove"}},
)
async def remove_machine(
    request: Request, db: DB, caller: ApiCaller, machine_id: uuid.UUID
) -> Response:
    """Remove a machine of your organisation (admins): its key is refused from then on,
    its sessions end and its control link is cut at once."""
    await request.app.state.access.remove_machine(db, caller, machine_id)
    return Response(status_code=204)


class SessionHistoryOut(BaseModel):
    id: uuid.UUID
    technician: str
    technician_username: str
    vendor: Named
    status: str
    requested_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    permissions: list[str]
    consent_required: bool
    consent: str = Field(
        description="preapproved, given, denied, timed_out, no_display or unanswered"
    )
    ended_by: str | None = Field(
        description="user, technician, agent, revoked, server; null while it runs"
    )
    end_reason: str | None
    ended_at_agent: str | None
    bytes_from_technician: int
    bytes_from_agent: int


@router.get("/machines/{machine_id}/sessions", response_model=list[SessionHistoryOut])
def machine_sessions(
    request: Request,
    response: Response,
    db: DB,
    caller: ApiCaller,
    machine_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=history.MAX_PAGE)] = history.DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> list[SessionHistoryOut]:
    """Sessions on the machine, newest first: all of them for the customer's admins, the
    caller's own vendor's for a technician; 404 for anyone else. ``limit`` rows a page;
    when there are more, a ``Link: <…>; rel="next"`` header gives the next page's URL."""
    try:
        after = history.Cursor.decode(cursor) if cursor is not None else None
    except ValueError as exc:
        raise HTTPException(422, "cursor is not one this server gave out") from exc
    page = history.sessions_of(db, caller, machine_id, limit=limit, after=after)
    if page.next is not None:
        url = request.url.include_query_params(cursor=page.next.encode(), limit=limit)
        response.headers["Link"] = f'<{url}>; rel="next"'
    records = page.sessions
    return [
        SessionHistoryOut(
            id=r.id,
            technician=r.technician,
            technician_username=r.technician_username,
            vendor=Named(id=r.vendor_org_id, name=r.vendor),
            status=r.status,
            requested_at=r.requested_at,
            started_at=r.started_at,
            ended_at=r.ended_at,
            duration_seconds=r.duration_seconds,
            permissions=r.permissions,
            consent_required=r.consent_required,
            consent=r.consent,
            ended_by=r.ended_by,
            end_reason=r.end_reason,
            ended_at_agent=r.ended_at_agent,
            bytes_from_technician=r.bytes_from_technician,
            bytes_from_agent=r.bytes_from_agent,
        )
        for r in records
    ]


class SessionRequest(BaseModel):
    machine_id: uuid.UUID
    technician_key: str = Field(
        max_length=64, description="base64 of the technician's raw 32-byte X25519 public key"
    )


class SessionGranted(BaseModel):
    session_id: uuid.UUID
    ticket: str
    relay_url: str
    relay_token: str
    agent_identity_key: str = Field(description="base64 of the agent's raw Ed25519 public key")
    permissions: list[str]
    consent_required: bool
    expires_at: datetime


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionGranted,
    responses={
        403: {"description": "refused, with the reason"},
        409: {"description": "the machine is offline (reason machine_offline)"},
    },
)
async def create_session(
    request: Request,
    body: SessionRequest,
    state: State,
    db: DB,
    caller: ApiCaller,
) -> SessionGranted:
    runtime = request.app.state.access
    try:
        key = base64.b64decode(body.technician_key, validate=True)
    except (binascii.Error, ValueError):
        raise SessionRefused("bad_technician_key") from None
    online = await runtime.cluster.locate(str(body.machine_id)) is not None

    # The database work runs in a worker thread: this event loop also carries the relay
    # and the agents' control links, which must not wait for it. A refusal comes marked
    # recorded (get_db keeps its audit events).
    def issue() -> remote_sessions.IssuedSession:
        issued = remote_sessions.request(
            db,
            caller,
            machine_id=body.machine_id,
            technician_key=key,
            signing_key=state.keys.signing,
            node_id=state.settings.node_id,
            machine_online=online,
        )
        db.commit()
        return issued

    issued = await run_in_threadpool(issue)
    relay_url = await runtime.dial(db, body.machine_id, issued, "machine_offline")
    return SessionGranted(
        session_id=issued.session.id,
        ticket=issued.ticket,
        relay_url=relay_url,
        relay_token=issued.technician_token,
        agent_identity_key=base64.b64encode(issued.agent_identity_key).decode(),
        permissions=issued.session.permission_list,
        consent_required=issued.session.consent_required,
        expires_at=issued.expires_at,
    )
