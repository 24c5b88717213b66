"""The end user's side of one Support session, after the code was accepted.

Built from the agent's own parts, not beside them: the control link (agent.link) logs in
with the end-user token and a key made here, in memory, for this session only; the
server's "dial" opens the tunnel exactly as for an installed agent
(agent.remote_session), with :class:`SupportTerms`: tickets name ``support:<session>``,
the technician must reveal the SAS nonce before consent is asked, consent is asked every
time (60 s, no answer is no) with the three words to compare and the shell as a tick
box, and the indicator offers "End session".

The client serves one tunnel and then it is over: when the tunnel ends (either side, a
cut from the server, the relay gone), when the server cuts the Support session before
its tunnel, when the control link drops, or when the server cannot prove it holds the
pinned key, :func:`run` returns and the client exits (its private folder removed by the
caller). Nothing is kept anywhere: the key lives in this process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fjernhjelp import __version__
from fjernhjelp.agent.config import AgentConfig
from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.agent.identity import AgentIdentity
from fjernhjelp.agent.link import ControlLink, LinkConfig, ServerNotTrusted
from fjernhjelp.agent.remote_session import AgentSessions, SupportTerms
from fjernhjelp.agent.runner import control_url
from fjernhjelp.control.messages import Cut, Dial, MachineInfo, MalformedMessage, SessionEvent
from fjernhjelp.control.package import b64e
from fjernhjelp.support.ready_windows import ReadyWindows

_log = logging.getLogger(__name__)

# How long the client waits for the technician to open the tunnel once it has joined.
WAIT_FOR_TECHNICIAN = 20 * 60.0
# Once the session is over: how long the agent's session code may take to finish with
# the tunnel and queue its last report, and then to hand the reports to the server. The
# server keeps the link open for support_link_grace_seconds (10 s) after the session
# ended and waits for the client to close it; both together stay within that.
LAST_REPORT_SECONDS = 7.0
FLUSH_SECONDS = 2.0


@dataclass(frozen=True)
class Outcome:
    """How the session ended, for the client's last words and exit code."""

    kind: str  # "ended", "sas_failed", "untrusted", "refused", "lost", "no_technician"
    detail: str = ""


