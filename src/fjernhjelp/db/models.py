"""Imports every model module, so Base.metadata knows all tables (for Alembic)."""

from fjernhjelp.audit import models as audit_models
from fjernhjelp.auth import models as auth_models
from fjernhjelp.db.base import Base
from fjernhjelp.portal import models as portal_models

__all__ = ["Base", "audit_models", "auth_models", "portal_models"]
