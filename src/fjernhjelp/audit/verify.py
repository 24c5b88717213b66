"""Walking the chain to find the first event that was edited, deleted or reordered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.chain import GENESIS, event_hash, fields_of
from fjernhjelp.audit.models import AuditEvent, AuditHead


@dataclass(frozen=True, slots=True)
class VerifyResult:
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def count_events(db: Session) -> int:
    return db.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def verify_chain(
    db: Session, progress: Callable[[int], None] | None = None, batch: int = 5000
) -> VerifyResult:
    expected_seq = 1
    prev_hash = GENESIS
    checked = 0
    last_seq = 0
    while True:
        read_this_pass = 0
        # Keyset pagination keeps memory flat on millions of events.
        while True:
            rows = (
                db.execute(
                    select(AuditEvent)
                    .where(AuditEvent.seq > last_seq)
                    .order_by(AuditEvent.seq)
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if not rows:
                break
            for event in rows:
                if event.seq != expected_seq:
                    return VerifyResult(
                        checked,
                        expected_seq,
                        f"event {expected_seq} is missing (next is {event.seq})",
                    )
                if event.prev_hash != prev_hash:
                    return VerifyResult(
                        checked, event.seq, f"event {event.seq} does not follow its predecessor"
                    )
                if event_hash(event.prev_hash, fields_of(event)) != event.hash:
                    return VerifyResult(
                        checked, event.seq, f"event {event.seq} was changed after it was written"
                    )
                prev_hash = event.hash
                expected_seq += 1
                checked += 1
                last_seq = event.seq
            read_this_pass += len(rows)
            if progress:
                progress(len(rows))
            db.expunge_all()
        head = db.execute(
            select(AuditHead).where(AuditHead.id == 1).execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if head is None:
            return VerifyResult(checked, None, "the chain head is missing")
        # A running server appends while this reads (PostgreSQL reads each statement at
        # its own moment): a head ahead of what was read may only mean new events. Read
        # on from where this stopped; a head still ahead when nothing new was there is a
        # log cut at its end. A head behind what was read is never a race.
        if head.seq > checked and read_this_pass:
            continue
        break
    if head.seq != checked or head.hash != prev_hash:
        return VerifyResult(
            checked,
            checked + 1 if head.seq > checked else head.seq,
            f"the log ends at event {checked} but its head records event {head.seq}"
            " (events were removed from the end, or the head was altered)",
        )
    return VerifyResult(checked)
