"""Who the caller is, and the notices addressed to them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel

from fjernhjelp.i18n import Translator
from fjernhjelp.portal import notifications
from fjernhjelp.server.api.deps import ApiSession
from fjernhjelp.server.deps import DB
from fjernhjelp.server.portal_caller import ApiCaller

router = APIRouter(tags=["me"])


class Organisation(BaseModel):
    id: uuid.UUID
    orgnr: str
    name: str
    kind: str


class Notice(BaseModel):
    """A notice to this person (e.g. their account was re-enrolled), in English."""

    id: uuid.UUID
    kind: str
    text: str


class Me(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    email: str
    roles: list[str]
    organisation: Organisation
    factor_used: str | None
    notices: list[Notice]


@router.get("/me", response_model=Me)
def me(session: ApiSession, db: DB) -> Me:
    user = session.user
    org = user.organisation
    en = Translator("en")
    notices = [
        Notice(
            id=n.id, kind=n.kind, text=en(f"notification.{n.kind}", **notifications.params_of(n))
        )
        for n in notifications.open_for_person(db, user)
    ]
    return Me(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        roles=user.roles,
        factor_used=session.factor_kind,
        organisation=Organisation(id=org.id, orgnr=org.orgnr, name=org.name, kind=org.kind),
        notices=notices,
    )


@router.post("/me/notices/{notice_id}/dismiss", status_code=204)
def dismiss_notice(notice_id: uuid.UUID, db: DB, caller: ApiCaller) -> None:
    notifications.dismiss_own(db, caller, notice_id)
    db.commit()
