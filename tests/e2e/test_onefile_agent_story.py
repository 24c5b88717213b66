"""From the portal page to a running, enrolled agent on this machine (issue 15, "Done
when"): a customer admin logs in to the portal in Chromium, makes an installer package
and downloads the one file through the page; that very file runs as root with
``install``, answering the fingerprint question on its standard input after the test has
checked that the fingerprint it prints is the one the portal showed; then the agent runs
from the copy the install made, as its own account, and the machine is online in the
API; ``uninstall`` stops it and leaves nothing (files, folders, account).

It installs into this machine's own root, as a customer admin would: system-wide, so
two runs (another checkout's suite, say) take a lock and wait for each other. There is no
systemd here (PID 1 is not systemd), so ``systemctl`` is a stand-in on PATH that starts
and stops what the unit's ExecStart and User say, in an environment as bare as
systemd's: no Python of ours on PATH, no virtual environment.

The file is the real one-file build (FJERNHJELP_SUPPORT_CLIENT, see test_support_story);
without it this fails, saying what to do; FJERNHJELP_SKIP_SUPPORT_STORY=1 skips it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fjernhjelp.agent.install import Layout
from fjernhjelp.audit.log import Outcome
from fjernhjelp.control.agent_file import SIGNATURE_SIZE, TRAILER, carries_package
from fjernhjelp.machines.agent_download import file_name
from tests.conftest import BACKENDS
from tests.e2e.test_support_story import _build, _processes_running
from tests.helpers import PASSWORD
from tests.live.live import LiveSite
from tests.portal.world import build_world

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.one_backend(-1)]

LOCK = Path("/run/lock/fjernhjelp-onefile-agent-story.lock")
ACCOUNT_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")
# What systemd gives a unit: a bare environment. PATH holds the stand-in first.
SYSTEMCTL = """#!/bin/sh
# Stands in for systemd, which does not run here: starts and stops the unit as it says
# (dash's own kill takes no "--": procps' kill signals the process group).
state={state}
unit=/etc/systemd/system/fjernhjelp-agent.service
echo "$*" >> "$state/calls"
case "$1" in
  daemon-reload) exit 0 ;;
  enable)
    program=$(sed -n 's/^ExecStart=//p' "$unit")
    account=$(sed -n 's/^User=//p' "$unit")
    # A session of its own, whose id (its leader's pid) the leader writes down itself.
    setsid sh -c 'echo $$ > "$0/pid.new" && mv "$0/pid.new" "$0/pid" && exec "$@"' \\
      "$state" setpriv --reuid="$account" --regid="$account" --init-groups \\
      env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 $program \\
      >> "$state/agent.log" 2>&1 < /dev/null &
    while [ ! -s "$state/pid" ]; do sleep 0.05; done
    exit 0 ;;
  disable)
    [ -s "$state/pid" ] || exit 0
    pid=$(cat "$state/pid")
    /bin/kill -s TERM -- "-$pid" 2>/dev/null
    # As systemd stops a unit: wait for all its processes, SIGKILL after 30 s.
    i=0
    while /bin/kill -s 0 -- "-$pid" 2>/dev/null; do
      i=$((i + 1))
      [ "$i" -gt 300 ] && /bin/kill -s KILL -- "-$pid" 2>/dev/null
      sleep 0.1
    done
    rm -f "$state/pid"
    exit 0 ;;
esac
exit 1
"""


def _traces(layout: Layout) -> dict[str, bool]:
    paths = (
        layout.config_dir, layout.data_dir, layout.program_dir, layout.unit_file,
        layout.autostart_file,
    )  # fmt: skip
    return {str(p): p.exists() for p in paths}


def _accounts() -> dict[str, str]:
    return {p: Path(p).read_text() for p in ACCOUNT_FILES if Path(p).exists()}


@pytest.fixture
def machine_lock() -> Iterator[None]:
    """This machine's root is shared by every run of this test: one at a time."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@pytest.fixture
def one_run(backend) -> None:  # type: ignore[no-untyped-def]
    """Asked for before ``site``, so a skip costs no database and no server."""
    if backend.name != BACKENDS[-1]:
        # The database is not what this tests (the portal's pages are tested on each).
        pytest.skip(f"the one-file story runs on one backend ({BACKENDS[-1]})")
    if os.geteuid() != 0:
        pytest.skip("installs the agent into this machine: needs root")


@pytest.fixture
def site(  # type: ignore[no-untyped-def]
    one_run, db, state, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveSite]:
    build = _build()
    monkeypatch.setenv("FJERNHJELP_SUPPORT_CLIENT_DIR", str(build.parent))
    live = LiveSite(build_world(db, state), tmp_path, database_url)
    live.start_server()
    try:
        yield live
    finally:
        live.stop()


