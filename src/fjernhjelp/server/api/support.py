"""Support sessions: the technician's (make a code, list, cancel) and the end user's
public join with a code. remote/support.py decides, acts and audits."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from fjernhjelp.portal.support import support_customers
from fjernhjelp.refusals import SessionRefused
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote import support, support_tunnel
from fjernhjelp.server.deps import DB, Client, State
from fjernhjelp.server.portal_caller import ApiCaller
from fjernhjelp.server.security import csrf_exempt
from fjernhjelp.server.state import AppState

router = APIRouter(tags=["support"])


def _config(state: AppState) -> support.SupportConfig:
    return support.support_config(state.settings, state.keys.at_rest)


class SupportRequest(BaseModel):
    customer_org_id: uuid.UUID


class SupportOut(BaseModel):
    id: uuid.UUID
    customer_org_id: uuid.UUID
    customer: str
    state: str = Field(description="waiting, joined, running, expired, cancelled or ended")
    requested_at: datetime
    expires_at: datetime | None = Field(description="when the code stops working")
    joined_at: datetime | None
    client_ready: bool = Field(
        description="the end user's client has logged in: the tunnel may be asked for"
    )
    client_way: str | None = Field(
        default=None,
        description='how the end user joined: "client" (one-time client) or "browser" '
        "(screen shared from the start page, view only)",
    )


class SupportCreated(SupportOut):
    code: str = Field(description="the code, digits only; answered this once, never again")
    code_grouped: str = Field(description='the code in groups of three ("482 193 775")')
    link: str = Field(description="the link to send the end user")


class JoinRequest(BaseModel):
    code: str = Field(max_length=100, description="spaces and dashes are ignored")


class JoinedOut(BaseModel):
    session_id: uuid.UUID
    technician: str
    vendor: str
    customer: str
    client_token: str = Field(description="for the end user's one-time client; answered once")


def _out(summary: support.Summary) -> SupportOut:
    return SupportOut(**vars(summary))


@router.post(
    "/support-sessions",
    status_code=201,
    response_model=SupportCreated,
    responses={403: {"description": "refused, with the reason (no Support agreement, …)"}},
)
def create_support(body: SupportRequest, state: State, db: DB, caller: ApiCaller) -> SupportCreated:
    created = support.create(db, caller, _config(state), body.customer_org_id)
    db.commit()
    [summary] = support.summaries(db, [created.session], caller.now)
    return SupportCreated(
        **vars(summary),
        code=created.code,
        code_grouped=created.code_grouped,
        link=created.link,
    )


class SupportCustomerOut(BaseModel):
    id: uuid.UUID
    name: str
    orgnr: str


@router.get("/support-customers", response_model=list[SupportCustomerOut])
def list_support_customers(db: DB, caller: ApiCaller) -> list[SupportCustomerOut]:
    """The customers the caller may start a Support session for now (an agreement in
    force that covers Support): what the console offers under "New Support session"."""
    return [
        SupportCustomerOut(id=org.id, name=org.name, orgnr=org.orgnr)
        for org in support_customers(db, caller.user, caller.now)
    ]


@router.get("/support-sessions", response_model=list[SupportOut])
def list_support(db: DB, caller: ApiCaller) -> list[SupportOut]:
    rows = support.list_own(db, caller)
    return [_out(s) for s in support.summaries(db, rows, caller.now)]


@router.get(
    "/support-sessions/{support_id}",
    response_model=SupportOut,
    responses={404: {"description": "no such Support session of yours"}},
)
def show_support(db: DB, caller: ApiCaller, support_id: uuid.UUID) -> SupportOut:
    """One of the caller's Support sessions: what the console's page polls while it
    waits for the end user."""
    row = support.own(db, caller, support_id)
    return _out(support.summaries(db, [row], caller.now)[0])


@router.post(
    "/support-sessions/{support_id}/cancel",
    response_model=SupportOut,
    responses={409: {"description": "already ended or running"}},
)
async def cancel_support(
    request: Request, db: DB, caller: ApiCaller, support_id: uuid.UUID
) -> SupportOut:
    def act() -> SupportOut:
        row = support.cancel(db, caller, support_id)
        db.commit()
        return _out(support.summaries(db, [row], caller.now)[0])

    out = await run_in_threadpool(act)
    # An end user's client waiting on the control link is told, and exits.
    await request.app.state.access.hub.cut(support_id, support_id, "cancelled")
    return out


class TunnelRequest(BaseModel):
    technician_key: str = Field(
        max_length=64, description="base64 of the technician's raw 32-byte X25519 public key"
    )


class TunnelGranted(BaseModel):
    session_id: uuid.UUID
    ticket: str
    relay_url: str
    relay_token: str
    agent_identity_key: str = Field(
        description="base64 of the end user's client's raw Ed25519 key (made for this session)"
    )
    permissions: list[str]
    consent_required: bool
    expires_at: datetime


@router.post(
    "/support-sessions/{support_id}/tunnel",
    status_code=201,
    response_model=TunnelGranted,
    responses={
        403: {"description": "refused: not ready (nobody joined), client offline, no agreement"},
        404: {"description": "no such Support session of yours"},
    },
)
async def ask_for_support_tunnel(
    request: Request,
    support_id: uuid.UUID,
    body: TunnelRequest,
    state: State,
    db: DB,
    caller: ApiCaller,
) -> TunnelGranted:
    """The technician's tunnel to the end user's one-time client, once it has logged in:
    a ticket as for Access (remote.support_tunnel.request_tunnel), and the client is told to
    dial the relay as an agent is."""
    runtime = request.app.state.access
    try:
        key = base64.b64decode(body.technician_key, validate=True)
    except (binascii.Error, ValueError):
        raise SessionRefused("bad_technician_key") from None
    online = await runtime.cluster.locate(str(support_id)) is not None

    def issue() -> remote_sessions.IssuedSession:
        issued = support_tunnel.request_tunnel(
            db,
            caller,
            support_id,
            technician_key=key,
            signing_key=state.keys.signing,
            node_id=state.settings.node_id,
            client_online=online,
            ticket_lifetime=remote_sessions.TICKET_LIFETIME,
        )
        db.commit()
        return issued

    issued = await run_in_threadpool(issue)
    relay_url = await runtime.dial(db, support_id, issued, "client_offline")
    return TunnelGranted(
        session_id=issued.session.id,
        ticket=issued.ticket,
        relay_url=relay_url,
        relay_token=issued.technician_token,
        agent_identity_key=base64.b64encode(issued.agent_identity_key).decode(),
        permissions=issued.session.permission_list,
        consent_required=True,
        expires_at=issued.expires_at,
    )


@router.post(
    "/support/join",
    response_model=JoinedOut,
    responses={
        404: {"description": "reason support.code_invalid: wrong, used or expired (alike)"},
        429: {"description": "reason support.code_throttled: too many wrong codes; Retry-After"},
    },
)
@csrf_exempt(
    "public, no login: the code in the body is the only credential and no cookie is "
    "read, so a cross-site page could do nothing here it could not do by posting the "
    "code itself"
)
def join_support(body: JoinRequest, state: State, db: DB, client: Client) -> JoinedOut:
    # A refusal comes marked recorded: get_db keeps its event and the throttle counters.
    joined = support.join(db, _config(state), body.code, client.source_address, state.now())
    db.commit()
    return JoinedOut(
        session_id=joined.session_id,
        technician=joined.technician,
        vendor=joined.vendor,
        customer=joined.customer,
        client_token=joined.client_token,
    )
