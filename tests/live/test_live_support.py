"""A Support session end to end, with real processes: the server, the end user's one-time
client (``fjernhjelp support CODE``) on an Xvfb display, and a technician in Python
(technician.tunnel.open_support_session, as the command line opens it).

The end user joins with the code, consents in the client's dialog (which shows the check
words), the technician puts a file through the tunnel, the end user presses "End session";
the client is gone and its home and temporary folders are as they were."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.control.package import b64e
from fjernhjelp.remote import history
from fjernhjelp.streams.chat.wire import message_for
from fjernhjelp.streams.files.technician import put_file
from fjernhjelp.streams.shell.technician import receive_offer
from fjernhjelp.streams.shell.wire import DATA, EXIT, ShellRefused, encode_open
from fjernhjelp.support.client import EXIT_ENDED, EXIT_UNTRUSTED
from fjernhjelp.support.stamp import stamp
from fjernhjelp.technician.api import Api
from fjernhjelp.technician.tunnel import open_support_session
from fjernhjelp.tunnel import StreamRefused, Tunnel, WebSocketTransport, connect, sas
from tests.asyncrun import run_async
from tests.live.live import LiveSite, web
from tests.portal.world import build_world
from tests.x11 import click, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.desktop]


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    live = LiveSite(build_world(db, state), tmp_path, database_url)
    live.start_server()
    yield live
    live.stop()


def _server_key(site: LiveSite) -> str:
    return b64e(site.state.keys.signing.public_key().public_bytes_raw())


def _new_code(site: LiveSite, token: str) -> dict[str, Any]:
    assert site.server is not None
    answer = web.post(
        site.server.url + "/api/v1/support-sessions",
        json={"customer_org_id": str(site.world.gp.id)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _listing(*folders: Path) -> list[str]:
    return sorted(
        f"{folder.name}/{path.relative_to(folder)}"
        for folder in folders
        for path in folder.rglob("*")
    )


class Client:
    """The end user's client as a process, in a home and TMPDIR of its own."""

    def __init__(
        self,
        site: LiveSite,
        tmp: Path,
        code: str | None,
        key: str,
        display: str,
        program: list[str] | None = None,
    ) -> None:
        self.home, self.tmpdir = tmp / "home", tmp / "tmp"
        for folder in (self.home, self.tmpdir):
            folder.mkdir(mode=0o700)
        self.log = tmp / "client.log"
        assert site.server is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "XAUTHORITY"))}
        env.update(HOME=str(self.home), TMPDIR=str(self.tmpdir), DISPLAY=display, LANG="C.UTF-8")
        self.before = _listing(self.home, self.tmpdir)
        self._fh = self.log.open("w")
        # From the package, the server and its key given; or the one-file build, stamped.
        program = program or [
            sys.executable,
            "-m",
            "fjernhjelp",
            "support",
            "--server",
            site.server.url,
            # Two words, as people type it: a key that begins with "-" is still the key.
            "--server-key",
            key,
        ]
        self.proc = subprocess.Popen(
            # No code: a client downloaded from the start page carries its session.
            [*program, *([code] if code else []), "--language", "en", "--verbose"],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            # Not in the test's own temporary folder: nothing of ours in its listing.
            cwd=tempfile.gettempdir(),
        )

    def shown(self, what: str, timeout: float = 60) -> dict[str, Any]:
        pattern = re.compile(re.escape(what) + r" shown: (\{.*\})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.findall(self.log.read_text())
            if found:
                return json.loads(found[-1])
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise TimeoutError(f"{what} never shown:\n{self.log.read_text()[-4000:]}")

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _one_file_client(site: LiveSite, tmp_path: Path) -> list[str]:
    """The one-file build (FJERNHJELP_SUPPORT_CLIENT, from ``make support-client``),
    stamped for this server as the download page stamps it."""
    generic = os.environ.get("FJERNHJELP_SUPPORT_CLIENT")
    if not generic:
        pytest.skip("set FJERNHJELP_SUPPORT_CLIENT to a `make support-client` build")
    assert site.server is not None
    path = tmp_path / "fjernhjelp-support"
    path.write_bytes(stamp(Path(generic).read_bytes(), site.server.url, site.state.keys.signing))
    path.chmod(0o755)
    return [str(path)]


@pytest.mark.parametrize("how", ["package", "one-file"])
def test_a_support_session_runs_and_leaves_nothing_behind(
    site: LiveSite, xvfb: DisplayTarget, tmp_path: Path, how: str
) -> None:
    program = _one_file_client(site, tmp_path) if how == "one-file" else None
    token = site.api_token(site.world.tech)
    created = _new_code(site, token)
    client = Client(site, tmp_path, created["code"], _server_key(site), xvfb.display, program)
    try:
        started = site.wait_event("support.client_started", timeout=60)
        assert json.loads(started.details)["session"] == created["id"]
        assert started.actor_name == "end-user"
        (tmp_path / "hjelp.txt").write_text("fra teknikeren\n")
        assert site.server is not None
        api = Api(site.server.url, token)

        async def technician() -> str:
            opened = await open_support_session(api, created["id"])
            words = opened.sas
            dialog = await asyncio.to_thread(client.shown, "consent dialog")
            await asyncio.to_thread(screenshot, xvfb, tmp_path / "consent.png")
            assert "tick_terminal" in dialog["buttons"]  # the shell: offered, not ticked
            await asyncio.to_thread(click, xvfb, *dialog["buttons"]["allow"])
            stream = await opened.tunnel.open("files")
            result = await put_file(stream, tmp_path / "hjelp.txt", "hjelp.txt")
            assert result.size == len("fra teknikeren\n")
            chat = await opened.tunnel.open("chat")
            await chat.send(message_for("Hei! Jeg ser på skjermen din nå."))
            await asyncio.to_thread(client.shown, "session chat")
            await chat.close()
            # No shell: the end user did not tick it, whatever the ticket says.
            assert "terminal" in opened.permissions
            with pytest.raises(StreamRefused):
                await opened.tunnel.open("shell")
            indicator = await asyncio.to_thread(client.shown, "session indicator")
            await asyncio.to_thread(click, xvfb, *indicator["buttons"]["end_session"])
            await asyncio.wait_for(opened.tunnel.wait_closed(), 30)
            await opened.websocket.close()
            return words

        words = run_async(technician())
        assert len(words.split()) == 3 and all(w in sas.word_list() for w in words.split())
        assert client.wait(60) == EXIT_ENDED, client.log.read_text()[-3000:]
    finally:
        client.stop()
    # Nothing left: not in the home folder, not in the temporary folder.
    assert _listing(client.home, client.tmpdir) == client.before == []
    given = site.wait_event("consent.given")
    assert json.loads(given.details)["shell"] is False and given.actor_name == "end-user"
    site.wait_event("sas.shown")
    site.wait_event("file.moved")
    chatted = json.loads(site.wait_event("chat.ended").details)
    assert chatted["to_user"] == 1 and chatted["support"] is True
    ended = site.wait_event("session.ended_at_agent")
    assert ended.reason.startswith("ended_by_user")
    over = json.loads(site.wait_event("session.ended").details)
    assert over["support"] is True and over["session"] == created["id"]
    assert over["bytes_from_technician"] > 0 and over["bytes_from_agent"] > 0


async def _shell_answers(tunnel: Tunnel) -> str:
    """Open the shell, have it compute something, exit: what it printed. The stream
    opens (the end user gave the shell); a client running as root (these tests, as
    root) has its shell refuse to start, since Support never grants a root shell."""
    stream = await tunnel.open("shell")
    try:
        offer = await receive_offer(stream)
    except ShellRefused as exc:
        assert os.geteuid() == 0 and exc.code == "needs_terminal_admin", exc
        return "root"
    await stream.send(encode_open(24, 80, "xterm", offer.default))
    await stream.send(bytes([DATA]) + b"echo klar-$((40+2)); exit\n")
    said = b""
    while True:
        message = await asyncio.wait_for(stream.recv(), 60)
        if message[:1] == bytes([DATA]):
            said += message[1:]
        elif message[:1] == bytes([EXIT]):
            return said.decode(errors="replace")


@pytest.mark.parametrize("ticked", [False, True], ids=["not-ticked", "ticked"])
def test_the_shell_is_the_end_users_to_give_in_the_consent_dialog(
    site: LiveSite, xvfb: DisplayTarget, tmp_path: Path, ticked: bool
) -> None:
    """Every Support ticket names the shell; the client opens one only if the end user
    ticked it in the consent dialog (off by default). Without the tick the technician's
    request is refused at the client and audited; with it, the shell runs."""
    token = site.api_token(site.world.tech)
    created = _new_code(site, token)
    client = Client(site, tmp_path, created["code"], _server_key(site), xvfb.display)
    try:
        site.wait_event("support.client_started", timeout=60)
        assert site.server is not None
        api = Api(site.server.url, token)

        async def technician() -> str | None:
            opened = await open_support_session(api, created["id"])
            assert "terminal" in opened.permissions  # asked for every time
            dialog = await asyncio.to_thread(client.shown, "consent dialog")
            if ticked:
                await asyncio.to_thread(click, xvfb, *dialog["buttons"]["tick_terminal"])
            await asyncio.to_thread(click, xvfb, *dialog["buttons"]["allow"])
            try:
                if not ticked:
                    with pytest.raises(StreamRefused):
                        await opened.tunnel.open("shell")
                    return None
                return await _shell_answers(opened.tunnel)
            finally:
                await opened.tunnel.close()
                await opened.websocket.close()

        said = run_async(technician())
        assert client.wait(60) == EXIT_ENDED, client.log.read_text()[-3000:]
    finally:
        client.stop()
    given = json.loads(site.wait_event("consent.given").details)
    assert given["shell"] is ticked
    if ticked:
        opened = site.wait_event("stream.opened", contains='"service":"shell"')
        assert opened.actor_name == "end-user" and json.loads(opened.details)["support"] is True
        # Never refused for want of permission; as root, the shell itself says why.
        refused_for = [e.reason for e in site.events("stream.refused")]
        assert refused_for == (["needs_terminal_admin"] if said == "root" else [])
        if said != "root":
            assert said is not None and "klar-42" in said
            started = json.loads(site.wait_event("shell.started").details)
            assert started["support"] is True and started["session"] == created["id"]
    else:
        refused = site.wait_event("stream.refused", contains='"service":"shell"')
        assert refused.reason == "not_permitted" and refused.actor_name == "end-user"
        assert site.events("shell.started") == []
    assert _listing(client.home, client.tmpdir) == []


def test_revoking_the_agreement_cuts_a_running_support_session(
    site: LiveSite, xvfb: DisplayTarget, tmp_path: Path
) -> None:
    """The customer's admin revokes the agreement that allows Support while a session
    runs: the relay closes the technician's end with the cut's reason, the client is
    told, reports how it ended and exits, and the history names the reason."""
    token = site.api_token(site.world.tech)
    created = _new_code(site, token)
    client = Client(site, tmp_path, created["code"], _server_key(site), xvfb.display)
    assert site.world.agreement is not None and site.server is not None
    revoke_url = f"{site.server.url}/api/v1/agreements/{site.world.agreement.id}/revoke"
    admin = site.api_token(site.world.gp_admin)
    try:
        site.wait_event("support.client_started", timeout=60)
        api = Api(site.server.url, token)

        async def technician() -> None:
            opened = await open_support_session(api, created["id"])
            dialog = await asyncio.to_thread(client.shown, "consent dialog")
            await asyncio.to_thread(click, xvfb, *dialog["buttons"]["allow"])
            await asyncio.to_thread(client.shown, "session indicator")
            revoked = await asyncio.to_thread(
                web.post, revoke_url, headers={"Authorization": f"Bearer {admin}"}
            )
            assert revoked.status_code == 200, revoked.text
            # The relay closes the technician's end (the cut's reason is what it records,
            # below).
            await asyncio.wait_for(opened.tunnel.wait_closed(), 60)
            await opened.websocket.close()

        run_async(technician())
        assert client.wait(60) == EXIT_ENDED, client.log.read_text()[-3000:]
    finally:
        client.stop()
    assert "The session has ended" in client.log.read_text()
    assert _listing(client.home, client.tmpdir) == []
    over = site.wait_event("session.ended", reason="cut:agreement_revoked")
    assert json.loads(over.details)["session"] == created["id"]
    last = site.wait_event("session.ended_at_agent")
    assert last.reason == "cut:agreement_revoked"
    assert site.wait_event("agreement.revoked").outcome == "success"
    # The customer's history shows it ended by the revocation, with the reason.
    db = site.world.db
    db.rollback()
    db.expire_all()
    page = history.support_sessions_of(db, site.world.caller(site.world.gp_admin))
    [entry] = [e for e in page.sessions if str(e.id) == created["id"]]
    assert entry.ended_by == "revoked" and entry.end_reason == "cut:agreement_revoked"


def test_a_client_refuses_a_server_without_its_pinned_key(site: LiveSite, tmp_path: Path) -> None:
    token = site.api_token(site.world.tech)
    created = _new_code(site, token)
    other = b64e(bytes(32 * [7]))  # a key the server does not hold
    client = Client(site, tmp_path, created["code"], other, ":0")
    try:
        assert client.wait(60) == EXIT_UNTRUSTED
    finally:
        client.stop()
    said = client.log.read_text()
    assert "did not answer with the key this client has pinned" in said
    assert site.events("support.client_started") == []
    assert _listing(client.home, client.tmpdir) == []


async def _open_with_a_false_reveal(site: LiveSite, token: str, support_id: str) -> Tunnel:
    """A technician end (or a middle party) whose reveal is not the nonce HELLO committed
    to: what splicing two tunnels with words of one's choosing looks like to the client."""
    assert site.server is not None
    ephemeral = X25519PrivateKey.generate()
    granted = await asyncio.to_thread(
        Api(site.server.url, token).post,
        f"/support-sessions/{support_id}/tunnel",
        {"technician_key": base64.b64encode(ephemeral.public_key().public_bytes_raw()).decode()},
    )
    ws = await websockets.connect(granted["relay_url"], ping_interval=None)
    await ws.send(json.dumps({"role": "technician", "token": granted["relay_token"]}))
    tunnel = await connect(
        WebSocketTransport(ws),
        ticket=granted["ticket"],
        ephemeral=ephemeral,
        agent_identity=Ed25519PublicKey.from_public_bytes(
            base64.b64decode(granted["agent_identity_key"])
        ),
        random=sas.commitment(sas.new_nonce()),
    )
    await tunnel.control.send_json(sas.reveal_message(sas.new_nonce()))
    return tunnel


def test_a_false_check_word_reveal_ends_the_session_before_consent(
    site: LiveSite, xvfb: DisplayTarget, tmp_path: Path
) -> None:
    token = site.api_token(site.world.tech)
    created = _new_code(site, token)
    client = Client(site, tmp_path, created["code"], _server_key(site), xvfb.display)
    try:
        site.wait_event("support.client_started", timeout=60)

        async def technician() -> None:
            tunnel = await _open_with_a_false_reveal(site, token, created["id"])
            await asyncio.wait_for(tunnel.wait_closed(), 30)

        run_async(technician())
        assert client.wait(60) == EXIT_UNTRUSTED
    finally:
        client.stop()
    said = client.log.read_text()
    assert "could not be verified" in said and "consent dialog shown" not in said
    failed = site.wait_event("sas.failed")
    assert failed.reason == "sas_reveal_invalid" and failed.outcome == "failure"
    assert site.events("consent.asked") == []
    assert _listing(client.home, client.tmpdir) == []


def test_a_cancelled_session_ends_the_waiting_client(site: LiveSite, tmp_path: Path) -> None:
    token = site.api_token(site.world.tech)
    created = _new_code(site, token)
    client = Client(site, tmp_path, created["code"], _server_key(site), ":0")
    try:
        site.wait_event("support.client_started", timeout=60)
        assert site.server is not None
        cancelled = web.post(
            f"{site.server.url}/api/v1/support-sessions/{created['id']}/cancel",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert cancelled.status_code == 200, cancelled.text
        assert client.wait(60) == EXIT_ENDED
    finally:
        client.stop()
    assert "The session has ended" in client.log.read_text()
    assert _listing(client.home, client.tmpdir) == []
    assert site.wait_event("support.cancelled").outcome == "success"