def test_customer_admin_downloads_one_file_runs_it_as_root_and_the_agent_runs_enrolled(  # type: ignore[no-untyped-def]
    one_run: None, browser, site: LiveSite, machine_lock: None, tmp_path: Path
) -> None:
    assert site.server is not None
    url = site.server.url
    layout = Layout()
    installed = _traces(layout)
    assert not any(installed.values()), f"an agent is installed here already: {installed}"
    accounts_before = _accounts()
    state_dir = tmp_path / "systemd"
    bin_dir = tmp_path / "bin"
    state_dir.mkdir()
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(SYSTEMCTL.format(state=state_dir))
    (bin_dir / "systemctl").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "nb_NO.UTF-8"}
    admin = site.world.gp_admin
    program: Path | None = None
    try:
        # The customer admin makes a package in the portal and downloads the one file.
        page = browser.new_context(locale="nb-NO", accept_downloads=True).new_page()
        page.goto(url + "/login")
        page.fill("input[name=username]", admin.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/login/factor**")
        page.fill("input[name=code]", site.fresh_code(admin))
        page.click("button[type=submit]")
        page.wait_for_url(lambda u: "/login" not in u)
        page.goto(url + "/portal/packages")
        page.get_by_test_id("create-package").click()
        shown = page.get_by_test_id("server-fingerprint").inner_text().strip()
        name = file_name(site.world.group.name)
        assert name in page.get_by_test_id("executable-command").inner_text()
        with page.expect_download() as downloading:
            page.get_by_test_id("download-executable").click()
        download = downloading.value
        assert download.suggested_filename == name
        program = tmp_path / "Nedlastinger" / name
        program.parent.mkdir()
        download.save_as(program)
        program.chmod(0o700)
        event = site.wait_event("package.executable_downloaded", outcome=Outcome.SUCCESS)
        assert name in event.details and shown in event.details

        # The same file with one byte of its package changed refuses, says why, installs nothing.
        data = bytearray(program.read_bytes())
        data[-TRAILER.size - SIGNATURE_SIZE - 40] ^= 0x01  # inside the package's signature
        altered = program.with_name("endret.run")
        altered.write_bytes(bytes(data))
        altered.chmod(0o700)
        refused = subprocess.run(
            [str(altered), "install", "--yes"], env=env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "Denne filen kan ikke brukes, ingenting er installert" in refused.stderr
        assert "altered" in refused.stderr or "endret" in refused.stderr
        assert not any(_traces(layout).values()) and not (state_dir / "calls").exists()
        altered.unlink()

        # Run as root: it shows the key's fingerprint and asks; the answer comes on stdin.
        done = subprocess.run(
            [str(program), "install"], input="j\n", env=env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        printed = re.search(r"Tjenestens nøkkel: (SHA256:\S+)", done.stdout)
        assert printed is not None and printed.group(1) == shown, done.stdout
        assert "Installere og stole på denne tjenesten? [j/N]" in done.stdout
        assert (state_dir / "calls").read_text().splitlines() == [
            "daemon-reload",
            "enable --now fjernhjelp-agent.service",
        ]

        # Its own account, folders closed to others, and a copy of the build that runs it.
        account = pwd.getpwnam("fjernhjelp-agent")
        for folder in (layout.config_dir, layout.data_dir):
            info = folder.stat()
            assert (info.st_mode & 0o777, info.st_uid) == (0o700, account.pw_uid)
        assert layout.config_file.stat().st_mode & 0o777 == 0o600
        unit = layout.unit_file.read_text()
        assert "ExecStart=/opt/fjernhjelp-agent/fjernhjelp-agent run" in unit
        # The copy is the build without the package: the enrolment token is in the config only.
        assert not carries_package(layout.program_file)
        assert program.read_bytes().startswith(layout.program_file.read_bytes())

        # The agent enrols and is online: the machine shows in the portal's API.
        token = site.api_token(admin)
        machines = site.wait_online(token, {socket.gethostname()}, timeout=120)
        assert [m for m in machines if m["hostname"] == socket.gethostname()]
        running = _processes_running(layout.program_file)
        assert running and all(os.stat(f"/proc/{pid}").st_uid == account.pw_uid for pid in running)

        # Uninstall, answering its question too: nothing is left.
        done = subprocess.run(
            [str(program), "uninstall"], input="j\n", env=env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Agenten er fjernet." in done.stdout
        site.wait_online(token, {socket.gethostname()}, online=False, timeout=60)
        deadline = time.monotonic() + 30
        while _processes_running(layout.program_file) and time.monotonic() < deadline:
            time.sleep(0.2)  # the bootloader's child, if it outlives its parent briefly
        assert _processes_running(layout.program_file) == []
        assert not any(_traces(layout).values()), _traces(layout)
        assert _accounts() == accounts_before
    finally:
        # Whatever failed above, this machine is left as it was found.
        subprocess.run([str(bin_dir / "systemctl"), "disable", "--now"], timeout=60, check=False)
        for pid in _processes_running(layout.program_file):  # ours: the lock is held
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if program is not None and any(_traces(layout).values()):
            subprocess.run([str(program), "uninstall", "--yes"], env=env, timeout=180, check=False)
        if "fjernhjelp-agent" not in accounts_before.get("/etc/passwd", ""):
            subprocess.run(["userdel", "fjernhjelp-agent"], capture_output=True, check=False)
