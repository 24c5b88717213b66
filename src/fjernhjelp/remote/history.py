"""Session history: of one machine (Access), and of an organisation's Support sessions;
who connected, when, with what, and how it ended.

The session row holds what the server saw (request, relay, end, bytes). What happened at
the machine (the end user's consent answer, the end user ending the session) is only in
the audit events the agent reported, so both are read and joined by session id.

Who may read it: the customer organisation's admins see every session on their machines;
a technician sees only sessions of their own vendor organisation. Anyone else gets
NotFound, exactly as for a machine that does not exist.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.caller import Caller
from fjernhjelp.machines.models import Machine
from fjernhjelp.machines.registry import get_visible
from fjernhjelp.portal.models.organisation import Organisation
from fjernhjelp.refusals import NotFound
from fjernhjelp.remote.models import RemoteSession, SessionKind

# Agent-reported answers, by audit action; the last one for a session wins.
CONSENT_ACTIONS = {
    "consent.given": "given",
    "consent.denied": "denied",
    "consent.timed_out": "timed_out",
    "consent.no_display": "no_display",
}
AGENT_END = "session.ended_at_agent"


@dataclass(frozen=True)
class SessionRecord:
    id: uuid.UUID
    technician: str
    technician_username: str
    vendor: str
    vendor_org_id: uuid.UUID
    status: str
    requested_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    permissions: list[str]
    consent_required: bool
    # "preapproved" (no question asked), "given", "denied", "timed_out", "no_display",
    # or "unanswered" (consent was required and no answer was reported).
    consent: str
    end_reason: str | None  # as the relay saw it: technician_closed, cut:revoked, …
    ended_at_agent: str | None  # as the agent reported it: ended_by_user:button, …
    bytes_from_technician: int
    bytes_from_agent: int
    kind: str = SessionKind.ACCESS  # "access" or "support"
    customer: str = ""  # the customer organisation's name (Support lists show it)

    @property
    def is_support(self) -> bool:
        return self.kind == SessionKind.SUPPORT

    @property
    def duration_seconds(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return int((self.ended_at - self.started_at).total_seconds())

    @property
    def ended_by(self) -> str | None:
        """Who ended it, in one word: "user", "technician", "agent", "revoked",
        "server" or None while it runs (the reason itself is shown next to it)."""
        if self.ended_at is None:
            return None
        why = self.ended_at_agent or ""
        if why.startswith("ended_by_user"):
            return "user"
        reason = self.end_reason or ""
        if reason == "cut:server_stopping":
            return "server"
        if reason.startswith("cut:"):
            return "revoked"
        if reason.startswith("technician"):
            return "technician"
        if reason.startswith("agent"):
            return "agent"
        return "server"


def may_see_all(caller: Caller, machine: Machine) -> bool:
    """The customer's own admins read every vendor's sessions on their machines."""
    user = caller.user
    return (user.is_admin or user.is_operator) and user.organisation_id == machine.organisation_id


def machine_for_history(db: Session, caller: Caller, machine_id: uuid.UUID) -> Machine:
    """The machine if the caller may read any of its history; NotFound otherwise.

    A technician whose grant has ended still sees their own vendor's past sessions
    (the record of what they did stays theirs to read)."""
    return get_visible(db, caller, machine_id, ended_grants=True)


def _agent_reports(
    db: Session, machine_id: uuid.UUID, *, since: datetime
) -> dict[str, dict[str, str]]:
    # An agent reports on a session only after it was requested, so events older than
    # the page's oldest session cannot belong to it: the page reads only its own span.
    wanted = [*CONSENT_ACTIONS, AGENT_END]
    rows = db.execute(
        select(AuditEvent.action, AuditEvent.reason, AuditEvent.details)
        .where(
            AuditEvent.machine_id == str(machine_id),
            AuditEvent.action.in_(wanted),
            AuditEvent.occurred_at >= since,
        )
        .order_by(AuditEvent.seq)
    ).all()
    reports: dict[str, dict[str, str]] = {}
    for action, reason, details in rows:
        session = json.loads(details).get("session")
        if not isinstance(session, str):
            continue
        entry = reports.setdefault(session, {})
        if action == AGENT_END:
            entry["ended_at_agent"] = reason or ""
        else:
            entry["consent"] = CONSENT_ACTIONS[action]
    return reports


@dataclass(frozen=True)
class Cursor:
    """Where a page of history ends: the last row's request time and id. Sessions are
    ordered by both, newest first, so rows requested in the same instant are neither
    skipped nor repeated from one page to the next."""

    requested_at: datetime
    session_id: uuid.UUID

    def encode(self) -> str:
        return f"{self.requested_at.isoformat()}_{self.session_id.hex}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises ValueError for anything that is not a cursor this module wrote."""
        when, sep, sid = text.rpartition("_")
        if not sep:
            raise ValueError("not a history cursor")
        requested_at = datetime.fromisoformat(when)
        if requested_at.tzinfo is None:
            raise ValueError("a history cursor carries its time zone")
        return cls(requested_at, uuid.UUID(hex=sid))


