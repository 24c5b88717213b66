"""Notices for an organisation's admins, shown on the portal's front page, and notices
for one person, shown to them right after they log in."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.auth.models import User
from fjernhjelp.caller import Caller
from fjernhjelp.portal.errors import NotFound
from fjernhjelp.portal.models import Notification
from fjernhjelp.portal.trail import audits_refusals, changed

SHOWN = 50


def notify(db: Session, organisation_id: uuid.UUID, kind: str, **params: object) -> Notification:
    """``kind`` names a message ``notification.<kind>``; ``params`` fill its fields."""
    note = Notification(
        organisation_id=organisation_id,
        kind=kind,
        params=json.dumps({k: str(v) for k, v in params.items()}, ensure_ascii=False),
    )
    db.add(note)
    db.flush()
    return note


def notify_person(db: Session, user: User, kind: str, **params: object) -> Notification:
    """A notice for ``user`` alone (their organisation's admins do not see it)."""
    note = notify(db, user.organisation_id, kind, **params)
    note.user_id = user.id
    db.flush()
    return note


def open_for_person(db: Session, user: User) -> list[Notification]:
    return list(
        db.execute(
            select(Notification)
            .where(Notification.user_id == user.id, Notification.dismissed_at.is_(None))
            .order_by(Notification.created_at.desc())
            .limit(SHOWN)
        ).scalars()
    )


@audits_refusals("notification.dismissed")
def dismiss_own(db: Session, caller: Caller, notification_id: uuid.UUID) -> Notification:
    """The person has read a notice addressed to them."""
    note = db.get(Notification, notification_id)
    if note is None or note.user_id != caller.user.id:
        raise NotFound("notification", notification_id)
    return _dismiss(db, caller, note)


def params_of(note: Notification) -> dict[str, str]:
    return json.loads(note.params)


def open_for(db: Session, caller: Caller) -> list[Notification]:
    caller.require_admin()
    return list(
        db.execute(
            select(Notification)
            .where(
                Notification.organisation_id == caller.user.organisation_id,
                Notification.user_id.is_(None),
                Notification.dismissed_at.is_(None),
            )
            .order_by(Notification.created_at.desc())
            .limit(SHOWN)
        ).scalars()
    )


def describe(note: Notification) -> dict[str, Any]:
    return {
        "id": str(note.id),
        "kind": note.kind,
        "dismissed_at": note.dismissed_at.isoformat() if note.dismissed_at else None,
    }


@audits_refusals("notification.dismissed")
def dismiss(db: Session, caller: Caller, notification_id: uuid.UUID) -> Notification:
    caller.require_admin()
    note = db.get(Notification, notification_id)
    if (
        note is None
        or note.organisation_id != caller.user.organisation_id
        or note.user_id is not None  # one person's notice is theirs to dismiss
    ):
        raise NotFound("notification", notification_id)
    return _dismiss(db, caller, note)


def _dismiss(db: Session, caller: Caller, note: Notification) -> Notification:
    if note.dismissed_at is not None:
        return note
    before = describe(note)
    note.dismissed_at = caller.now
    note.dismissed_by_id = caller.user.id
    changed(
        db,
        caller,
        "notification.dismissed",
        org_id=note.organisation_id,
        before=before,
        after=describe(note),
    )
    return note
