"""`fjernhjelp login` against a real server process: password, code, stored session."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import start_server
from tests.helpers import PASSWORD, make_org, make_user


@pytest.fixture
def live(tmp_path: Path, database_url: str, state, db):
    org = make_org(db, "Leverandør AS", gives=True)
    account = make_user(db, state, org, "tekniker")
    db.commit()
    server = start_server("serve", state.settings.data_dir, database_url)
    yield server, account
    server.stop()


def _cli(args: list[str], home: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FJERNHJELP_CLI_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "fjernhjelp", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_wrong_code_stores_nothing_then_login_stores_a_private_session(
    live, tmp_path: Path
) -> None:
    """One server for both (a server start is most of this test's cost): a wrong code is
    refused and leaves no session; the right one stores a private session whoami uses."""
    server, account = live
    home = tmp_path / "cli"
    login = ["login", "--server", server.url, "-u", "tekniker", "--password-stdin"]
    r = _cli(login, home, f"{PASSWORD}\n000000\n")
    assert r.returncode == 1 and "login.factor_refused" in r.stderr
    assert not (home / "session.json").exists()

    code = pyotp.TOTP(account.totp_secret).now()
    r = _cli(login, home, f"{PASSWORD}\n{code}\n")
    assert r.returncode == 0, r.stderr
    session = home / "session.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert PASSWORD not in session.read_text() and code not in session.read_text()
    who = _cli(["whoami"], home)
    assert who.returncode == 0 and "Leverandør AS" in who.stdout and "totp" in who.stdout
    assert _cli(["logout"], home).returncode == 0
    assert not session.exists()
    assert _cli(["whoami"], home).returncode == 1


def test_a_session_file_others_can_read_is_not_used(tmp_path: Path) -> None:
    # Refused before any server is asked: no server, no database.
    home = tmp_path / "cli"
    home.mkdir()
    (home / "session.json").write_text(
        '{"server":"x","username":"u","token":"t","expires_at":"2999-01-01T00:00:00+00:00"}'
    )
    (home / "session.json").chmod(0o644)
    r = _cli(["whoami"], home)
    assert r.returncode == 1 and "readable by others" in " ".join(r.stderr.split())
