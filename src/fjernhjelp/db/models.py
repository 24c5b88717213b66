"""Imports every model module, so Base.metadata knows all tables (for Alembic)."""

from fjernhjelp.audit import checkpoint_models as audit_checkpoint_models
from fjernhjelp.audit import models as audit_models
from fjernhjelp.auth import models as auth_models
from fjernhjelp.db.base import Base
from fjernhjelp.machines import models as machine_models
from fjernhjelp.portal import models as portal_models
from fjernhjelp.portal.models import agreement as portal_agreement_models
from fjernhjelp.portal.models import grant as portal_grant_models
from fjernhjelp.portal.models import group as portal_group_models
from fjernhjelp.portal.models import notification as portal_notification_models
from fjernhjelp.portal.models import terms as portal_terms_models
from fjernhjelp.remote import models as remote_models

__all__ = [
    "Base",
    "audit_checkpoint_models",
    "audit_models",
    "auth_models",
    "machine_models",
    "portal_agreement_models",
    "portal_grant_models",
    "portal_group_models",
    "portal_models",
    "portal_notification_models",
    "portal_terms_models",
    "remote_models",
]
