"""Helpers for the Support tests: the config, a code made by the world's technician,
and the audit events a test looks at."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.remote import support
from fjernhjelp.remote.models import RemoteSession
from fjernhjelp.server.state import AppState
from tests.helpers import Account
from tests.portal.world import World


def config(state: AppState) -> support.SupportConfig:
    return support.support_config(state.settings, state.keys.at_rest)


def make_code(world: World, tech: Account | None = None, customer=None) -> support.CreatedSupport:  # type: ignore[no-untyped-def]
    created = support.create(
        world.db,
        world.caller(tech or world.tech),
        config(world.state),
        customer or world.gp.id,
    )
    world.db.commit()
    return created


def events(db: Session, action: str, **where: Any) -> list[AuditEvent]:
    db.rollback()
    query = select(AuditEvent).where(AuditEvent.action == action)
    for name, value in where.items():
        query = query.where(getattr(AuditEvent, name) == value)
    return list(db.execute(query.order_by(AuditEvent.seq)).scalars())


def details(event: AuditEvent) -> dict[str, Any]:
    return json.loads(event.details)


def row(db: Session, session_id) -> RemoteSession:  # type: ignore[no-untyped-def]
    db.rollback()
    found = db.get(RemoteSession, uuid.UUID(str(session_id)), populate_existing=True)
    assert found is not None
    return found
