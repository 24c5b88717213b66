"""UPDATE and DELETE through the ORM session, when the caller needs the row count."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Delete, Update
from sqlalchemy.orm import Session


def rows_matched(db: Session, stmt: Update | Delete) -> int:
    """Run ``stmt`` (without RETURNING) and say how many rows its WHERE matched."""
    # Session.execute is typed to give a plain Result; for an UPDATE or DELETE it gives a
    # CursorResult, which has the rowcount. SQLAlchemy's own advice is this cast.
    result = cast("CursorResult[Any]", db.execute(stmt))
    return result.rowcount