@dataclass(frozen=True)
class HistoryPage:
    machine: Machine
    sessions: list[SessionRecord]
    next: Cursor | None  # None on the last page


DEFAULT_PAGE = 100
MAX_PAGE = 500


def _record(
    row: RemoteSession, names: dict[uuid.UUID, str], report: dict[str, str]
) -> SessionRecord:
    consent = report.get("consent") or ("unanswered" if row.consent_required else "preapproved")
    return SessionRecord(
        id=row.id,
        technician=row.technician.display_name,
        technician_username=row.technician.username,
        vendor=names.get(row.vendor_org_id, ""),
        vendor_org_id=row.vendor_org_id,
        status=row.status,
        requested_at=row.requested_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        permissions=row.permission_list,
        consent_required=row.consent_required,
        consent=consent,
        end_reason=row.end_reason,
        ended_at_agent=report.get("ended_at_agent"),
        bytes_from_technician=row.bytes_from_technician,
        bytes_from_agent=row.bytes_from_agent,
        kind=row.kind,
        customer=names.get(row.customer_org_id, ""),
    )


def sessions_of(
    db: Session,
    caller: Caller,
    machine_id: uuid.UUID,
    *,
    limit: int = DEFAULT_PAGE,
    after: Cursor | None = None,
) -> HistoryPage:
    """The machine and up to ``limit`` sessions on it the caller may read, newest first,
    starting after ``after`` (the ``next`` of the previous page)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    user = caller.user
    machine = machine_for_history(db, caller, machine_id)
    stmt = select(RemoteSession).where(RemoteSession.machine_id == machine.id)
    if not may_see_all(caller, machine):
        if not user.is_technician:
            raise NotFound("machine")
        stmt = stmt.where(RemoteSession.vendor_org_id == user.organisation_id)
    if after is not None:
        stmt = stmt.where(
            or_(
                RemoteSession.requested_at < after.requested_at,
                and_(
                    RemoteSession.requested_at == after.requested_at,
                    RemoteSession.id < after.session_id,
                ),
            )
        )
    ordered = stmt.order_by(RemoteSession.requested_at.desc(), RemoteSession.id.desc())
    rows = list(db.execute(ordered.limit(limit + 1)).scalars())
    more, rows = len(rows) > limit, rows[:limit]
    vendors = {
        o.id: o.name
        for o in db.execute(
            select(Organisation).where(Organisation.id.in_(list({r.vendor_org_id for r in rows})))
        ).scalars()
    }
    reports = _agent_reports(db, machine.id, since=rows[-1].requested_at) if rows else {}
    records = [_record(row, vendors, reports.get(str(row.id), {})) for row in rows]
    last = rows[-1] if more else None
    return HistoryPage(machine, records, Cursor(last.requested_at, last.id) if last else None)


# ---- Support sessions ----------------------------------------------------------------------
#
# A Support session reaches a person, not an enrolled machine, so it has no machine page
# to sit on. Its history is one list per organisation instead: the customer's admins see
# every vendor's Support sessions for their organisation (as they see every vendor's
# sessions on their machines), the vendor's admins every one their technicians made, and
# a technician their own. The rows are the same table and the same SessionRecord as
# Access, marked by ``kind``.


def _support_scope(caller: Caller) -> list[ColumnElement[bool]]:
    """Which Support sessions the caller may read, as conditions any one of which admits
    a row; empty for nobody."""
    user = caller.user
    scope: list[ColumnElement[bool]] = []
    if user.is_admin or user.is_operator:
        scope.append(RemoteSession.customer_org_id == user.organisation_id)
        scope.append(RemoteSession.vendor_org_id == user.organisation_id)
    if user.is_technician:
        scope.append(RemoteSession.technician_id == user.id)
    return scope


def _session_reports(
    db: Session, sessions: list[RemoteSession], *, since: datetime
) -> dict[str, dict[str, str]]:
    """Consent answers and ends reported from the end user's side of Support sessions:
    the same actions as an agent's, on events without a machine."""
    customers = list({r.customer_org_id for r in sessions})
    wanted = [*CONSENT_ACTIONS, AGENT_END]
    rows = db.execute(
        select(AuditEvent.action, AuditEvent.reason, AuditEvent.details)
        .where(
            AuditEvent.machine_id.is_(None),
            AuditEvent.customer_org_id.in_(customers),
            AuditEvent.action.in_(wanted),
            AuditEvent.occurred_at >= since,
        )
        .order_by(AuditEvent.seq)
    ).all()
    ids = {str(r.id) for r in sessions}
    reports: dict[str, dict[str, str]] = {}
    for action, reason, details in rows:
        session = json.loads(details).get("session")
        if session not in ids:
            continue
        entry = reports.setdefault(session, {})
        if action == AGENT_END:
            entry["ended_at_agent"] = reason or ""
        else:
            entry["consent"] = CONSENT_ACTIONS[action]
    return reports


