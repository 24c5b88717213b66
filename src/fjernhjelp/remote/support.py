"""Support sessions, up to the tunnel: the technician asks for a code, the end user joins
with it, the technician may cancel, and codes nobody used expire.

The code is what the technician reads over the telephone: digits only, at least nine,
made with ``secrets``, single use, bound to the customer it was made for and to the
technician who asked, and dead after ``support_code_minutes``. It is never stored or
logged: the row keeps HMAC-SHA256(code key, code) only, the code key being derived from
the server's at-rest key, so a database dump alone cannot be searched for the 10^9
possible codes.

Joining is public (no login), so it is where a guesser works. Every attempt is an audit
event with its source address; a wrong code, whatever is wrong with it (malformed,
unknown, used, expired, cancelled), answers the same refusal, ``support.code_invalid``,
while the event's reason says which. Wrong attempts count against the source address
(an IPv6 address by its /64) and against everyone together per clock hour
(auth/throttle.py), with the login's back-off; past the limit every attempt, right or
wrong, is refused with 429 until the lockout ends. The overall limit means a flood of
guesses can hold up genuine end users for a while: that is the price of keeping a
distributed guesser's odds small, and the event log shows when it happens.

The code is spent by one UPDATE ... WHERE code_used_at IS NULL whose row count decides:
of two joins with one code, exactly one wins, whichever reads first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth import throttle
from fjernhjelp.auth.throttle import ThrottleRule
from fjernhjelp.auth.tokens import new_token, token_hash
from fjernhjelp.caller import Caller
from fjernhjelp.portal.models import Organisation
from fjernhjelp.portal.support import SupportAllowed, decide_support
from fjernhjelp.portal.trail import audits_refusals
from fjernhjelp.refusals import Conflict, NotFound, Refusal
from fjernhjelp.remote.models import RemoteSession, SessionKind, SessionStatus
from fjernhjelp.remote.support_codes import (
    MIN_DIGITS,
    code_digest,
    code_key,
    grouped,
    new_code,
    normalise,
)

if TYPE_CHECKING:
    from fjernhjelp.config import Settings

# The end user is nobody the service knows: their events name them so, with no account.
END_USER = Actor.named("end-user")


class State:
    """What the console shows for a Support session."""

    WAITING = "waiting"  # the code works; nobody has entered it
    JOINED = "joined"  # the end user entered it; the client and the tunnel come next
    RUNNING = "running"  # the tunnel is asked for or open
    EXPIRED = "expired"  # nobody joined in time
    CANCELLED = "cancelled"  # the technician cancelled it
    ENDED = "ended"


# ---- refusals ---------------------------------------------------------------------------


class SupportRefused(Refusal):
    """``create`` refused by portal.support.decide_support: the reason is the DenyReason."""

    status = 403
    sentence_prefix = "access.reason."


class NotCancellable(Conflict):
    def __init__(self) -> None:
        super().__init__("support.not_cancellable")


class CodeInvalid(Refusal):
    """A wrong code. ``reason`` (audited) says what was wrong; the answer never does."""

    status = 404
    ANSWER: ClassVar[str] = "support.code_invalid"

    @property
    def answer_reason(self) -> str:
        return self.ANSWER

    @property
    def sentence_key(self) -> str:
        return self.ANSWER


class CodeThrottled(Refusal):
    status = 429

    def __init__(self, until: datetime, now: datetime) -> None:
        super().__init__("throttled")
        self.retry_after = max(1, int((until - now).total_seconds() + 0.999))
        self.params = {"minutes": max(1, (self.retry_after + 59) // 60)}

    @property
    def answer_reason(self) -> str:
        return "support.code_throttled"

    @property
    def sentence_key(self) -> str:
        return "support.code_throttled"


# ---- configuration and the code itself ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SupportConfig:
    code_key: bytes
    digits: int
    lifetime: timedelta
    address_rule: ThrottleRule
    overall_rule: ThrottleRule
    public_url: str

    def link(self, code: str) -> str:
        return f"{self.public_url}/s/{code}"


def support_config(settings: Settings, at_rest_key: bytes) -> SupportConfig:
    return SupportConfig(
        code_key=code_key(at_rest_key),
        digits=max(MIN_DIGITS, settings.support_code_digits),
        lifetime=timedelta(minutes=settings.support_code_minutes),
        address_rule=ThrottleRule(
            settings.support_code_address_failures,
            settings.lockout_base_seconds,
            settings.lockout_max_seconds,
        ),
        overall_rule=ThrottleRule(
            settings.support_code_overall_failures_per_hour,
            settings.lockout_base_seconds,
            settings.lockout_max_seconds,
        ),
        public_url=settings.effective_public_url,
    )


def _cancelled(row: RemoteSession) -> bool:
    """Ended before its tunnel was asked for: by the technician, or cut by a revocation
    (the agreement, an account or an organisation ended; ``cut:<kind>``)."""
    reason = row.end_reason or ""
    return reason == "cancelled" or (reason.startswith("cut:") and row.tunnel_requested_at is None)


def state_of(row: RemoteSession, now: datetime) -> str:
    status = row.status
    if status == SessionStatus.WAITING:
        expired = row.code_expires_at is not None and now >= row.code_expires_at
        return State.EXPIRED if expired else State.WAITING
    if status == SessionStatus.JOINED:
        return State.JOINED
    if status in (SessionStatus.REQUESTED, SessionStatus.ACTIVE):
        return State.RUNNING
    if _cancelled(row):
        return State.CANCELLED
    if row.end_reason in ("code_expired", "joined_expired"):
        return State.EXPIRED
    return State.ENDED


# ---- the technician ----------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedSupport:
    session: RemoteSession
    code: str  # shown to the technician once, never stored
    link: str
    expires_at: datetime

    @property
    def code_grouped(self) -> str:
        return grouped(self.code)


def _fresh_code(db: Session, cfg: SupportConfig, now: datetime) -> tuple[str, bytes]:
    """A code no other live Support session holds. A clash is one in 10^9 per waiting
    code; asking again a few times makes a second one unthinkable."""
    for _ in range(8):
        code = new_code(cfg.digits)
        digest = code_digest(cfg.code_key, code)
        clash = db.execute(
            select(RemoteSession.id).where(
                RemoteSession.code_digest == digest,
                RemoteSession.status == SessionStatus.WAITING,
                RemoteSession.code_expires_at > now,
            )
        ).first()
        if clash is None:
            return code, digest
    raise RuntimeError("no free Support code: is the random source broken?")


def create(
    db: Session, caller: Caller, cfg: SupportConfig, customer_org_id: uuid.UUID
) -> CreatedSupport:
    """The technician (``caller``) asks for a Support session for ``customer_org_id``:
    decided by portal.support.decide_support, audited either way (a refusal as
    ``support.requested`` denied, marked recorded; success as ``support.code_created``)."""
    technician, now = caller.user, caller.now
    decision = decide_support(db, technician, customer_org_id, now)
    if not isinstance(decision, SupportAllowed):
        record(
            db,
            "support.requested",
            Outcome.DENIED,
            actor=caller.actor,
            reason=decision.reason.value,
            # Only once an agreement ties the two: a stranger's id names nobody.
            customer_org_id=decision.customer_org_id,
            source_address=caller.source_address,
            factor=caller.factor,
            details={"customer": str(customer_org_id)},
        )
        refusal = SupportRefused(decision.reason.value)
        refusal.recorded = True
        raise refusal
    code, digest = _fresh_code(db, cfg, now)
    expires_at = now + cfg.lifetime
    if decision.valid_until is not None:
        expires_at = min(expires_at, decision.valid_until)
    session = RemoteSession(
        kind=SessionKind.SUPPORT,
        machine_id=None,
        technician=technician,
        vendor_org_id=decision.vendor_org_id,
        customer_org_id=decision.customer_org_id,
        group_id=None,
        grant_id=None,
        agreement_id=decision.agreement_id,
        # Decided when the end user consents (the shell only if they tick it).
        permissions="",
        consent_required=True,
        status=SessionStatus.WAITING,
        requested_at=now,
        code_digest=digest,
        code_expires_at=expires_at,
    )
    db.add(session)
    db.flush()
    record(
        db,
        "support.code_created",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=decision.customer_org_id,
        source_address=caller.source_address,
        factor=caller.factor,
        details={
            "session": str(session.id),
            "agreement": str(decision.agreement_id),
            "agreement_reference": decision.agreement_reference,
            "expires_at": expires_at.isoformat(),
        },
    )
    return CreatedSupport(session, code, cfg.link(code), expires_at)


def own(db: Session, caller: Caller, support_id: uuid.UUID) -> RemoteSession:
    """The caller's own Support session; NotFound for any other (another technician's,
    another vendor's, an Access session, an id that does not exist: the same answer)."""
    row = db.get(RemoteSession, support_id)
    if row is None or not row.is_support or row.technician_id != caller.user.id:
        raise NotFound("support_session", support_id)
    return row


