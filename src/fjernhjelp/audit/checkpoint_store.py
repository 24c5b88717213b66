"""Making, keeping and handing out signed checkpoints, and checking the chain against them.

Made by the server's housekeeping timer, by ``fjernhjelp audit checkpoint`` and whenever
an administrator downloads them. What an organisation may see: a checkpoint holds the
count of events in the whole chain, the head hash and a time. The head hash is a SHA-256
over every event; it tells nothing about other organisations' events beyond how many
there are, so every organisation receives the same global checkpoints (and needs them:
only the whole chain's head can be signed once for everyone).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.checkpoint import Checkpoint, file_bytes, sign
from fjernhjelp.audit.checkpoint_models import AuditCheckpoint
from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.audit.models import AuditEvent, AuditHead
from fjernhjelp.control.package import b64d, b64e, fingerprint
from fjernhjelp.portal.errors import NotAllowed

if TYPE_CHECKING:
    from fjernhjelp.auth.models import User

_log = logging.getLogger(__name__)


class HeadDoesNotMatchChain(Exception):
    """The head row names a hash its event does not have: never sign that."""


def _as_checkpoint(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(row.seq, row.head_hash, row.signed_at, b64d(row.signature))


def make_checkpoint(db: Session, key: Ed25519PrivateKey, now: datetime) -> Checkpoint | None:
    """Sign the current head (None for an empty log); the caller commits.

    A head already signed is returned as it is, so a timer on several nodes and a
    download at the same moment add one checkpoint, not several."""
    head = db.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    if head.seq == 0:
        return None
    existing = db.get(AuditCheckpoint, head.seq)
    if existing is not None:
        return _as_checkpoint(existing)
    newest = db.get(AuditEvent, head.seq)
    if newest is None or newest.hash != head.hash:
        # A cheap guard, not a verification: signing a head that disagrees with its own
        # event would vouch for a state that was already tampered with.
        raise HeadDoesNotMatchChain(f"the audit head (event {head.seq}) disagrees with the log")
    checkpoint = sign(key, head.seq, head.hash, now)
    db.add(
        AuditCheckpoint(
            seq=checkpoint.seq,
            head_hash=checkpoint.head,
            signed_at=checkpoint.signed_at,
            key_fingerprint=fingerprint(key.public_key()),
            signature=b64e(checkpoint.signature),
        )
    )
    db.flush()
    if db.info.get("audit_forwarding"):
        db.info.setdefault("checkpoints_pending", []).append(checkpoint)
    return checkpoint


def all_checkpoints(db: Session) -> list[Checkpoint]:
    rows = db.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).scalars()
    return [_as_checkpoint(row) for row in rows]


def checkpoint_file(db: Session, key: Ed25519PrivateKey) -> bytes:
    return file_bytes(all_checkpoints(db), key.public_key())


# --- checking the chain ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckpointCheck:
    checked: int  # checkpoints that still match
    first_bad_seq: int | None = None
    last_good_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_chain(db: Session, checkpoints: list[Checkpoint]) -> CheckpointCheck:
    """Does the stored event at each checkpoint's seq still carry the signed hash?

    Checkpoints are taken in order. The first one that no longer matches names the
    first event known to differ from what the server signed; the change itself lies
    after the last checkpoint that still matches (the chain cannot say more: a rewriter
    re-hashes everything after the event it changed)."""
    last_good: Checkpoint | None = None
    for count, checkpoint in enumerate(sorted(checkpoints, key=lambda c: c.seq)):
        stored = db.execute(
            select(AuditEvent.hash).where(AuditEvent.seq == checkpoint.seq)
        ).scalar_one_or_none()
        if stored == checkpoint.head:
            last_good = checkpoint
            continue
        when = checkpoint.signed_at.isoformat().replace("+00:00", "Z")
        what = "is missing" if stored is None else "no longer matches"
        since = (
            f"; events up to {last_good.seq} still match the checkpoint of "
            f"{last_good.signed_at.isoformat().replace('+00:00', 'Z')}, so the change is in "
            f"events {last_good.seq + 1} to {checkpoint.seq}"
            if last_good is not None
            else f"; the change is in events 1 to {checkpoint.seq}"
        )
        return CheckpointCheck(
            count,
            checkpoint.seq,
            last_good.seq if last_good else None,
            f"event {checkpoint.seq} {what} the checkpoint signed at {when}"
            f" (the history was rewritten{since})",
        )
    return CheckpointCheck(len(checkpoints), last_good_seq=last_good.seq if last_good else None)


# --- handing them out ------------------------------------------------------------------


def download(
    db: Session,
    user: User,
    key: Ed25519PrivateKey,
    now: datetime,
    source_address: str | None = None,
) -> bytes:
    """The checkpoint file for an administrator (operator or organisation admin),
    including a checkpoint of the head as it is now, which covers this download too.
    Commits; a refusal is audited and raised as NotAllowed."""
    actor = Actor.of(user)
    if not (user.is_operator or user.is_admin):
        record(
            db,
            "audit.checkpoints_downloaded",
            Outcome.DENIED,
            actor=actor,
            reason="not_admin",
            customer_org_id=user.organisation_id,
            source_address=source_address,
        )
        db.commit()
        raise NotAllowed("admin")
    record(
        db,
        "audit.checkpoints_downloaded",
        Outcome.SUCCESS,
        actor=actor,
        customer_org_id=None if user.is_operator else user.organisation_id,
        source_address=source_address,
    )
    make_checkpoint(db, key, now)
    data = checkpoint_file(db, key)
    db.commit()
    return data
