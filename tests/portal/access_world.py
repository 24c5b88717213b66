"""The portal world plus what the Access pages show: a dentist next door (another
customer), a rival vendor with its own grant on the GP office's group, a vendor with no
grant at all, enrolled machines and finished sessions, built through the services."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fjernhjelp.caller import Caller
from fjernhjelp.machines.models import Machine
from fjernhjelp.machines.registry import agent_caller
from fjernhjelp.portal import grants, groups, terms
from fjernhjelp.portal.grants import GrantTerms
from fjernhjelp.portal.models import MachineGroup, OrgKind
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote.models import RemoteSession
from tests.helpers import Account, make_org, make_user
from tests.portal.world import World, build_world


@dataclass
class Site:
    world: World
    dentist_admin: Account
    dentist_group: MachineGroup
    rival_tech: Account  # a vendor with its own grant on the GP office's group
    stranger_tech: Account  # a vendor with no grant anywhere

    def allow_packages(self, allowed: bool = True) -> None:
        """The customer's admin ticks "may make installer packages" on the vendor's grant."""
        self.change_grant(may_make_packages=allowed)

    def change_grant(self, **terms: Any) -> None:
        """The customer's admin changes the vendor's grant: ``terms`` replace what it has
        (permissions, consent and the package right are kept unless named)."""
        w = self.world
        grant = w.grant
        assert grant is not None
        kept = {
            "permissions": grant.permissions,
            "consent_required": grant.consent_required,
            "may_make_packages": grant.may_make_packages,
        }
        grants.update(w.db, w.caller(w.gp_admin), grant.id, GrantTerms(**{**kept, **terms}))
        w.db.commit()

    def machine(self, hostname: str = "lege-pc-01", group: MachineGroup | None = None) -> Machine:
        w = self.world
        group = group or w.group
        machine = Machine(
            organisation_id=group.organisation_id,
            group_id=group.id,
            identity_public_key=os.urandom(32),
            hostname=hostname,
            os="Debian GNU/Linux 13",
            agent_version="0.9.1",
            users="kari,ola",
            has_display=True,
            enrolled_at=w.state.now() - timedelta(days=2),
            last_seen_at=w.state.now() - timedelta(hours=3),
        )
        w.db.add(machine)
        w.db.commit()
        return machine

    def session(
        self,
        machine: Machine,
        technician: Account,
        *,
        consent: str | None = "consent.given",
        seconds: int = 65,
        ended_by_user: bool = False,
        relay_reason: str = "technician_closed",
    ) -> RemoteSession:
        """A session through the real path: ticket, relay pairing, the agent's reports,
        the end; the clock moves ``seconds`` between pairing and the end."""
        w = self.world
        issued = remote_sessions.request(
            w.db,
            Caller.of_person(technician.user, w.state.now()),
            machine_id=machine.id,
            technician_key=os.urandom(32),
            signing_key=w.state.keys.signing,
            node_id="node-test",
        )
        sid = issued.session.id
        remote_sessions.mark_active(w.db, sid, w.state.now())
        agent = agent_caller(machine, w.state.now(), None)
        if consent is not None:
            for action in ("consent.asked", consent):
                remote_sessions.record_agent_event(
                    w.db, agent, machine, session_id=sid, action=action, reason=None, details={}
                )
        w.state.clock.advance(seconds=seconds)  # type: ignore[attr-defined]
        if ended_by_user:
            remote_sessions.record_agent_event(
                w.db,
                agent_caller(machine, w.state.now(), None),
                machine,
                session_id=sid,
                action="session.ended_at_agent",
                reason="ended_by_user:button",
                details={"by": "local"},
            )
        remote_sessions.end(
            w.db,
            sid,
            now=w.state.now(),
            reason=relay_reason,
            bytes_from_technician=4096,
            bytes_from_agent=3 * 1024 * 1024,
        )
        w.db.commit()
        return w.db.get(RemoteSession, sid)  # type: ignore[return-value]


def build_site(db, state) -> Site:  # type: ignore[no-untyped-def]
    world = build_world(db, state)
    dentist = make_org(db, "Tannlegen Sentrum")
    dentist_admin = make_user(db, state, dentist, "tann-admin", admin=True, technician=False)
    dentist_group = groups.ensure_default(db, dentist, world.caller(world.operator).actor)
    rival = make_org(db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    rival_admin = make_user(db, state, rival, "rival-admin", admin=True, technician=False)
    rival_tech = make_user(db, state, rival, "rival-tech")
    stranger = make_org(db, "Fremmed AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    stranger_tech = make_user(db, state, stranger, "stranger-tech")
    db.commit()
    terms.accept(db, world.caller(dentist_admin), "receiving")
    terms.accept(db, world.caller(rival_admin), "giving")
    db.commit()
    agreement = world.record_agreement(vendor_org_id=rival.id, reference="Avtale rival")
    world.make_grant(agreement=agreement)
    return Site(world, dentist_admin, dentist_group, rival_tech, stranger_tech)