def list_own(db: Session, caller: Caller, *, live_only: bool = False) -> list[RemoteSession]:
    """The caller's Support sessions, newest first: those that wait or run, or (not
    ``live_only``) also the last ones that ended."""
    query = select(RemoteSession).where(
        RemoteSession.kind == SessionKind.SUPPORT,
        RemoteSession.technician_id == caller.user.id,
    )
    if live_only:
        query = query.where(RemoteSession.status != SessionStatus.ENDED)
    rows = db.execute(query.order_by(RemoteSession.requested_at.desc()).limit(50)).scalars()
    if not live_only:
        return list(rows)
    # A code past its time that the sweep has not reached yet is not live either.
    return [r for r in rows if state_of(r, caller.now) != State.EXPIRED]


def customer_name(db: Session, row: RemoteSession) -> str:
    customer = db.get(Organisation, row.customer_org_id)
    return customer.name if customer is not None else ""


@dataclass(frozen=True)
class Summary:
    """One Support session as the console and the API list it (never the code)."""

    id: uuid.UUID
    customer_org_id: uuid.UUID
    customer: str
    state: str
    requested_at: datetime
    expires_at: datetime | None
    joined_at: datetime | None
    # The end user's client has logged in with its key: the technician may ask for the
    # tunnel now (asking before is refused and audited, so the console waits for this).
    client_ready: bool
    # "client" or "browser" once it has logged in (the console opens the screen share's
    # video stream instead of the desktop for "browser"), else None.
    client_way: str | None


