"""``/relay/{session_id}``: where the technician's and the agent's sockets meet.

The first message on the socket is a small JSON text, ``{"role": ..., "token": ...}``:
the one-time relay token for that end (never in the URL, which proxies and access logs
keep), at most ``ws_guard.RELAY_JOIN_MAX`` bytes. After it, only binary messages pass,
each at most a tunnel record, copied unread to the other end. Until the token is checked
the socket counts against its address's cap of unauthenticated sockets (ws_guard.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid

from fastapi import WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from fjernhjelp.refusals import RelayRefused
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.server.late_ends import LateEnd, LateEnds
from fjernhjelp.server.probes import Kind
from fjernhjelp.server.recorded import refusals_kept
from fjernhjelp.server.relay import DuplicateEnd, EndClosed, Relay, Role
from fjernhjelp.server.relay import Outcome as RelayOutcome
from fjernhjelp.server.security import client_address
from fjernhjelp.server.state import AppState
from fjernhjelp.server.unavailable import classify
from fjernhjelp.server.ws_guard import (
    RELAY_JOIN_MAX,
    TOO_BIG,
    MessageTooBig,
    receive_text_limited,
    refuse_upgrade,
)

_log = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0
REFUSED = 4403


class StarletteEnd:
    """A Starlette WebSocket as one end of the relay."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def recv(self) -> bytes:
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            raise EndClosed
        data = message.get("bytes")
        if data is None:
            # The tunnel is binary only; a text message is not ours to pass on.
            raise EndClosed
        return data

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise EndClosed from exc

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)


class RelayEndpoint:
    def __init__(self, state: AppState, relay: Relay) -> None:
        self._state = state
        self.relay = relay
        # Ends the database could not take when they happened (late_ends.py).
        self.late_ends = LateEnds()

    async def serve(self, websocket: WebSocket, session_id: str) -> None:
        peer = websocket.client.host if websocket.client else None
        source = client_address(
            peer, websocket.headers.get("x-forwarded-for"), self._state.settings
        )
        pending = self._state.unauthenticated_sockets
        refused = pending.admit(source)
        if refused is not None:
            self._probe(source, refused.value, websocket)
            with contextlib.suppress(Exception):
                await refuse_upgrade(websocket, refused)
            return
        silent: asyncio.TimerHandle | None = None
        try:
            await websocket.accept()
            sid = uuid.UUID(session_id)
            silent = asyncio.get_running_loop().call_later(
                self._state.settings.ws_silent_seconds, self.silent, source, websocket.url.path
            )
            raw = await asyncio.wait_for(
                receive_text_limited(websocket, RELAY_JOIN_MAX), AUTH_TIMEOUT
            )
            silent.cancel()  # it spoke: the token's check below may take its time
            auth = json.loads(raw)
            role = Role(auth["role"])
            token = str(auth["token"])
            await run_in_threadpool(self.check_join, sid, role, token, source)
        except MessageTooBig as exc:
            self._probe(source, Kind.MESSAGE_TOO_BIG, websocket)
            with contextlib.suppress(Exception):
                await websocket.close(TOO_BIG, exc.reason)
            return
        except (
            RelayRefused,
            ValueError,
            KeyError,
            TypeError,
            TimeoutError,
            WebSocketDisconnect,
            RuntimeError,
        ) as exc:
            with contextlib.suppress(Exception):
                await websocket.close(REFUSED, getattr(exc, "reason", "refused"))
            return
        finally:
            if silent is not None:
                silent.cancel()
            pending.release(source)
        end = StarletteEnd(websocket)
        with contextlib.suppress(DuplicateEnd):
            await self.relay.join(str(sid), role, end)

    def _probe(self, source: str | None, kind: str, websocket: WebSocket) -> None:
        self.note_probe(source, kind, websocket.url.path)

    def silent(self, source: str | None, path: str) -> None:
        """A relay socket let in has not sent its join within ws_silent_seconds (a
        browser or an agent sends it as the socket opens): a strike against its source
        (ws_guard.py), noted as probing."""
        self.note_probe(source, Kind.SILENT_SOCKET, path)
        if self._state.unauthenticated_sockets.strike(source):
            _log.warning("%s: its relay sockets keep silent; its allowance is cut", source)

    def note_probe(self, source: str | None, kind: str, path: str) -> None:
        self._state.probes.note(source, kind, "WEBSOCKET", path, self._state.now())

    def check_join(self, sid: uuid.UUID, role: Role, token: str, source: str | None) -> None:
        """The end's one-time token, checked and audited (joined or refused); raises
        RelayRefused. Runs in a worker thread: it is a database transaction."""
        state = self._state
        with state.db_sessions() as db:
            with refusals_kept(db):
                remote_sessions.join_relay(
                    db,
                    session_id=sid,
                    role=str(role),
                    token=token,
                    now=state.now(),
                    source_address=source,
                )
            db.commit()

    async def paired(self, session_id: str) -> None:
        await run_in_threadpool(self._mark_active, uuid.UUID(session_id))

    def _mark_active(self, sid: uuid.UUID) -> None:
        with self._state.db_sessions() as db:
            remote_sessions.mark_active(db, sid, self._state.now())
            db.commit()

    async def ended(self, outcome: RelayOutcome) -> None:
        end = LateEnd(
            uuid.UUID(outcome.session_id),
            self._state.now(),
            outcome.reason,
            outcome.bytes_from_technician,
            outcome.bytes_from_agent,
        )
        try:
            await run_in_threadpool(self._end, end)
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            # The database is away: the end is recorded when it is back, as it was.
            self.late_ends.keep(end)
            _log.warning(
                "session %s ended during %s: recorded when it is back", end.session_id, kind
            )

    def _end(self, end: LateEnd) -> None:
        with self._state.db_sessions() as db:
            end.record(db, late=False)
            db.commit()
