"""'Terminal as administrator' is a permission of its own: the grant names it, the decision
adds 'terminal' to it, and no ticket carries it unless the grant does."""

from __future__ import annotations

import os

import pytest

from fjernhjelp.caller import Caller
from fjernhjelp.i18n import Translator
from fjernhjelp.portal import grants
from fjernhjelp.portal.access import AccessAllowed, decide
from fjernhjelp.portal.models import Grant, Permission
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.tunnel import tickets
from tests.portal.access_world import Site, build_site
from tests.portal.web import browser, form_post


@pytest.fixture
def site(db, state) -> Site:
    return build_site(db, state)


def _set(site: Site, permissions: set[Permission]) -> None:
    w = site.world
    grants.update(
        w.db,
        w.caller(w.gp_admin),
        w.grant.id,
        grants.GrantTerms(permissions=frozenset(permissions)),
    )
    w.db.commit()


def _ticket(site: Site) -> tickets.Ticket:
    w = site.world
    machine = site.machine()
    issued = remote_sessions.request(
        w.db,
        Caller.of_person(w.tech.user, w.state.now()),
        machine_id=machine.id,
        technician_key=os.urandom(32),
        signing_key=w.state.keys.signing,
        node_id="node-test",
    )
    w.db.commit()
    return tickets.verify_ticket(
        w.state.keys.signing.public_key(),
        issued.ticket,
        w.state.now().timestamp(),
        str(machine.id),
    )


def test_terminal_admin_brings_terminal_with_it(site: Site) -> None:
    _set(site, {Permission.VIEW, Permission.TERMINAL_ADMIN})
    w = site.world
    w.db.expire_all()
    decision = decide(w.db, w.tech.user, w.group.id, w.state.now())
    assert isinstance(decision, AccessAllowed)
    assert decision.permissions == {Permission.VIEW, Permission.TERMINAL, Permission.TERMINAL_ADMIN}
    assert site.world.grant.permissions == {Permission.VIEW, Permission.TERMINAL_ADMIN}  # as ticked


def test_a_ticket_never_carries_terminal_admin_the_grant_lacks(site: Site) -> None:
    _set(site, {Permission.VIEW, Permission.TERMINAL})
    ticket = _ticket(site)
    assert ticket.allows(tickets.Permission.TERMINAL)
    assert not ticket.allows(tickets.Permission.TERMINAL_ADMIN)

    _set(site, {Permission.VIEW, Permission.TERMINAL, Permission.TERMINAL_ADMIN})
    assert _ticket(site).allows(tickets.Permission.TERMINAL_ADMIN)


def test_the_two_permission_lists_agree() -> None:
    # The portal's and the ticket's enums are separate (the tunnel imports no portal
    # code); a name in one and not the other would be dropped or refused on the way.
    assert {p.value for p in Permission} == {p.value for p in tickets.Permission}


def test_the_customer_admin_ticks_terminal_as_administrator_in_the_grant_form(
    client, site: Site
) -> None:
    w = site.world
    path = f"/portal/grants/{w.grant.id}"
    with browser(client, w.gp_admin) as page:
        form = page.get(path).text
        assert 'value="terminal_admin"' in form and "Terminal som administrator (root)" in form
        r = form_post(
            page,
            path,
            {"permissions": ["view", "terminal_admin"], "consent": "required"},
            page=path,
        )
        assert r.status_code == 303, r.text
        assert "Terminal som administrator (root)" in page.get("/portal/grants").text
    w.db.expire_all()
    assert w.db.get(Grant, w.grant.id).permissions == {  # type: ignore[union-attr]
        Permission.VIEW,
        Permission.TERMINAL_ADMIN,
    }
    assert Translator("en")("permission.terminal_admin") == "Terminal as administrator (root)"