def summaries(db: Session, rows: list[RemoteSession], now: datetime) -> list[Summary]:
    names = {
        o.id: o.name
        for o in db.execute(
            select(Organisation).where(Organisation.id.in_({r.customer_org_id for r in rows}))
        ).scalars()
    }
    return [
        Summary(
            id=r.id,
            customer_org_id=r.customer_org_id,
            customer=names.get(r.customer_org_id, ""),
            state=state_of(r, now),
            requested_at=r.requested_at,
            expires_at=r.code_expires_at,
            joined_at=r.code_used_at,
            client_ready=r.client_public_key is not None,
            client_way=r.client_way if r.client_public_key is not None else None,
        )
        for r in rows
    ]


@audits_refusals("support.cancelled")
def cancel(db: Session, caller: Caller, support_id: uuid.UUID) -> RemoteSession:
    """The technician cancels their own Support session before the tunnel opens."""
    row = own(db, caller, support_id)
    if state_of(row, caller.now) not in (State.WAITING, State.JOINED):
        raise NotCancellable()
    before = state_of(row, caller.now)
    row.status = SessionStatus.ENDED
    row.ended_at = caller.now
    row.end_reason = "cancelled"
    db.flush()
    record(
        db,
        "support.cancelled",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=row.customer_org_id,
        source_address=caller.source_address,
        factor=caller.factor,
        details={"session": str(row.id), "was": before},
    )
    return row


# ---- the end user ------------------------------------------------------------------------


@dataclass(frozen=True)
class Joined:
    session_id: uuid.UUID
    technician: str
    vendor: str
    customer: str
    # For the end user's one-time client (stored as SHA-256 only): shown once.
    client_token: str


def _lockout(db: Session, keys: list[str], now: datetime) -> tuple[datetime, str] | None:
    rows = [(throttle.locked_until(db, [key], now), key) for key in keys]
    running = [(until, key) for until, key in rows if until is not None]
    return max(running) if running else None


def _failed(
    db: Session,
    cfg: SupportConfig,
    reason: str,
    row: RemoteSession | None,
    source_address: str | None,
    now: datetime,
) -> CodeInvalid:
    """Count one wrong attempt, audit it (and any lockout it started); the refusal to raise."""
    counted = (
        ("address", throttle.support_code_address_key(source_address), cfg.address_rule),
        ("overall", throttle.support_code_overall_keys(now)[0], cfg.overall_rule),
    )
    for subject, key, rule in counted:
        until = throttle.record_failure(db, key, rule, now)
        if until is not None:
            record(
                db,
                "support.code_lockout",
                Outcome.INFO,
                actor=END_USER,
                reason=f"{subject}_failures",
                source_address=source_address,
                details={"subject": subject, "until": until.isoformat()},
            )
    details = {"session": str(row.id)} if row is not None else None
    record(
        db,
        "support.code_attempt",
        Outcome.FAILURE,
        actor=END_USER,
        reason=reason,
        # A real code's customer and vendor read who tried it; an unknown one belongs
        # to nobody.
        customer_org_id=row.customer_org_id if row is not None else None,
        vendor_org_id=row.vendor_org_id if row is not None else None,
        source_address=source_address,
        details=details,
    )
    refusal = CodeInvalid(reason)
    refusal.recorded = True
    return refusal


