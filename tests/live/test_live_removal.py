"""Removing a machine, against real processes: the customer's admin removes a machine
whose agent is connected; its control link is cut at once, and the agent, which dials
back as any agent does after a lost link, is refused and audited every time."""

from __future__ import annotations

import pytest

from tests.live.live import LiveSite, web

pytestmark = pytest.mark.slow


def test_removing_a_machine_cuts_its_link_and_refuses_it_on_reconnect(site: LiveSite) -> None:
    world = site.world
    agent = site.agent("pc-stjalet")
    agent.start()
    site.login(world.tech)
    tech = site.api_token(world.tech)
    (machine,) = site.wait_online(tech, {"pc-stjalet"})
    admin = site.api_token(world.gp_admin)
    assert site.server is not None

    # A technician of the vendor tries first: refused as if there were no such machine.
    refused = web.delete(
        f"{site.server.url}/api/v1/machines/{machine['id']}",
        headers={"Authorization": f"Bearer {tech}"},
    )
    assert refused.status_code == 404
    site.wait_event("machine.removed", outcome="denied", actor_name="tekniker")
    assert site.wait_online(tech, {"pc-stjalet"})[0]["id"] == machine["id"]

    removed = web.delete(
        f"{site.server.url}/api/v1/machines/{machine['id']}",
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert removed.status_code == 204
    site.wait_event("machine.removed", outcome="success", actor_name="gp-admin")
    # The link is gone (the server records the disconnect when it closes it) and the
    # agent's own reconnection is refused with the reason, audited.
    site.wait_event("agent.disconnect", machine_id=machine["id"])
    denied = site.wait_event(
        "agent.connect", outcome="denied", reason="machine_revoked", timeout=60
    )
    assert denied.machine_id == machine["id"] and denied.actor_name == "agent@pc-stjalet"
    assert agent.proc is not None and agent.proc.poll() is None  # still trying, still refused
    assert site.machines(tech) == []
    assert site.machines(admin) == []
