"""The production example (deploy/production/, deploy/haproxy/) as a person tries it:
scripts/try_production_example.py brings it up on loopback with TLS in front, creates the
first operator with the command line, enrols and logs in through the front, and tears it
all down again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import BACKENDS, PG_ADMIN_URL

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "try_production_example.py"


def test_the_production_example_comes_up_takes_a_login_and_goes() -> None:
    if "postgresql" not in BACKENDS:
        pytest.skip("the example runs on PostgreSQL, which this run does not test")
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        pytest.skip("haproxy is not installed (make system-deps)")
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={**os.environ, "FJERNHJELP_EXAMPLE_PG_URL": PG_ADMIN_URL},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "logged in as driftsoperator through https://localhost:" in done.stdout
    assert "came up, took a login through TLS, and is gone" in done.stdout
    # Nothing is left behind: no temporary database.
    with psycopg.connect(PG_ADMIN_URL) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'fjh_example_%'"
        ).fetchall()
    assert left == []
