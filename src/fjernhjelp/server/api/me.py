"""Who the caller is."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel

from fjernhjelp.server.api.deps import ApiSession

router = APIRouter(tags=["me"])


class Organisation(BaseModel):
    id: uuid.UUID
    orgnr: str
    name: str
    kind: str


class Me(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    email: str
    roles: list[str]
    organisation: Organisation
    factor_used: str | None


@router.get("/me", response_model=Me)
def me(session: ApiSession) -> Me:
    user = session.user
    org = user.organisation
    return Me(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        roles=user.roles,
        factor_used=session.factor_kind,
        organisation=Organisation(id=org.id, orgnr=org.orgnr, name=org.name, kind=org.kind),
    )
