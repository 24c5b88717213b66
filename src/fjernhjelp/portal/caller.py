"""Who is acting, when, and from where: what every portal service needs to authorise
and to audit a change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fjernhjelp.audit.log import Actor
from fjernhjelp.auth.models import User
from fjernhjelp.portal.errors import NotAllowed
from fjernhjelp.portal.models import Organisation


@dataclass(frozen=True, slots=True)
class Caller:
    user: User
    now: datetime
    source_address: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor.of(self.user)

    @property
    def org(self) -> Organisation:
        return self.user.organisation

    def require_operator(self) -> None:
        if not self.user.is_operator:
            raise NotAllowed("operator")

    def require_admin(self) -> None:
        if not (self.user.is_admin or self.user.is_operator):
            raise NotAllowed("admin")

    def require_receiving_admin(self) -> None:
        """An admin of an organisation that receives help (groups, agreements, grants)."""
        self.require_admin()
        if not self.org.receives_help:
            raise NotAllowed("receiving_admin")

    def require_giving_admin(self) -> None:
        """An admin of an organisation that gives help (technicians, grants received)."""
        self.require_admin()
        if not self.org.gives_help:
            raise NotAllowed("giving_admin")