@dataclass
class ClientSession:
    server_url: str
    server_key: Ed25519PublicKey
    session_id: uuid.UUID
    token: str
    private_dir: Path
    find_display: Callable[[], DisplayTarget | None]
    window_argv: Callable[[str], list[str] | None]
    language: str | None = None
    consent_timeout: float = 60.0
    wait_for_technician: float = WAIT_FOR_TECHNICIAN
    # The windows launched ahead by the caller (support.client), or None: launched here.
    ready: ReadyWindows | None = None
    # Told the seconds to wait when a busy node asks the client to come back later.
    on_busy: Callable[[float], None] | None = None

    def __post_init__(self) -> None:
        # Made here, never written anywhere: the server records its public half when the
        # link logs in, and the technician checks the tunnel's signature against it.
        self.identity = Ed25519PrivateKey.generate()

    async def run(self) -> Outcome:
        files = self.private_dir / "files"
        files.mkdir(mode=0o700, exist_ok=True)
        config = AgentConfig(
            server_url=self.server_url,
            server_public_key=b64e(self.server_key.public_bytes_raw()),
            group="support",
            data_dir=self.private_dir,
            always_ask_consent=True,
            consent_timeout=self.consent_timeout,
            # Files the technician sends land in the private folder, and go with it.
            file_roots=[files],
            language=self.language if self.language in ("nb", "en") else None,  # type: ignore[arg-type]
        )
        finished = asyncio.Event()
        outcome: list[Outcome] = []
        link: ControlLink | None = None

        def done(result: Outcome) -> None:
            if not outcome:
                outcome.append(result)
            finished.set()

        sas_failed = False

        def report(event: SessionEvent) -> None:
            nonlocal sas_failed
            sas_failed = sas_failed or event.action == "sas.failed"
            assert link is not None
            link.report_event(event)

        # The consent dialog and the indicator, loaded while the technician connects.
        ready = self.ready or ReadyWindows()
        await ready.launch(await asyncio.to_thread(self.find_display), self.window_argv)
        sessions = AgentSessions(
            config=config,
            identity=AgentIdentity(self.identity),
            machine_id=self.session_id,
            report=report,
            find_display=self.find_display,
            support=SupportTerms(
                subject=f"support:{self.session_id}",
                window_argv=self.window_argv,
                ready=ready.take,
            ),
        )
        dialled = False
        dial_seen = asyncio.Event()
        # Set once the agent's session code has finished with the tunnel, its last report
        # ("session.ended_at_agent") queued: a cut can arrive between the tunnel leaving
        # the live sessions and that report, and the client must not exit in that gap.
        dial_over = asyncio.Event()

        async def on_dial(command: Dial) -> None:
            nonlocal dialled
            if dialled or command.session_id != self.session_id:
                # One tunnel per Support session (docs/tunnel.md §18.2).
                _log.warning("ignoring a second dial for %s", command.session_id)
                return
            dialled = True
            dial_seen.set()
            try:
                await sessions.dial(command)
            finally:
                dial_over.set()
                done(Outcome("sas_failed") if sas_failed else Outcome("ended", "tunnel_closed"))

        async def on_cut(command: Cut) -> None:
            await sessions.cut(command)
            if command.session_id not in sessions.live:
                # Cut before (or without) a tunnel: the Support session is over.
                done(Outcome("ended", f"cut:{command.reason}"))

        link = ControlLink(
            LinkConfig(
                control_url=control_url(self.server_url),
                server_public_key=self.server_key,
                machine_id=self.session_id,
                identity=self.identity,
                support_token=self.token,
                client_version=__version__,
            ),
            machine_info=_no_machine,
            on_dial=on_dial,
            on_cut=on_cut,
        )
        runner = asyncio.create_task(link.run_once(on_busy=self.on_busy))
        waiter = asyncio.create_task(finished.wait())
        seen = asyncio.create_task(dial_seen.wait())
        try:
            # First the technician has a while to open the tunnel; then it runs as long
            # as it runs.
            await asyncio.wait(
                [runner, waiter, seen],
                timeout=self.wait_for_technician,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if seen.done() and not finished.is_set() and not runner.done():
                await asyncio.wait([runner, waiter], return_when=asyncio.FIRST_COMPLETED)
            if runner.done() and not finished.is_set():
                done(_why_link_ended(runner))
            elif not finished.is_set():
                done(Outcome("no_technician"))
            if not runner.done():
                if dialled:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(dial_over.wait(), LAST_REPORT_SECONDS)
                await link.flush(FLUSH_SECONDS)
                # The client closes the link, not the server: the reports sent above
                # reach it ahead of the close (the server waits for this).
                await link.close()
        finally:
            for task in (runner, waiter, seen):
                task.cancel()
            for task in (runner, waiter, seen):
                with contextlib.suppress(BaseException):
                    await task
            await ready.close()
        return outcome[0]


def _no_machine() -> MachineInfo:
    # Never sent (a Support client reports no machine); the link's interface needs one.
    return MachineInfo(hostname="", os="", agent_version=__version__)


def _why_link_ended(runner: asyncio.Task[None]) -> Outcome:
    exc = runner.exception()
    if isinstance(exc, ServerNotTrusted):
        return Outcome("untrusted", str(exc))
    if isinstance(exc, websockets.ConnectionClosed) and exc.rcvd is not None:
        if exc.rcvd.code == 4401:
            return Outcome("refused", exc.rcvd.reason)
        return Outcome("lost", f"{exc.rcvd.code} {exc.rcvd.reason}".strip())
    if isinstance(exc, (OSError, websockets.WebSocketException, MalformedMessage)):
        return Outcome("lost", str(exc)[:200])
    return Outcome("lost", repr(exc)[:200] if exc else "closed")
