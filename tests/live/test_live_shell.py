"""A shell through the tunnel, and a grant revoked while it runs."""

from __future__ import annotations

import json
import os
import sys

import pexpect
import pytest

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.portal.models import Permission
from tests.live.live import LiveSite, web
from tests.live.test_live_faults import wait_for

pytestmark = pytest.mark.slow


def _shell(site: LiveSite, machine: str, run_as: str = "service") -> pexpect.spawn:
    # "service": the agents here have no display, so the agent's own account (root) is
    # the one shell there is; the grant (conftest.FULL) has terminal_admin for it.
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
    assert r.status_code == 403 and r.json()["reason"] == "grant_revoked"
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


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_without_terminal_admin_a_root_shell_is_refused_in_one_line(site: LiveSite) -> None:
    # The attack: a technician granted "terminal" but not "terminal as administrator"
    # asks the agent (root here, so its own account is root) for a service shell.
    world = site.world
    site.update_grant(
        frozenset({Permission.VIEW, Permission.TERMINAL, Permission.FILES}), consent_required=False
    )
    site.agent("pc-1").start()
    site.login(world.tech)
    site.wait_online(site.api_token(world.tech), {"pc-1"})

    for args in (["--as", "service"], []):
        result = site.cli("connect", "pc-1", "--shell", *args)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        refusal = [line for line in _stderr_lines(result.stderr) if "refused" in line]
        assert refusal == [
            "the machine refused the shell: a shell as root (service) needs the permission "
            "'terminal as administrator', which this session does not have "
            "(needs_terminal_admin)"
        ], result.stderr

    # The server put no terminal_admin in the ticket, and the agent refused on its own,
    # in the audit log, with nothing started.
    issued = site.wait_event("session.ticket_issued")
    assert json.loads(issued.details)["permissions"] == ["files", "terminal", "view"]

    def shell_refusals() -> list[AuditEvent]:
        return [
            e
            for e in site.events("stream.refused")
            if json.loads(e.details).get("service") == "shell"
        ]

    # The agent reports its refusal over the control link after it has answered the
    # tunnel: the command may have exited before the second report is written (a CI run).
    refused = wait_for(
        "both refusals audited", lambda: len(shell_refusals()) >= 2 and shell_refusals()
    )
    assert len(refused) == 2 and {e.reason for e in refused} == {"needs_terminal_admin"}
    assert all(e.outcome == "denied" and e.actor_name == "agent@pc-1" for e in refused)
    assert site.events("shell.started") == []

    # With the permission the same request works, and the audit names the OS account.
    site.update_grant(
        frozenset({Permission.VIEW, Permission.TERMINAL, Permission.TERMINAL_ADMIN}),
        consent_required=False,
    )
    child = _shell(site, "pc-1")
    child.sendline("echo admin-$((6*7)); exit")
    child.expect("admin-42")
    child.expect(pexpect.EOF)
    started = json.loads(site.wait_event("shell.started").details)
    assert (started["run_as"], started["account"], started["uid"]) == ("service", "root", 0)
    ended = json.loads(site.wait_event("shell.ended").details)
    assert (ended["account"], ended["uid"], ended["exit_status"]) == ("root", 0, 0)


def test_an_unknown_account_choice_is_one_line_and_exit_two(site: LiveSite) -> None:
    site.login(site.world.tech)
    result = site.cli("connect", "pc-1", "--shell", "--as", "root")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert _stderr_lines(result.stderr) == ["--as: choose user or service"]
