"""The agents connected to this node, and the control-link endpoint they connect to.

An agent connects to ``/agent/control``; the server signs a fresh nonce with the key the
agent pinned, the agent signs it back with its identity key, and from then on the link
carries presence reports from the agent and dial / cut commands to it (those are
server/hub_commands.py's; the link itself server/agent_link.py's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from fjernhjelp.audit.log import without_secret_keys
from fjernhjelp.config import Settings
from fjernhjelp.control import statements
from fjernhjelp.control.messages import (
    Challenge,
    Hello,
    MalformedMessage,
    Report,
    SessionEvent,
    SupportHello,
    Welcome,
    b64,
    parse_agent_message,
    unb64,
)
from fjernhjelp.machines import connections
from fjernhjelp.machines import registry as machines
from fjernhjelp.machines.models import Machine, MachineStatus
from fjernhjelp.refusals import AgentRefused
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote import support_tunnel
from fjernhjelp.remote.models import RemoteSession
from fjernhjelp.server.admission import LoginAdmission
from fjernhjelp.server.agent_link import AgentLink, CloseCode
from fjernhjelp.server.batches import BatchFailed, GroupCommit
from fjernhjelp.server.cluster import Cluster
from fjernhjelp.server.hub_commands import HubCommands
from fjernhjelp.server.probes import Kind
from fjernhjelp.server.recorded import refusals_kept
from fjernhjelp.server.relay import Relay
from fjernhjelp.server.security import client_address
from fjernhjelp.server.state import AppState
from fjernhjelp.server.ws_guard import (
    AGENT_HELLO_MAX,
    TOO_BIG,
    Cap,
    MessageTooBig,
    receive_text_limited,
    refuse_busy,
    refuse_upgrade,
)

_log = logging.getLogger(__name__)

HELLO_TIMEOUT = 20.0
HEARTBEAT_SECONDS = 30


@dataclass(slots=True)
class _Login:
    """One admitted socket's login: where from, and whether admission counts it."""

    source: str | None
    counted: bool = True


