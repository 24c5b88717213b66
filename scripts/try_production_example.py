#!/usr/bin/env python3
"""Bring the production example up on loopback, log in through it, and tear it down.

What runs is the repository's example itself (deploy/): the node as its systemd unit
(deploy/production/fjernhjelp@.service) would start it, with the unit's environment and
the shared settings file (deploy/production/fjernhjelp.toml), behind HAProxy with the
repository's configuration (deploy/haproxy/haproxy.cfg) terminating TLS, on a database
of its own on the local PostgreSQL. Only what names this machine is replaced, through the
environment as the settings allow: addresses and ports, folders, the database, and logs
to stderr instead of syslog. Then, as an operator would on the first day:

1. `fjernhjelp admin create-operator` prints the first operator's one-time link;
2. the link is opened through the TLS front, a password and an authenticator are set;
3. the operator logs in through the front (password, then a TOTP code) and is known;
4. the agents' control link and a relay path are reached as WebSockets through the front.

    .venv/bin/python scripts/try_production_example.py          # up, checked, down
    .venv/bin/python scripts/try_production_example.py --keep   # ... and wait for Ctrl-C

FJERNHJELP_EXAMPLE_PG_URL names the PostgreSQL server to make the temporary database on
(default postgresql://postgres@127.0.0.1:5432/postgres). Needs haproxy and openssl.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from fjernhjelp.auth import totp

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "production" / "fjernhjelp@.service"
SETTINGS = REPO / "deploy" / "production" / "fjernhjelp.toml"
HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"

OPERATOR = "driftsoperator"
PASSWORD = "Fjordlys over Nordfjella 2026"  # noqa: S105 (the example's own, shown with --keep)
ORG_NUMBER = "990000034"
NODE = "a"


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], Any], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.2)
    raise SystemExit(f"gave up waiting for {what}")


def unit_command() -> tuple[list[str], dict[str, str]]:
    """The unit's ExecStart (with this checkout's program) and Environment= values."""
    command: list[str] = []
    env: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            program, *args = shlex.split(value)
            assert Path(program).name == "fjernhjelp", program
            command = [sys.executable, "-m", "fjernhjelp", *args]
        elif key == "Environment":
            name, _, setting = value.partition("=")
            env[name] = setting
    assert command, f"no ExecStart in {UNIT}"
    return command, env


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, made now; HAProxy's PEM holds both."""
    folder.mkdir(mode=0o700)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(  # noqa: S603 (fixed arguments)
        [  # noqa: S607 (openssl from PATH, as a person would run it)
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    pem = folder / "haproxy.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    pem.chmod(0o600)
    return cert, pem


@contextlib.contextmanager
def temporary_database(admin_url: str) -> Iterator[str]:
    name = f"fjh_example_{uuid.uuid4().hex[:10]}"
    admin = make_url(admin_url)
    plain = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Processes:
    """Everything started here, stopped in reverse order whatever happens."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        # This script's own programs with fixed arguments.
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        self.running.append((name, proc))
        return proc

    def check(self) -> None:
        for name, proc in self.running:
            if proc.poll() is not None:
                log = (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{log}")

    def stop(self) -> None:
        for _, proc in reversed(self.running):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def answers(procs: Processes, url: str, verify: ssl.SSLContext | bool) -> bool:
    procs.check()
    try:
        return httpx.get(url, verify=verify, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def enrol(front: httpx.Client, link: str) -> str:
    """The operator's first visit: password and authenticator. Returns the TOTP secret."""
    page = front.get(link)
    page.raise_for_status()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page.text)
    assert csrf and secret, "the enrolment page has no form"
    key = secret.group(1).replace(" ", "")
    done = front.post(
        link,
        data={
            "password": PASSWORD,
            "password_again": PASSWORD,
            "code": totp.code_at_step(key, totp.step_at(time.time())),
            "csrf_token": csrf.group(1),
        },
    )
    assert done.status_code == 303, done.text[:2000]
    assert done.headers["location"] == "/login?notice=enrolled"
    return key


def log_in(front: httpx.Client, secret: str, enrolled_step: int) -> dict[str, Any]:
    pending = front.post("/api/v1/auth/login", json={"username": OPERATOR, "password": PASSWORD})
    assert pending.status_code == 200, pending.text
    # A code works once: the one after the code the enrolment used (a step ahead is
    # accepted); should the clock be past that already, the current one.
    step = max(enrolled_step + 1, totp.step_at(time.time()))
    factor = front.post(
        "/api/v1/auth/factor",
        json={
            "pending_token": pending.json()["pending_token"],
            "code": totp.code_at_step(secret, step),
        },
    )
    assert factor.status_code == 200, factor.text
    me = front.get("/api/v1/me", headers={"Authorization": f"Bearer {factor.json()['token']}"})
    assert me.status_code == 200, me.text
    answer: dict[str, Any] = me.json()
    return answer


def websockets_through(front_url: str, context: ssl.SSLContext) -> None:
    """Both WebSocket paths through the TLS front: an agent's control link (the server
    speaks first, with its signed challenge) and a node's relay (a wrong token is
    refused by the node, not by HAProxy)."""
    ws_base = "wss" + front_url[len("https") :]
    with ws_connect(f"{ws_base}/agent/control", ssl=context, open_timeout=20) as ws:
        challenge = json.loads(ws.recv(timeout=20))
        assert challenge["type"] == "challenge", challenge
    relay = f"{ws_base}/nodes/{NODE}/relay/{uuid.uuid4()}"
    with ws_connect(relay, ssl=context, open_timeout=20) as ws:
        ws.send(json.dumps({"role": "technician", "token": "not-a-token"}))
        try:
            ws.recv(timeout=20)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4403, closed
        else:
            raise AssertionError("the relay took a wrong token")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep it running until Ctrl-C")
    options = parser.parse_args()
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        raise SystemExit("haproxy is not installed (make system-deps)")
    admin_url = os.environ.get(
        "FJERNHJELP_EXAMPLE_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    root = Path(tempfile.mkdtemp(prefix="fjh-production-example-"))
    procs = Processes(root)
    try:
        cert, pem = self_signed(root / "tls")
        context = ssl.create_default_context(cafile=str(cert))
        with temporary_database(admin_url) as database_url:
            front_port, node_port = free_port(), free_port()
            front_url = f"https://localhost:{front_port}"
            command, unit_env = unit_command()
            # As the unit has it, with this checkout's settings file in place of /etc's.
            unit_env["FJERNHJELP_CONFIG"] = str(SETTINGS)
            node_env = {
                **os.environ,
                **unit_env,
                # What names this machine, over the file's values (the environment wins).
                "FJERNHJELP_DATA_DIR": str(root / "var-lib-fjernhjelp"),
                "FJERNHJELP_DATABASE_URL": database_url,
                "FJERNHJELP_BIND": f"127.0.0.1:{node_port}",
                "FJERNHJELP_PUBLIC_URL": front_url,
                "FJERNHJELP_NODE_URL": f"{front_url}/nodes/{NODE}",
                "FJERNHJELP_NODE_ID": f"example-{NODE}",
                "FJERNHJELP_TRUSTED_PROXIES": '["127.0.0.1"]',
                # One node: no Redis needed (deploy/haproxy/haproxy.cfg takes 1 to 3).
                "FJERNHJELP_REDIS_URL": "",
                "FJERNHJELP_LOG_DESTINATION": "stderr",
                "FJERNHJELP_AUDIT_SYSLOG": "",
            }
            for inherited in [k for k in node_env if k.startswith("FJH_")]:
                del node_env[inherited]
            say(f"starting node {NODE} as its unit would: {shlex.join(command)}")
            procs.start(f"node-{NODE}", command, node_env)
            say(f"starting HAProxy with TLS on {front_url}")
            procs.start(
                "haproxy",
                [haproxy, "-db", "-f", str(HAPROXY_CFG)],
                {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "FJH_BIND": f"127.0.0.1:{front_port}",
                    "FJH_TLS_PEM": str(pem),
                    "FJH_NODE_A": f"127.0.0.1:{node_port}",
                    "FJH_MAXCONN": "1000",
                },
            )
            wait_for(
                "the node to be healthy through the front",
                lambda: answers(procs, f"{front_url}/healthz", context),
            )

            say("creating the first operator with the command line")
            created = subprocess.run(  # noqa: S603 (fixed arguments)
                [
                    sys.executable, "-m", "fjernhjelp", "admin", "create-operator",
                    "--username", OPERATOR, "--email", "drift@example.no",
                    "--name", "Drift Operatør", "--org-number", ORG_NUMBER,
                    "--org-name", "Driftsoperatøren",
                ],
                env=node_env,
                capture_output=True,
                text=True,
                check=False,
            )  # fmt: skip
            if created.returncode != 0:
                raise SystemExit(f"create-operator failed:\n{created.stdout}{created.stderr}")
            link = next(w for w in created.stdout.split() if "/enroll/" in w)
            assert link.startswith(front_url + "/enroll/"), link

            with httpx.Client(base_url=front_url, verify=context, timeout=60) as front:
                say("enrolling through the front: password and authenticator")
                enrolled_step = totp.step_at(time.time())
                secret = enrol(front, link.removeprefix(front_url))
                # The forms' cookies are a TLS origin's: Secure, and __Host- bound.
                cookies = [(c.name, c.secure) for c in front.cookies.jar]
                assert cookies and all(
                    name.startswith("__Host-") and secure for name, secure in cookies
                ), cookies
                say("logging in through the front: password, then a TOTP code")
                me = log_in(front, secret, enrolled_step)
                assert me["username"] == OPERATOR, me
            say(f"logged in as {me['username']} through {front_url}")
            say("the control link and a relay path answer as WebSockets through the front")
            websockets_through(front_url, context)
            if options.keep:
                say(
                    f"running: {front_url} (certificate {cert}), user {OPERATOR}, password "
                    f"{PASSWORD!r}, TOTP secret {secret}; Ctrl-C stops it"
                )
                with contextlib.suppress(KeyboardInterrupt):
                    signal.pause()
            say("tearing down")
            procs.stop()
        say("the production example came up, took a login through TLS, and is gone")
        return 0
    finally:
        procs.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
