"""A shell through the tunnel, and a grant revoked while it runs."""

from __future__ import annotations

import os
import sys

import pexpect
import pytest

from tests.access.live import LiveSite, web

pytestmark = pytest.mark.slow


def _shell(site: LiveSite, machine: str, run_as: str = "service") -> pexpect.spawn:
    env = {**os.environ, "FJERNHJELP_CLI_HOME": str(site.cli_home), "TERM": "xterm"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "fjernhjelp", "connect", machine, "--shell", "--as", run_as],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(30, 100),
    )
    return child


def test_shell_then_revocation_cuts_the_running_session(site: LiveSite) -> None:
    world = site.world
    site.agent("pc-1").start()
    site.login(world.tech)
    token = site.api_token(world.tech)
    machine_id = site.wait_online(token, {"pc-1"})[0]["id"]

    child = _shell(site, "pc-1")
    child.sendline("echo svar-$((6*7)) && stty size")
    child.expect("svar-42")
    child.expect("30 100")  # the window size reached the PTY
    opened = site.wait_event("stream.opened", contains='"service":"shell"')
    assert opened.actor_name == "agent@pc-1"

    # The GP office's admin revokes the grant in the portal: the shell is cut.
    admin_token = site.api_token(world.gp_admin)
    assert site.server is not None
    r = web.post(
        f"{site.server.url}/api/v1/grants/{world.grant.id}/revoke",
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert r.status_code == 200, r.text
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    ended = site.wait_event("session.ended", contains="bytes_from_technician")
    assert ended.reason == "cut:grant_revoked"

    # The machine is gone from the technician's list, and asking for it by id anyway is
    # refused with the reason, in the audit log.
    assert site.machines(token) == []
    r = web.post(
        f"{site.server.url}/api/v1/sessions",
        json={"machine_id": machine_id, "technician_key": "A" * 43 + "="},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403 and r.json()["error"] == "grant_revoked"
    denied = site.wait_event("access.requested", outcome="denied")
    assert denied.reason == "grant_revoked" and denied.machine_id is not None


def test_suspending_the_technician_cuts_the_session(site: LiveSite) -> None:
    world = site.world
    site.agent("pc-1").start()
    site.login(world.tech)
    site.wait_online(site.api_token(world.tech), {"pc-1"})
    child = _shell(site, "pc-1")
    child.sendline("echo klar-$((6*7))")
    child.expect("klar-42")  # the shell's answer, not the terminal echoing what was typed
    operator_token = site.api_token(world.operator)
    assert site.server is not None
    r = web.post(
        f"{site.server.url}/api/v1/accounts/{world.tech.user.id}/suspend",
        headers={"Authorization": f"Bearer {operator_token}"},
    )
    assert r.status_code == 200, r.text
    child.expect(pexpect.EOF, timeout=30)
    ended = site.wait_event("session.ended", contains="bytes_from_technician")
    assert ended.reason == "cut:user_suspended"


def test_a_session_cut_short_by_a_server_crash_is_recorded_as_ended(site: LiveSite) -> None:
    world = site.world
    site.agent("pc-1").start()
    site.login(world.tech)
    token = site.api_token(world.tech)
    site.wait_online(token, {"pc-1"})
    child = _shell(site, "pc-1")
    child.sendline("echo klar-$((6*7))")
    child.expect("klar-42")  # the shell's answer, not the terminal echoing what was typed
    site.wait_event("session.tunnel_opened")
    assert site.server is not None
    site.server.proc.kill()  # no chance to record anything
    site.server.proc.wait()
    child.expect(pexpect.EOF, timeout=30)
    site.restart_server()
    ended = site.wait_event("session.ended")
    assert ended.reason == "server_restart"
    site.wait_online(token, {"pc-1"}, timeout=90)  # and the agent is back