async def _next_text(websocket: WebSocket) -> str:
    """The link's next text message.

    Not ``receive_text()``: once a send of ours fails because the other end has begun to
    close (a Cut crossing the client's own close), Starlette marks the socket closed on
    our side and refuses every later ``receive_text()``, although what the other end
    sent before its close is still queued. That lost a Support client's last report
    (``session.ended_at_agent``): it is sent just before the client closes its link.
    ``receive()`` hands over what is queued until the disconnect itself."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if not isinstance(text, str):
        raise MalformedMessage("expected a text message")
    return text


class AgentHub(HubCommands):
    def __init__(self, state: AppState, cluster: Cluster, relay: Relay) -> None:
        self._state = state
        self.cluster = cluster
        self.relay = relay
        self.links: dict[uuid.UUID, AgentLink] = {}
        cluster.on_message(self._on_cluster_message)
        # Logins, presence and departures are written in group commits (batches.py): a
        # node's agents coming back at once cost a few transactions, not one each.
        self._logins: GroupCommit[connections.LoginAttempt, uuid.UUID | AgentRefused] = GroupCommit(
            self._write_logins, name="agent logins"
        )
        self._departures: GroupCommit[connections.Departure, None] = GroupCommit(
            self._write_departures, name="agent departures", retry=True
        )
        self._presence: GroupCommit[str, None] = GroupCommit(
            self._write_presence, name="agent presence"
        )
        # One at a time, from one task: a storm of links ending at once asked Redis's
        # pool for more connections than it has (MaxConnectionsError).
        self._absence: GroupCommit[str, None] = GroupCommit(
            self._write_absence, name="agent absence"
        )
        # Logins in progress, and whether one more is answered in time (admission.py).
        self.admission = LoginAdmission()
        # Sends from the cluster bus under way (_send_soon): held so they are not lost.
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def settings(self) -> Settings:
        return self._state.settings

    async def _write_logins(
        self, attempts: Sequence[connections.LoginAttempt]
    ) -> list[uuid.UUID | AgentRefused]:
        def write() -> list[uuid.UUID | AgentRefused]:
            state = self._state
            with state.db_sessions() as db:
                results = connections.log_in(
                    db, attempts, node_id=self.cluster.node_id, now=state.now()
                )
                db.commit()
                return results

        return await run_in_threadpool(write)

    async def _write_departures(self, departures: Sequence[connections.Departure]) -> list[None]:
        def write() -> None:
            with self._state.db_sessions() as db:
                connections.depart(db, departures, now=self._state.now())
                db.commit()

        await run_in_threadpool(write)
        return [None] * len(departures)

    async def _write_presence(self, machine_ids: Sequence[str]) -> list[None]:
        await self.cluster.refresh(machine_ids)
        return [None] * len(machine_ids)

    async def _write_absence(self, machine_ids: Sequence[str]) -> list[None]:
        for machine_id in machine_ids:
            await self.cluster.mark_offline(machine_id)
        return [None] * len(machine_ids)

    # -- the endpoint -----------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        """The main port's endpoint: the upgrade's admission, then ``serve_admitted``."""
        retry_after = self.admission.refusal()
        if retry_after is not None:
            # Before anything that costs: a node busy with a storm of logins tells the
            # agent when to come back.
            with contextlib.suppress(Exception):
                await refuse_busy(websocket, retry_after)
            return
        peer = websocket.client.host if websocket.client else None
        source = client_address(
            peer, websocket.headers.get("x-forwarded-for"), self._state.settings
        )
        refused = self.admit_pending(source)
        if refused is not None:
            with contextlib.suppress(Exception):
                await refuse_upgrade(websocket, refused)
            return
        await self.serve_admitted(websocket, source)

    def admit_pending(self, source: str | None) -> Cap | None:
        """Count a socket that has not proved its key against its address's cap and the
        node's (ws_guard.py), and as a login in progress (admission.py); the cap that
        refuses it, noted as probing, or None. An admitted socket is released by
        ``serve_admitted``, whatever becomes of it. Counted here, at the upgrade, and not
        when the handler starts: upgrades the lean listener takes in one pass of the loop
        would each pass the admission check before any of them was counted."""
        refused = self._state.unauthenticated_sockets.admit(source)
        if refused is not None:
            self.note_probe(source, refused.value)
        else:
            self.admission.begin()
        return refused

    def note_probe(self, source: str | None, kind: str) -> None:
        """A refusal that counts as probing of the control link (server/probes.py)."""
        self._state.probes.note(source, kind, "WEBSOCKET", "/agent/control", self._state.now())

    async def serve_admitted(self, websocket: WebSocket, source: str | None) -> None:
        """An agent's (or a Support client's) control link whose upgrade was admitted
        (the node not over its admission limit, the socket counted by
        ``admit_pending``): the login, then the link until it ends. The lean listener
        (control_socket.py) admits before the upgrade, so refusals there are HTTP."""
        pending = self._state.unauthenticated_sockets
        answered = False
        login = _Login(source)
        try:
            await websocket.accept()
            machine = await self._login(websocket, login)
            answered = True
        except (
            AgentRefused,
            BatchFailed,
            MessageTooBig,
            ValueError,
            TimeoutError,
            WebSocketDisconnect,
        ) as exc:
            answered = isinstance(exc, AgentRefused)
            code = (
                CloseCode.REFUSED
                if isinstance(exc, AgentRefused)
                else CloseCode.TRY_AGAIN
                if isinstance(exc, BatchFailed)
                else TOO_BIG
                if isinstance(exc, MessageTooBig)
                else CloseCode.MALFORMED
            )
            if isinstance(exc, MessageTooBig):
                self.note_probe(source, Kind.MESSAGE_TOO_BIG)
            with contextlib.suppress(Exception):
                await websocket.close(code, getattr(exc, "reason", "refused")[:100])
            return
        finally:
            pending.release(source)
            if login.counted:
                self.admission.end(answered)
        if isinstance(machine, RemoteSession):
            await self._serve_support(websocket, machine.id, source)
            return
        # The id, not a row: an idle link keeps nothing of the login's transaction.
        machine_id = machine
        link = AgentLink(machine_id, websocket)
        previous = self.links.get(machine_id)
        self.links[machine_id] = link
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous.websocket.close(CloseCode.REPLACED, "replaced")
        try:
            try:
                await self._presence.submit(str(machine_id))
            except BatchFailed:
                # Redis away: the link is served all the same (the login is written), and
                # the node's heartbeat writes every link's presence again once it is back
                # (runtime.py, refresh_presence). Outside this try, the failure left the
                # link in the table for good, its departure never written.
                _log.warning("presence of %s not written at its login", machine_id)
            await link.send(
                Welcome(
                    machine_id=machine_id, heartbeat_seconds=HEARTBEAT_SECONDS
                ).model_dump_json()
            )
            await self._receive(link, machine_id, source)
        except (WebSocketDisconnect, MalformedMessage):
            pass
        finally:
            if self.links.get(machine_id) is link:
                del self.links[machine_id]
                await self._absence.submit(str(machine_id))
                # Written before the handler ends (a node stopping waits for it), retried
                # until it is: the link is gone, its record must not be.
                await self._departures.submit(connections.Departure(machine_id, source))
            with contextlib.suppress(Exception):
                await websocket.close()

    async def _login(self, websocket: WebSocket, login: _Login) -> uuid.UUID | RemoteSession:
        source = login.source
        nonce = os.urandom(statements.NONCE_BYTES)
        signature = self._state.keys.signing.sign(statements.server_challenge_statement(nonce))
        await websocket.send_text(
            Challenge(nonce=b64(nonce), signature=b64(signature)).model_dump_json()
        )
        silent = asyncio.get_running_loop().call_later(
            self.settings.ws_silent_seconds, self._silent, login
        )
        try:
            raw = await asyncio.wait_for(
                receive_text_limited(websocket, AGENT_HELLO_MAX), HELLO_TIMEOUT
            )
        finally:
            silent.cancel()
        if not login.counted:
            # It spoke after all: its login is work in progress again.
            login.counted = True
            self.admission.begin()
        hello = parse_agent_message(raw)
        if isinstance(hello, SupportHello):
            return await run_in_threadpool(self._authenticate_support, hello, nonce, source)
        if not isinstance(hello, Hello):
            raise MalformedMessage("expected hello")
        proof = unb64(hello.signature, 64)
        result = await self._logins.submit(
            connections.LoginAttempt(hello.machine_id, nonce, proof, hello.info, source)
        )
        if isinstance(result, AgentRefused):
            raise result
        return result

    def _silent(self, login: _Login) -> None:
        """An admitted socket has not said its hello within ws_silent_seconds of the
        challenge (an agent answers within a round trip). It costs the node nothing while
        it waits, so it stops counting as a login in progress: sockets held open without
        a word had kept a node's admission full, and every agent told to wait
        (ws_guard.py). And it is a strike against its source."""
        login.counted = False
        self.admission.end(answered=False)
        self.note_probe(login.source, Kind.SILENT_SOCKET)
        if self._state.unauthenticated_sockets.strike(login.source):
            _log.warning("%s: its sockets keep silent; its allowance is cut", login.source)

    # -- the one-time Support client --------------------------------------------------
    #
    # It logs in on the same endpoint with its end-user token and in-memory key
    # (remote.support_tunnel.client_login) and is then a link like an agent's, keyed by its
    # Support session's id: dial and cut reach it as they reach an agent.

    def _authenticate_support(
        self, hello: SupportHello, nonce: bytes, source: str | None
    ) -> RemoteSession:
        state = self._state
        with state.db_sessions() as db:
            with refusals_kept(db):
                row = support_tunnel.client_login(
                    db,
                    session_id=hello.session_id,
                    token=hello.token,
                    public_key=unb64(hello.public_key, 32),
                    nonce=nonce,
                    signature=unb64(hello.signature, 64),
                    now=state.now(),
                    source_address=source,
                    client_version=hello.client_version,
                    way=hello.way,
                )
            db.commit()
            return row

    def _close_when_over(self, link: AgentLink) -> None:
        """A Support client's session is over (a cut is how the server says so, for
        every reason). The link stays open for the client's last reports, which it
        sends before closing the link itself; one that lingers past the grace time is
        closed here. Never closed first, at once: that lost the client's own account of
        how the session ended."""
        if link.closer is not None:
            return
        grace = self._state.settings.support_link_grace_seconds

        async def close_later() -> None:
            await asyncio.sleep(grace)
            _log.info(
                "Support client %s still connected after its session: closing", link.machine_id
            )
            with contextlib.suppress(Exception):
                await link.websocket.close(CloseCode.SESSION_OVER, "session_over")

        link.closer = asyncio.create_task(close_later())

    async def _serve_support(
        self, websocket: WebSocket, session_id: uuid.UUID, source: str | None
    ) -> None:
        link = AgentLink(session_id, websocket, support=True)
        previous = self.links.get(session_id)
        self.links[session_id] = link
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous.websocket.close(CloseCode.REPLACED, "replaced")
        await self.cluster.mark_online(str(session_id))
        try:
            await link.send(
                Welcome(
                    machine_id=session_id, heartbeat_seconds=HEARTBEAT_SECONDS
                ).model_dump_json()
            )
            while True:
                message = parse_agent_message(await _next_text(websocket))
                if not isinstance(message, SessionEvent) or message.session_id != session_id:
                    # A client speaks for its own session only, and reports nothing else.
                    raise MalformedMessage("not an event of this Support session")
                try:
                    await run_in_threadpool(self._support_event, message, source)
                except Exception:
                    # The event is lost, not the link: the client's next reports (its
                    # last one above all) still have somewhere to go.
                    _log.exception(
                        "Support client %s: event %s not recorded", session_id, message.action
                    )
                if message.action == "dial.refused":
                    await self.cut(session_id, session_id, "relay_refused")
        except (WebSocketDisconnect, MalformedMessage):
            pass
        finally:
            if link.closer is not None:
                link.closer.cancel()
            if self.links.get(session_id) is link:
                del self.links[session_id]
                await self.cluster.mark_offline(str(session_id))
            with contextlib.suppress(Exception):
                await websocket.close()

    def _support_event(self, message: SessionEvent, source: str | None) -> None:
        with self._state.db_sessions() as db:
            details, dropped = without_secret_keys(dict(message.details))
            if dropped:
                details["refused_detail_names"] = sorted(dropped)
            if support_tunnel.record_client_event(
                db,
                session_id=message.session_id,
                action=message.action,
                reason=message.reason,
                details=details,
                source_address=source,
            ):
                db.commit()

    async def _receive(self, link: AgentLink, machine_id: uuid.UUID, source: str | None) -> None:
        while True:
            raw = await _next_text(link.websocket)
            message = parse_agent_message(raw)
            if isinstance(message, Report):
                if not await run_in_threadpool(self._report, machine_id, message, source):
                    # Removed while connected (a disconnect that crossed this link's
                    # login): the link ends here at the latest.
                    await link.websocket.close(CloseCode.REFUSED, "machine_revoked")
                    return
            elif isinstance(message, SessionEvent) and message.action == "dial.refused":
                own = await run_in_threadpool(self._dial_refused, machine_id, message, source)
                if own:
                    # The technician's end waits at the relay for an agent that will not
                    # come: end the session now, with the reason.
                    await self.cut(message.session_id, machine_id, "relay_refused")
            elif isinstance(message, SessionEvent):
                await run_in_threadpool(self._event, machine_id, message, source)
            else:
                raise MalformedMessage("hello twice")

    def _report(self, machine_id: uuid.UUID, message: Report, source: str | None) -> bool:
        """Store the report; False if the machine is no longer active."""
        with self._state.db_sessions() as db:
            machine = db.get(Machine, machine_id)
            if machine is None or machine.status != MachineStatus.ACTIVE:
                return False
            caller = machines.agent_caller(machine, self._state.now(), source)
            machines.update_info(db, caller, machine, message.info)
            db.commit()
            return True

    def _event(self, machine_id: uuid.UUID, message: SessionEvent, source: str | None) -> None:
        with self._state.db_sessions() as db:
            machine = db.get(Machine, machine_id)
            if machine is None or machine.status != MachineStatus.ACTIVE:
                return
            accepted = remote_sessions.record_agent_event(
                db,
                machines.agent_caller(machine, self._state.now(), source),
                machine,
                session_id=message.session_id,
                action=message.action,
                reason=message.reason,
                details=_agent_details(machine_id, message),
            )
            if accepted:
                db.commit()
            else:
                _log.warning("agent %s reported an event for a session not its own", machine_id)

    def _dial_refused(
        self, machine_id: uuid.UUID, message: SessionEvent, source: str | None
    ) -> bool:
        """Audit an agent's refusal to dial; True if the session is this machine's."""
        with self._state.db_sessions() as db:
            machine = db.get(Machine, machine_id)
            if machine is None:
                return False
            own = remote_sessions.record_dial_refusal(
                db,
                machines.agent_caller(machine, self._state.now(), source),
                machine,
                session_id=message.session_id,
                reason=message.reason,
                details=_agent_details(machine_id, message),
            )
            db.commit()
            return own

    async def refresh_presence(self) -> None:
        await self.cluster.refresh(str(m) for m in list(self.links))


def _agent_details(machine_id: uuid.UUID, message: SessionEvent) -> dict[str, Any]:
    """An agent's event details as the audit log takes them: a name the log refuses
    (``key``, ``token``…) is left out and named, instead of ending the control link."""
    details, dropped = without_secret_keys(dict(message.details))
    if dropped:
        _log.warning("agent %s sent refused detail names %s", machine_id, dropped)
        details["refused_detail_names"] = sorted(dropped)
    return details