def _find(db: Session, cfg: SupportConfig, code: str) -> RemoteSession | None:
    # A waiting row first: an old, spent code may share a digest with a live one.
    rows = db.execute(
        select(RemoteSession)
        .where(
            RemoteSession.code_digest == code_digest(cfg.code_key, code),
            RemoteSession.kind == SessionKind.SUPPORT,
        )
        .order_by(RemoteSession.requested_at.desc())
    ).scalars()
    found = list(rows)
    waiting = [r for r in found if r.status == SessionStatus.WAITING]
    chosen = waiting or found
    return chosen[0] if chosen else None


def _wrong_with(row: RemoteSession, db: Session, now: datetime) -> str | None:
    """What makes a found code unusable now, or None if it may be spent."""
    if row.code_used_at is not None:
        return "used"
    if row.status == SessionStatus.ENDED and _cancelled(row):
        return "cancelled"
    if row.status != SessionStatus.WAITING or (
        row.code_expires_at is not None and now >= row.code_expires_at
    ):
        return "expired"
    # The agreement, the technician's account or an organisation may have changed since
    # the code was made: it is only as good as the decision now.
    if not isinstance(decide_support(db, row.technician, row.customer_org_id, now), SupportAllowed):
        return "no_longer_allowed"
    return None


def join(
    db: Session, cfg: SupportConfig, code: str, source_address: str | None, now: datetime
) -> Joined:
    """The end user enters ``code``: what their page shows (who wants to help), or
    CodeInvalid / CodeThrottled, each audited with the source address and marked
    recorded (its events and the throttle counters are all the request keeps)."""
    address_key = throttle.support_code_address_key(source_address)
    throttle.forget_stale(db, address_key, now)
    lock = _lockout(db, [address_key, *throttle.support_code_overall_keys(now)], now)
    if lock is not None:
        until, key = lock
        record(
            db,
            "support.code_attempt",
            Outcome.DENIED,
            actor=END_USER,
            reason="throttled",
            source_address=source_address,
            details={"subject": "address" if key == address_key else "overall"},
        )
        refusal = CodeThrottled(until, now)
        refusal.recorded = True
        raise refusal
    digits = normalise(code)
    if digits is None:
        raise _failed(db, cfg, "malformed", None, source_address, now)
    row = _find(db, cfg, digits)
    if row is None:
        raise _failed(db, cfg, "unknown", None, source_address, now)
    wrong = _wrong_with(row, db, now)
    if wrong is not None:
        raise _failed(db, cfg, wrong, row, source_address, now)
    client_token = new_token()
    spent = db.execute(
        update(RemoteSession)
        .where(
            RemoteSession.id == row.id,
            RemoteSession.code_used_at.is_(None),
            RemoteSession.status == SessionStatus.WAITING,
        )
        .values(
            code_used_at=now,
            status=SessionStatus.JOINED,
            joined_from=(source_address or "")[:64] or None,
            end_user_token_hash=token_hash(client_token),
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(spent, CursorResult)
    db.refresh(row)
    if spent.rowcount != 1:
        # Another join spent it between our read and our write.
        raise _failed(db, cfg, "used", row, source_address, now)
    record(
        db,
        "support.code_attempt",
        Outcome.SUCCESS,
        actor=END_USER,
        customer_org_id=row.customer_org_id,
        vendor_org_id=row.vendor_org_id,
        source_address=source_address,
        details={"session": str(row.id), "technician": row.technician.username},
    )
    vendor = db.get(Organisation, row.vendor_org_id)
    customer = db.get(Organisation, row.customer_org_id)
    return Joined(
        session_id=row.id,
        technician=row.technician.display_name,
        vendor=vendor.name if vendor else "",
        customer=customer.name if customer else "",
        client_token=client_token,
    )


# ---- expiry ------------------------------------------------------------------------------


def expire_codes(db: Session, now: datetime) -> int:
    """The sweep: Support sessions whose code nobody entered in time end, once each, with
    an audit event the vendor's and the customer's logs show. Rows are claimed with SKIP
    LOCKED (several nodes may sweep); ``join`` checks the time itself in between."""
    due = list(
        db.execute(
            select(RemoteSession)
            .where(
                RemoteSession.kind == SessionKind.SUPPORT,
                RemoteSession.status == SessionStatus.WAITING,
                RemoteSession.code_expires_at <= now,
            )
            .with_for_update(skip_locked=True, of=RemoteSession)
        )
        .unique()
        .scalars()
    )
    for row in due:
        row.status = SessionStatus.ENDED
        row.ended_at = now
        row.end_reason = "code_expired"
        db.flush()
        record(
            db,
            "support.code_expired",
            Outcome.INFO,
            actor=Caller.system(now).actor,
            customer_org_id=row.customer_org_id,
            vendor_org_id=row.vendor_org_id,
            details={"session": str(row.id), "technician": row.technician.username},
        )
    return len(due)