@dataclass(frozen=True)
class SupportHistoryPage:
    sessions: list[SessionRecord]
    next: Cursor | None  # None on the last page
    # The caller reads their organisation's Support sessions as the customer (every
    # vendor's), not only those their own vendor made.
    as_customer: bool


def support_sessions_of(
    db: Session,
    caller: Caller,
    *,
    limit: int = DEFAULT_PAGE,
    after: Cursor | None = None,
) -> SupportHistoryPage:
    """Up to ``limit`` Support sessions the caller may read, newest first, after ``after``.
    Someone who may read none (an end user has no account; a person in no role) gets an
    empty page, not an error: the list is theirs, whatever is in it."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    scope = _support_scope(caller)
    user = caller.user
    as_customer = (user.is_admin or user.is_operator) and user.organisation.receives_help
    if not scope:
        return SupportHistoryPage([], None, as_customer)
    stmt = select(RemoteSession).where(
        RemoteSession.kind == SessionKind.SUPPORT,
        # Codes nobody entered never became a session with the end user; the console
        # shows those while they wait, the history only what was joined.
        RemoteSession.code_used_at.is_not(None),
        or_(*scope),
    )
    if after is not None:
        stmt = stmt.where(
            or_(
                RemoteSession.requested_at < after.requested_at,
                and_(
                    RemoteSession.requested_at == after.requested_at,
                    RemoteSession.id < after.session_id,
                ),
            )
        )
    ordered = stmt.order_by(RemoteSession.requested_at.desc(), RemoteSession.id.desc())
    rows = list(db.execute(ordered.limit(limit + 1)).scalars())
    more, rows = len(rows) > limit, rows[:limit]
    names = {
        o.id: o.name
        for o in db.execute(
            select(Organisation).where(
                Organisation.id.in_(
                    list({r.vendor_org_id for r in rows} | {r.customer_org_id for r in rows})
                )
            )
        ).scalars()
    }
    reports = _session_reports(db, rows, since=rows[-1].requested_at) if rows else {}
    records = [_record(row, names, reports.get(str(row.id), {})) for row in rows]
    last = rows[-1] if more else None
    return SupportHistoryPage(
        records, Cursor(last.requested_at, last.id) if last else None, as_customer
    )
