"""Real processes for Access tests: the server, agents and the technician's CLI.

A LiveSite holds a world (organisations, terms, agreement, grant) in the test database, a
server process on a free port sharing that database and key directory, and helpers to
make installer packages, start agents and run `fjernhjelp` commands as a technician.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from fjernhjelp.agent.config import AgentConfig, save_config
from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth import totp
from fjernhjelp.auth.models import User
from fjernhjelp.caller import Caller
from fjernhjelp.control.package import read_package
from fjernhjelp.machines import packages
from fjernhjelp.portal import grants
from fjernhjelp.portal.grants import GrantTerms
from fjernhjelp.portal.models import Permission
from tests.e2e.conftest import ServerProcess, start_server
from tests.helpers import PASSWORD, Account
from tests.portal.world import World

# httpx's default of 5 s runs out on a loaded 2-core machine while the server is busy
# starting agents; a refusal still arrives at once, so a long bound costs nothing.
HTTP_TIMEOUT = 60.0


class web:
    get = staticmethod(partial(httpx.get, timeout=HTTP_TIMEOUT))
    post = staticmethod(partial(httpx.post, timeout=HTTP_TIMEOUT))
    delete = staticmethod(partial(httpx.delete, timeout=HTTP_TIMEOUT))


@dataclass
class AgentProcess:
    name: str
    config_path: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    _fh: Any = None

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        self._fh = self.log.open("a")
        # The agent's own home, as its service user would have: shells it starts for
        # technicians read no start-up files of the account running the tests.
        env = {**os.environ, "HOME": str(self.config_path.parent), **(extra_env or {})}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fjernhjelp",
                "agent",
                "run",
                "--config",
                str(self.config_path),
                "--hostname",
                self.name,
                "--verbose",
            ],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._fh:
            self._fh.close()


@dataclass
class LiveSite:
    world: World
    tmp: Path
    database_url: str
    server: ServerProcess | None = None
    agents: list[AgentProcess] = field(default_factory=list)
    cli_home: Path | None = None
    _tokens: dict[str, str] = field(default_factory=dict)
    _last_step: dict[str, int] = field(default_factory=dict)

    def fresh_code(self, account: Account) -> str:
        """A TOTP code the server has not seen yet for this account.

        The server refuses any step at or before the last one it accepted (a code works
        once) and accepts one step of drift ahead; two logins within one 30-second step
        therefore take the current step and then the next. A third must wait for the
        clock to reach the next step: that is the event it needs.
        """
        assert account.totp_secret
        while True:
            now = totp.step_at(time.time())
            step = max(now, self._last_step.get(account.username, -1) + 1)
            if step <= now + 1:
                self._last_step[account.username] = step
                return totp.code_at_step(account.totp_secret, step)
            time.sleep((now + 1) * totp.STEP_SECONDS - time.time() + 0.05)

    @property
    def state(self):  # type: ignore[no-untyped-def]
        return self.world.state

    def start_server(self, extra_env: dict[str, str] | None = None) -> ServerProcess:
        self.server = start_server(
            "serve",
            self.state.settings.data_dir,
            self.database_url,
            extra_env={
                "FJERNHJELP_NODE_ID": "test-node",
                "FJERNHJELP_RELAY_PAIR_SECONDS": "10",
                **(extra_env or {}),
            },
        )
        return self.server

    def restart_server(self) -> ServerProcess:
        assert self.server is not None
        port = int(self.server.url.rsplit(":", 1)[1])
        self.server.stop()
        self.server = start_server(
            "serve",
            self.state.settings.data_dir,
            self.database_url,
            extra_env={"FJERNHJELP_NODE_ID": "test-node"},
            port=port,
        )
        return self.server

    def package(self, *, max_uses: int = 1, by: Account | None = None) -> bytes:
        db = self.world.db
        assert self.server is not None
        made = packages.create(
            db,
            Caller.of_person((by or self.world.gp_admin).user, self.state.now()),
            group_id=self.world.group.id,
            label="test",
            lifetime=timedelta(hours=1),
            max_uses=max_uses,
            server_url=self.server.url,
            signing_key=self.state.keys.signing,
        )
        db.commit()
        return made.file_bytes

    def agent(self, name: str, package_bytes: bytes | None = None, **config: Any) -> AgentProcess:
        package = read_package(package_bytes or self.package())
        # "auto" would find whichever X display another test has open on this machine
        # (its windows, its xdotool clicks): an agent sees a display only when asked to.
        config.setdefault("display", "none")
        home = self.tmp / f"agent-{name}"
        home.mkdir(mode=0o700)
        cfg = AgentConfig.from_package(package, data_dir=home / "data").model_copy(update=config)
        path = home / "agent.toml"
        save_config(cfg, path)
        agent = AgentProcess(name, path, home / "agent.log")
        self.agents.append(agent)
        return agent

    # -- technician side ----------------------------------------------------------------

    def cli(
        self, *args: str, stdin: str = "", timeout: float = 120, home: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "FJERNHJELP_CLI_HOME": str(home or self.cli_home)}
        return subprocess.run(
            [sys.executable, "-m", "fjernhjelp", *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def login(self, account: Account, home: Path | None = None) -> None:
        home = home or self.tmp / f"cli-{account.username}"
        if self.cli_home is None:
            self.cli_home = home
        assert self.server is not None
        code = self.fresh_code(account)
        result = self.cli(
            "login",
            "--server",
            self.server.url,
            "-u",
            account.username,
            "--password-stdin",
            stdin=f"{PASSWORD}\n{code}\n",
            home=home,
        )
        assert result.returncode == 0, result.stderr

    def api_token(self, account: Account) -> str:
        """A bearer token for the account, logged in once (a TOTP code works once)."""
        cached = self._tokens.get(account.username)
        if cached:
            return cached
        assert self.server is not None
        with httpx.Client(base_url=self.server.url + "/api/v1", timeout=HTTP_TIMEOUT) as http:
            pending = http.post(
                "/auth/login", json={"username": account.username, "password": account.password}
            ).json()
            code = self.fresh_code(account)
            answer = http.post(
                "/auth/factor", json={"pending_token": pending["pending_token"], "code": code}
            )
            assert answer.status_code == 200, answer.text
            self._tokens[account.username] = answer.json()["token"]
            return self._tokens[account.username]

    def machines(self, token: str) -> list[dict[str, Any]]:
        assert self.server is not None
        r = web.get(
            self.server.url + "/api/v1/machines", headers={"Authorization": f"Bearer {token}"}
        )
        r.raise_for_status()
        return r.json()

    def wait_online(
        self, token: str, names: set[str], online: bool = True, timeout: float = 60
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            machines = self.machines(token)
            states = {m["hostname"]: m["online"] for m in machines}
            if all(states.get(n) is online for n in names):
                return machines
            time.sleep(0.3)
        logs = "\n".join(a.log.read_text()[-3000:] for a in self.agents if a.log.exists())
        raise TimeoutError(f"machines {names} not online={online}: {states}\n{logs}")

    def events(self, action: str) -> list[AuditEvent]:
        db = self.world.db
        db.rollback()
        db.expire_all()
        return list(
            db.execute(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            ).scalars()
        )

    def wait_event(
        self, action: str, timeout: float = 30, contains: str | None = None, **match: Any
    ) -> AuditEvent:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in reversed(self.events(action)):
                if all(getattr(event, k) == v for k, v in match.items()) and (
                    contains is None or contains in event.details
                ):
                    return event
            time.sleep(0.2)
        raise TimeoutError(f"no audit event {action} {match}")

    def update_grant(self, permissions: frozenset[Permission], consent_required: bool) -> None:
        """Changes the world's grant as its customer admin would, while the server runs.

        In a session of its own that takes SQLite's write lock at BEGIN, as the app's do:
        the test's deferred session would fail with "database is locked" when it turns a
        read snapshot into a write after the server has written since."""
        world = self.world
        with world.state.db_sessions() as writer:
            admin = writer.get(User, world.gp_admin.user.id)
            assert admin is not None
            grants.update(
                writer,
                Caller.of_person(admin, world.state.now(), "192.0.2.10"),
                world.grant.id,
                GrantTerms(permissions=permissions, consent_required=consent_required),
            )
            writer.commit()
        world.db.rollback()
        world.db.expire_all()

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        if self.server is not None:
            self.server.stop()
