"""Notices for your organisation's admins."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from fjernhjelp.portal import notifications
from fjernhjelp.server.api.refusals import REFUSALS
from fjernhjelp.server.api.schemas import NotificationOut
from fjernhjelp.server.deps import DB
from fjernhjelp.server.portal_caller import ApiCaller

router = APIRouter(
    prefix="/notifications",
    tags=["notifications"],
    responses=REFUSALS,
)


@router.get("", response_model=list[NotificationOut])
def open_notifications(db: DB, caller: ApiCaller) -> list[NotificationOut]:
    return [
        NotificationOut.of(n, notifications.params_of(n))
        for n in notifications.open_for(db, caller)
    ]


@router.post("/{notification_id}/dismiss", status_code=204)
def dismiss(notification_id: uuid.UUID, db: DB, caller: ApiCaller) -> None:
    notifications.dismiss(db, caller, notification_id)
    db.commit()
