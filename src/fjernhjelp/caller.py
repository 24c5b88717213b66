"""Who is acting, when, from where and with which factor: what every domain service needs
to authorise a change and to audit it.

Four kinds of caller reach the services. A *person* signed in to a page, the API or the
CLI; the *command line* on the server's own host (its operator: whoever may run
``fjernhjelp admin``); the *system* itself (timers, sweeps, start-up); and an *agent*
speaking for its enrolled machine. Services take one ``Caller`` whichever it is, so one
rule and one audit line serve the page, the API and the CLI alike.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from fjernhjelp.audit.log import Actor
from fjernhjelp.refusals import NotAllowed

if TYPE_CHECKING:
    from fjernhjelp.auth.models import User
    from fjernhjelp.portal.models import Organisation


class CallerKind(enum.StrEnum):
    PERSON = "person"
    COMMAND_LINE = "command_line"
    SYSTEM = "system"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class Caller:
    kind: CallerKind
    actor: Actor
    now: datetime
    source_address: str | None = None
    # How the person proved who they are at login ("totp", "yubikey"); None for the others.
    factor: str | None = None
    person: User | None = None
    machine_id: uuid.UUID | None = None

    @classmethod
    def of_person(
        cls,
        user: User,
        now: datetime,
        source_address: str | None = None,
        factor: str | None = None,
    ) -> Caller:
        return cls(CallerKind.PERSON, Actor.of(user), now, source_address, factor, person=user)

    @classmethod
    def command_line(cls, now: datetime) -> Caller:
        return cls(CallerKind.COMMAND_LINE, Actor.command_line(), now)

    @classmethod
    def system(cls, now: datetime) -> Caller:
        return cls(CallerKind.SYSTEM, Actor.system(), now)

    @classmethod
    def agent(
        cls, machine_id: uuid.UUID, name: str, org_id: uuid.UUID, now: datetime,
        source_address: str | None = None,
    ) -> Caller:  # fmt: skip
        """``name`` is the machine's host name; the audit log has always named an agent
        ``agent@<host name>`` (machines.registry.agent_caller), and still does."""
        return cls(
            CallerKind.AGENT,
            Actor(None, f"agent@{name}", org_id),
            now,
            source_address,
            machine_id=machine_id,
        )

    @property
    def is_person(self) -> bool:
        return self.kind is CallerKind.PERSON

    @property
    def user(self) -> User:
        """The signed-in person. Services that act for a person only ask for this; any
        other caller is refused, never treated as somebody."""
        if self.person is None:
            raise NotAllowed("person")
        return self.person

    @property
    def org(self) -> Organisation:
        return self.user.organisation

    @property
    def is_host_operator(self) -> bool:
        """The command line and the system act with the operator's authority: whoever
        runs them already holds the server's keys and database."""
        return self.kind in (CallerKind.COMMAND_LINE, CallerKind.SYSTEM)

    @property
    def is_operator(self) -> bool:
        """Acts with the operator's reach (every organisation): an operator account, or
        the host's command line and the system. Never asks an agent for ``user``."""
        if self.is_host_operator:
            return True
        return self.person is not None and self.person.is_operator

    def require_operator(self) -> None:
        if not self.is_operator:
            raise NotAllowed("operator")

    def require_admin(self) -> None:
        if self.is_host_operator:
            return
        if not (self.user.is_admin or self.user.is_operator):
            raise NotAllowed("admin")

    def require_receiving_admin(self) -> None:
        """An admin of an organisation that receives help (groups, agreements, grants)."""
        self.require_admin()
        if not self.is_host_operator and not self.org.receives_help:
            raise NotAllowed("receiving_admin")

    def require_giving_admin(self) -> None:
        """An admin of an organisation that gives help (technicians, grants received)."""
        self.require_admin()
        if not self.is_host_operator and not self.org.gives_help:
            raise NotAllowed("giving_admin")
