"""One remote session on the agent: from the server's "dial" to the end of the tunnel.

The agent enforces the ticket itself: it verifies it (pinned server key, machine, expiry,
the technician's key), asks the end user when consent is required (or when the local
policy says always), refuses a consent-required session when nobody is at a screen,
allows only the streams the permissions name, shows the session indicator while it runs,
and reports what happened to the server for the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import websockets

from fjernhjelp.agent import services, sysinfo
from fjernhjelp.agent.config import AgentConfig
from fjernhjelp.agent.consent import ConsentAnswer, ConsentRequest, ask_consent_ticked
from fjernhjelp.agent.display import (
    DialogProcess,
    DisplayTarget,
    ShownWindow,
    find_active_display,
)
from fjernhjelp.agent.identity import AgentIdentity
from fjernhjelp.agent.indicator import IndicatorUnavailable, SessionIndicator
from fjernhjelp.agent.inputhold import HOLD
from fjernhjelp.agent.tls import for_url
from fjernhjelp.control.dial import DialRefused, check_dial, relay_origin
from fjernhjelp.control.messages import Cut, Dial, SessionAction, SessionEvent
from fjernhjelp.streams.chat.service import ChatOutcome
from fjernhjelp.streams.desktop.viewer import InputEvent
from fjernhjelp.streams.files.service import FileRefusal, FileTransferRecord
from fjernhjelp.streams.shell.service import ShellOutcome
from fjernhjelp.tunnel import (
    AgentRefusal,
    CloseCode,
    MemoryReplayCache,
    PolicyRefusal,
    StreamRequest,
    Tunnel,
    WebSocketTransport,
    accept,
)
from fjernhjelp.tunnel.limits import MAX_RECORD
from fjernhjelp.tunnel.sas import SasRevealInvalid, nonce_from_reveal, sas_digits, sas_text
from fjernhjelp.tunnel.tickets import Permission, Ticket

_log = logging.getLogger(__name__)

Report = Callable[[SessionEvent], Any]

CONSENT_CLOSE: dict[ConsentAnswer, tuple[CloseCode, SessionAction]] = {
    ConsentAnswer.DENIED: (CloseCode.CONSENT_DENIED, "consent.denied"),
    ConsentAnswer.TIMED_OUT: (CloseCode.CONSENT_TIMEOUT, "consent.timed_out"),
    ConsentAnswer.NO_DISPLAY: (CloseCode.CONSENT_DENIED, "consent.no_display"),
    ConsentAnswer.FAILED: (CloseCode.CONSENT_DENIED, "consent.denied"),
}


@dataclass(frozen=True)
class SupportTerms:
    """How a Support session differs from an Access one, on the end user's side:

    - tickets name ``subject`` ("support:<session id>") instead of a machine id;
    - the technician must reveal the SAS nonce HELLO committed to (tunnel.sas) before
      consent is asked; a bad reveal ends the session (docs/tunnel.md §18.3);
    - the consent dialog shows the three words and offers the shell as a tick box, off
      by default: without the tick the session drops the shell permission, so a
      ticket that carries it still opens no shell;
    - the dialog and the indicator are started by ``window_argv`` (the one-file client
      runs them as itself, support.platform.window_command), or taken from ``ready``:
      launched ahead while the client waited, so they show without a program's start-up
      (support.session.ReadyWindows)."""

    subject: str
    window_argv: Callable[[str], list[str] | None] = lambda _program: None
    ready: Callable[[str], DialogProcess | None] = lambda _program: None
    reveal_timeout: float = 30.0


SHELL = frozenset({Permission.TERMINAL, Permission.TERMINAL_ADMIN})


@dataclass
class AgentSessions:
    """Every session running on this agent, so a "cut" from the server finds its tunnel."""

    config: AgentConfig
    identity: AgentIdentity
    machine_id: uuid.UUID
    report: Report
    find_display: Callable[[], DisplayTarget | None] = find_active_display
    live: dict[uuid.UUID, Tunnel] = field(default_factory=dict)
    sessions: dict[uuid.UUID, Session] = field(default_factory=dict)
    replay_cache: MemoryReplayCache = field(default_factory=MemoryReplayCache)
    # The control link's TLS context: relays are verified on the same terms (agent.tls).
    tls: ssl.SSLContext | None = None
    # Set for the end user's one-time Support client (support.session), None for Access.
    support: SupportTerms | None = None

    @property
    def subject(self) -> str:
        """What a ticket must name as its machine: the machine id, or Support's subject."""
        return self.support.subject if self.support is not None else str(self.machine_id)

    async def cut(self, command: Cut) -> None:
        tunnel = self.live.get(command.session_id)
        session = self.sessions.get(command.session_id)
        if session is not None and session.end_reason is None:
            # The first reason wins: a cut that arrives as the end user's "End session"
            # is closing the tunnel does not rewrite who ended it.
            session.end_reason = f"cut:{command.reason}"
        if tunnel is not None:
            _log.info("session %s cut by the server: %s", command.session_id, command.reason)
            await tunnel.close(CloseCode.REVOKED, command.reason[:60])

    async def dial(self, command: Dial) -> None:
        try:
            check_dial(
                command, server_url=self.config.server_url, server_key=self.config.server_key
            )
        except DialRefused as exc:
            # Nothing is dialled. The server hears why, and audits it.
            _log.warning("refused to dial %s: %s", relay_origin(command.relay_url), exc)
            self.report(
                SessionEvent(
                    session_id=command.session_id,
                    action="dial.refused",
                    reason=exc.reason,
                    details={"relay": relay_origin(command.relay_url)},
                )
            )
            return
        session = Session(self, command)
        self.sessions[command.session_id] = session
        try:
            await session.run()
        except Exception:
            _log.exception("session %s failed", command.session_id)
        finally:
            self.sessions.pop(command.session_id, None)


