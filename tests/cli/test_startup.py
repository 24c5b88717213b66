"""Commands that run on a technician's laptop or a customer machine import no server code.

Each check runs the real command in a fresh interpreter and reads ``sys.modules`` there:
`fjernhjelp --help`, `agent run` (until its first attempt to reach the server) and
`connect` must not load the server, the database layer or SQLAlchemy. (How fast `--help`
starts is measured by bench/startup.py, not asserted here.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.agent.config import AgentConfig, save_config
from fjernhjelp.control.package import build_package, read_package

FORBIDDEN = ("fjernhjelp.server", "fjernhjelp.db", "sqlalchemy", "fastapi", "alembic")

# Runs the command in a thread; reports the loaded modules when it has done its work
# (``done`` is set) or returned, then leaves at once.
RUNNER = textwrap.dedent(
    """
    import json, logging, os, sys, threading

    done = threading.Event()
    class Watch(logging.Handler):
        def emit(self, record):
            if "retrying" in record.getMessage():
                # Said here, not left to the CLI's own handler: that one runs after this
                # one, and the report below may leave the process before it writes.
                os.write(2, b"watch: the agent is retrying\\n")
                done.set()

    def run():
        from fjernhjelp.cli import app
        logging.getLogger("fjernhjelp.agent.runner").addHandler(Watch())
        try:
            app(sys.argv[1:], prog_name="fjernhjelp")
        except SystemExit:
            pass
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    done.wait(120)
    for name in json.loads(os.environ["ALSO_IMPORT"]):
        __import__(name)
    loaded = sorted(m for m in sys.modules if m.startswith(tuple(json.loads(os.environ["WATCH"]))))
    sys.stdout.flush()
    os.write(1, ("\\nMODULES " + json.dumps(loaded) + "\\n").encode())
    os._exit(0)
    """
)


def loaded_modules(
    args: list[str], env: dict[str, str] | None = None, also_import: tuple[str, ...] = ()
) -> tuple[list[str], str]:
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        env={
            **os.environ,
            **(env or {}),
            "WATCH": json.dumps(FORBIDDEN),
            "ALSO_IMPORT": json.dumps(also_import),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    marker = [line for line in result.stdout.splitlines() if line.startswith("MODULES ")]
    assert marker, result.stdout + result.stderr
    return json.loads(marker[-1].removeprefix("MODULES ")), result.stdout + result.stderr


def test_help_imports_no_server_code() -> None:
    loaded, output = loaded_modules(["--help"])
    assert "agent" in output and "serve" in output and "connect" in output
    assert loaded == []


def test_the_watch_sees_server_imports_when_they_happen() -> None:
    # The same check, on a command that does need the server: it must find it loaded.
    loaded, _ = loaded_modules(["--help"], also_import=("fjernhjelp.server.app",))
    assert "fjernhjelp.server.app" in loaded and "sqlalchemy" in loaded


def test_agent_run_imports_no_server_code(tmp_path: Path) -> None:
    # A free port nobody listens on: the agent tries to enrol, fails, and says it retries.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    package = read_package(
        build_package(
            Ed25519PrivateKey.generate(),
            server_url=f"http://127.0.0.1:{port}",
            enrolment_token="tok",
            group="g",
            organisation="o",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
    )
    home = tmp_path / "agent"
    home.mkdir(mode=0o700)
    config = home / "agent.toml"
    save_config(AgentConfig.from_package(package, data_dir=home), config)
    loaded, output = loaded_modules(["agent", "run", "--config", str(config)])
    assert "retrying" in output, output
    assert loaded == []


def test_connect_imports_no_server_code(tmp_path: Path) -> None:
    # Not logged in, so it stops after loading the tunnel and API client; what a session
    # itself loads (file copy, shell, local VNC port) is imported on top.
    loaded, output = loaded_modules(
        ["connect", "pc-1", "--shell"],
        env={"FJERNHJELP_CLI_HOME": str(tmp_path)},
        also_import=(
            "fjernhjelp.streams.files.technician",
            "fjernhjelp.streams.shell.technician",
            "fjernhjelp.technician.tunnel",
            "fjernhjelp.streams.desktop.technician",
            "rich.progress",
        ),
    )
    assert "login" in output, output
    assert loaded == []