class Session:
    def __init__(self, owner: AgentSessions, command: Dial) -> None:
        self.owner = owner
        self.command = command
        self.config = owner.config
        self.consent_done = asyncio.Event()
        # Held only to keep them alive and cancel them; their results (if any) go unread.
        self.tasks: set[asyncio.Task[object]] = set()
        self.ticket: Ticket | None = None
        self.display: DisplayTarget | None = None
        self.end_reason: str | None = None
        self.clipboard_refused = False
        self.held_back: Counter[str] = Counter()  # input dropped during the current hold

    def _report(self, action: SessionAction, reason: str | None = None, **details: Any) -> None:
        self.owner.report(
            SessionEvent(
                session_id=self.command.session_id, action=action, reason=reason, details=details
            )
        )

    def _needs_consent(self, ticket: Ticket) -> bool:
        return ticket.consent_required or self.config.always_ask_consent

    def _policy(self, ticket: Ticket) -> None:
        # Runs inside the handshake, before any key confirmation: refuse early and say
        # why (REFUSE "policy"), rather than open a tunnel nobody can approve.
        if self._needs_consent(ticket) and self.display is None:
            self._report("consent.no_display", reason="no_display")
            raise PolicyRefusal("consent required, nobody at a screen")

    async def _authorize(self, request: StreamRequest) -> bool:
        await self.consent_done.wait()
        assert self.ticket is not None
        ok = services.allowed(request, self.ticket)
        reason = None if ok else "not_permitted"
        if ok and request.service == "chat" and self.display is None:
            # Nobody at a screen could read or answer it.
            ok, reason = False, "no_display"
        self._report(
            "stream.opened" if ok else "stream.refused", reason=reason, service=request.service
        )
        return ok

    async def run(self) -> None:
        self.display = await asyncio.to_thread(self.owner.find_display)
        async with websockets.connect(
            self.command.relay_url,
            ssl=for_url(self.owner.tls, self.command.relay_url),
            max_size=MAX_RECORD + 1024,
            compression=None,
            open_timeout=20,
            ping_interval=None,
        ) as ws:
            await ws.send(json.dumps({"role": "agent", "token": self.command.relay_token}))
            try:
                tunnel = await accept(
                    WebSocketTransport(ws),
                    server_key=self.config.server_key,
                    identity=self.owner.identity.private_key,
                    machine_id=self.owner.subject,
                    replay_cache=self.owner.replay_cache,
                    authorize=self._authorize,
                    policy=self._policy,
                )
            except AgentRefusal as exc:
                self._report("session.refused", reason=exc.code.slug, detail=str(exc.detail)[:200])
                return
            self.ticket = tunnel.ticket
            self.owner.live[self.command.session_id] = tunnel
            try:
                await self._serve(tunnel)
            finally:
                self.owner.live.pop(self.command.session_id, None)
                for task in self.tasks:
                    task.cancel()
                closed = await tunnel.wait_closed()
                stats = tunnel.stats
                self._report(
                    "session.ended_at_agent",
                    reason=self.end_reason or closed.name,
                    by=str(closed.by),
                    bytes_sent=stats.bytes_sent,
                    bytes_received=stats.bytes_received,
                )

    async def _serve(self, tunnel: Tunnel) -> None:
        ticket = tunnel.ticket
        assert ticket is not None
        self._report(
            "session.started",
            technician=ticket.technician.name,
            vendor=ticket.vendor_org.name,
            permissions=sorted(ticket.permissions),
        )
        words = None
        if self.owner.support is not None:
            words = await self._sas(tunnel, self.owner.support)
            if words is None:
                return
        if not await self._consent(tunnel, ticket, words):
            return
        ticket = self.ticket or ticket  # less the shell, unless the end user ticked it
        await self._send_sysinfo(tunnel)
        indicator = await self._indicator(ticket)
        unsubscribe = HOLD.subscribe(lambda held: self._hold_changed(held, indicator))
        if HOLD.held:
            self._hold_changed(True, indicator)  # another session's dialog is already up
        try:
            watchers = [asyncio.create_task(self._accept_streams(tunnel, ticket, indicator))]
            if indicator is not None:
                watchers.append(asyncio.create_task(self._watch_indicator(tunnel, indicator)))
            closed = asyncio.create_task(tunnel.wait_closed())
            await asyncio.wait([closed, *watchers], return_when=asyncio.FIRST_COMPLETED)
            for task in watchers:
                task.cancel()
            await tunnel.close(CloseCode.NORMAL)
        finally:
            unsubscribe()
            self._report_held_back()
            if indicator is not None:
                await indicator.close()

    async def _send_sysinfo(self, tunnel: Tunnel) -> None:
        info = await asyncio.to_thread(sysinfo.collect)
        await tunnel.control.send_json({"type": "sysinfo", **info.to_dict()})

    async def _sas(self, tunnel: Tunnel, terms: SupportTerms) -> tuple[str, str] | None:
        """The technician's SAS reveal, checked against HELLO's commitment: the words and
        digits to show, or None after ending the session (a bad or missing reveal may
        mean someone is in the middle)."""
        try:
            message = await asyncio.wait_for(tunnel.control.recv_json(), terms.reveal_timeout)
            nonce = nonce_from_reveal(message, tunnel.technician_random)
        except (SasRevealInvalid, TimeoutError, ValueError) as exc:
            reason = "sas_reveal_invalid" if isinstance(exc, SasRevealInvalid) else "sas_no_reveal"
            _log.warning("session %s: %s (%s)", self.command.session_id, reason, exc)
            self.end_reason = reason
            self._report("sas.failed", reason=reason)
            await tunnel.close(CloseCode.ENDED_BY_USER, reason)
            return None
        self._report("sas.shown")
        return (
            sas_text(tunnel.transcript_hash, nonce),
            sas_digits(tunnel.transcript_hash, nonce),
        )

    async def _consent(
        self, tunnel: Tunnel, ticket: Ticket, words: tuple[str, str] | None = None
    ) -> bool:
        if not self._needs_consent(ticket) and self.owner.support is None:
            await tunnel.control.send_json({"type": "consent", "state": "not_required"})
            self.consent_done.set()
            return True
        self._report("consent.asked")
        await tunnel.control.send_json({"type": "consent", "state": "asked"})
        support = self.owner.support
        permissions = services.effective(ticket)
        optional: list[str] = []
        if support is not None:
            # Support's shell is the end user's to offer, ticked in this very dialog.
            optional = ["terminal"] if Permission.TERMINAL in permissions else []
            permissions = permissions - SHELL
        outcome = await ask_consent_ticked(
            ConsentRequest(
                technician=ticket.technician.name,
                organisation=ticket.vendor_org.name,
                permissions=sorted(permissions),
                sas=words[0] if words else None,
                sas_digits=words[1] if words else None,
                optional=optional,
            ),
            display=self.display,
            timeout=self.config.consent_timeout,
            language=self.config.language,
            on_shown=lambda shown: _log_window(
                "consent dialog", shown, sas=words[0] if words else None
            ),
            _argv=support.window_argv("consent") if support is not None else None,
            _prestarted=support.ready("consent") if support is not None else None,
        )
        answer = outcome.answer
        if answer.allowed and support is not None:
            shell = "terminal" in outcome.ticked
            if not shell:
                self.ticket = replace(ticket, permissions=ticket.permissions - SHELL)
            self._report("consent.given", shell=shell, support=True)
            # The ticket always names the shell; what the end user allowed is known only
            # here, so the technician's console learns it from this message.
            granted = sorted(str(p) for p in services.effective(self.ticket or ticket))
            await tunnel.control.send_json(
                {"type": "consent", "state": "given", "permissions": granted}
            )
            self.consent_done.set()
            return True
        if answer.allowed:
            self._report("consent.given")
            await tunnel.control.send_json({"type": "consent", "state": "given"})
            self.consent_done.set()
            return True
        code, action = CONSENT_CLOSE[answer]
        self._report(action, reason=str(answer))
        with contextlib.suppress(Exception):
            await tunnel.control.send_json({"type": "consent", "state": str(answer)})
        await tunnel.close(code)
        return False

    async def _indicator(self, ticket: Ticket) -> SessionIndicator | None:
        if self.display is None:
            return None
        indicator = SessionIndicator(
            technician=ticket.technician.name,
            organisation=ticket.vendor_org.name,
            permissions=sorted(services.effective(ticket)),
            display=self.display,
            language=self.config.language,
            _argv=(
                self.owner.support.window_argv("indicator")
                if self.owner.support is not None
                else None
            ),
            _prestarted=(
                self.owner.support.ready("indicator") if self.owner.support is not None else None
            ),
        )
        try:
            await indicator.start()
        except IndicatorUnavailable as exc:
            _log.warning("no session indicator (%s)", exc)
            return None
        if indicator.shown is not None:
            _log_window("session indicator", indicator.shown)
        indicator.on_chat_shown = lambda shown: _log_window("session chat", shown)
        return indicator

    def _hold_changed(self, held: bool, indicator: SessionIndicator | None) -> None:
        if indicator is not None:
            task = asyncio.create_task(indicator.show_paused(held))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if not held:
            self._report_held_back()

    def _input_seen(self, event: InputEvent) -> None:
        if not event.held:
            self._input(event)
            return
        if not self.held_back:
            _log.warning(
                "session %s: remote input held back while a consent dialog is open",
                self.command.session_id,
            )
        self.held_back[event.kind] += 1
        _log.debug("session %s: held back %s input", self.command.session_id, event.kind)

    def _report_held_back(self) -> None:
        # One event per hold, with counts: a pointer moved across a dialog is hundreds
        # of messages, and the audit log needs to know that it happened, and how much.
        if self.held_back:
            # "<kind>_events": the audit log refuses detail names that look like secrets
            # ("key").
            counts = {f"{kind}_events": n for kind, n in sorted(self.held_back.items())}
            self.held_back.clear()
            self._report("input.held_back", reason="consent_pending", **counts)

    async def _watch_indicator(self, tunnel: Tunnel, indicator: SessionIndicator) -> None:
        how = await indicator.wait()
        self.end_reason = f"ended_by_user:{how}"
        await tunnel.close(CloseCode.ENDED_BY_USER)

    async def _accept_streams(
        self, tunnel: Tunnel, ticket: Ticket, indicator: SessionIndicator | None
    ) -> None:
        ctx = services.ServiceContext(
            ticket=ticket,
            display=self.display,
            file_roots=[str(p) for p in self.config.file_roots],
            on_file=self._file_moved,
            on_file_refusal=self._file_refused,
            on_shell=self._shell_ended,
            on_shell_started=self._shell_started,
            on_input=self._input_seen,
            chat=indicator,
            on_chat=self._chat_ended,
        )
        while True:
            request, channel = await tunnel.accept_stream()
            task = asyncio.create_task(services.run(request, channel, ctx))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _input(self, event: InputEvent) -> None:
        # Clipboard text the session may not take is an attempt worth the audit log, once
        # a session: a viewer can send thousands, and one line says what happened.
        if event.kind == "clipboard" and not event.applied and not self.clipboard_refused:
            self.clipboard_refused = True
            self._report("stream.refused", reason="not_permitted", service="clipboard")

    def _file_moved(self, record: FileTransferRecord) -> None:
        self._report(
            "file.moved",
            direction=record.direction,
            name=record.name,
            path=record.path,
            size=record.size,
            sha256=record.sha256,
        )

    def _file_refused(self, refusal: FileRefusal) -> None:
        self._report(
            "stream.refused", reason=refusal.code, service="files", op=refusal.op, path=refusal.path
        )

    def _chat_ended(self, outcome: ChatOutcome) -> None:
        # Counts only: what is typed in chat may be health information (streams/chat).
        counts = {
            "to_user": outcome.to_user,
            "from_user": outcome.from_user,
            "chars_to_user": outcome.chars_to_user,
            "chars_from_user": outcome.chars_from_user,
        }
        if outcome.ended != "closed":
            self._report("stream.refused", reason=outcome.ended, service="chat")
        self._report("chat.ended", reason=outcome.ended, **counts)

    def _shell_started(self, outcome: ShellOutcome) -> None:
        # Every shell names the OS account it runs as: "service" says nothing about
        # whether that was root.
        _log.info("shell started as %s (uid %s)", outcome.account, outcome.uid)
        self._report(
            "shell.started", run_as=outcome.run_as, account=outcome.account, uid=outcome.uid
        )

    def _shell_ended(self, outcome: ShellOutcome) -> None:
        _log.info("shell ended: %s", outcome.ended_by)
        if outcome.account is None:
            if outcome.ended_by != "channel_closed":
                self._report(
                    "stream.refused",
                    reason=(outcome.error or outcome.ended_by)[:120],
                    service="shell",
                    run_as=outcome.run_as,
                )
            return
        self._report(
            "shell.ended",
            reason=outcome.ended_by,
            run_as=outcome.run_as,
            account=outcome.account,
            uid=outcome.uid,
            exit_status=outcome.exit_status,
            bytes_in=outcome.bytes_in,
            bytes_out=outcome.bytes_out,
        )


def _log_window(what: str, shown: ShownWindow, *, sas: str | None = None) -> None:
    # Where the window and its buttons are: for support staff reading the agent log, and
    # for tests that press the buttons with xdotool. Nothing in it is secret: the check
    # words, where the dialog shows them, are read aloud over the telephone anyway, and
    # knowing them after the handshake helps no one in the middle (docs/tunnel.md §18.2).
    layout: dict[str, object] = {"window": shown.window, "buttons": shown.buttons}
    if sas is not None:
        layout["sas"] = sas
    _log.info("%s shown: %s", what, json.dumps(layout))
