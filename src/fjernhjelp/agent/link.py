"""The agent's control link: one outbound WebSocket to the server, kept up for ever.

On connect the server proves it holds the signing key the agent pinned at install time,
the agent proves it holds its identity key; then the link carries presence reports one
way and "dial the relay" / "cut this session" commands the other. Any failure closes the
link and the agent reconnects after a jittered, growing delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import websockets
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fjernhjelp.agent.backoff import Backoff, parse_retry_after
from fjernhjelp.control import statements
from fjernhjelp.control.messages import (
    Challenge,
    Cut,
    Dial,
    Hello,
    MachineInfo,
    MalformedMessage,
    Report,
    SessionEvent,
    SupportHello,
    Welcome,
    b64,
    parse_server_message,
    unb64,
)

_log = logging.getLogger(__name__)


async def _idle() -> None:
    await asyncio.Event().wait()


class ServerNotTrusted(Exception):
    """The server could not prove it holds the pinned signing key."""


@dataclass
class LinkConfig:
    control_url: str  # ws(s)://host/agent/control
    server_public_key: Ed25519PublicKey
    machine_id: uuid.UUID
    identity: Ed25519PrivateKey
    ssl: object | None = None  # an ssl.SSLContext for wss with a private CA
    # The end user's one-time Support client: ``machine_id`` is then its Support
    # session's id and this the end-user token it got for it (remote.support).
    support_token: str | None = None
    client_version: str = ""


class ControlLink:
    def __init__(
        self,
        config: LinkConfig,
        *,
        machine_info: Callable[[], MachineInfo],
        # A coroutine, not any awaitable: each dial runs as its own task.
        on_dial: Callable[[Dial], Coroutine[Any, Any, None]],
        on_cut: Callable[[Cut], Awaitable[None]],
        backoff: Backoff | None = None,
    ) -> None:
        self._config = config
        self._machine_info = machine_info
        self._on_dial = on_dial
        self._on_cut = on_cut
        self._backoff = backoff or Backoff()
        self._ws: websockets.ClientConnection | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
        self._sessions: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self.connections = 0  # how many times the link came up (tests, diagnostics)

    def report_event(self, event: SessionEvent) -> None:
        """Queue an audit report; sent when the link is up (kept across reconnects)."""
        try:
            self._outbox.put_nowait(event.model_dump_json())
        except asyncio.QueueFull:
            _log.error("control link outbox full; dropping %s", event.action)

    async def flush(self, timeout: float) -> None:  # noqa: ASYNC109 - a bound, not a deadline
        """Wait (at most ``timeout`` seconds) until the queued reports are handed to the
        socket: the Support client's last events before it exits."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), timeout)

    async def close(self) -> None:
        """Close the link from this end, with the closing handshake: what was sent
        before reaches the server ahead of the close (the Support client, its last
        reports flushed)."""
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    async def run_forever(self) -> None:
        while True:
            started = asyncio.get_running_loop().time()
            retry_after = None
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except ServerNotTrusted as exc:
                _log.error("server not trusted: %s", exc)
            except websockets.InvalidStatus as exc:
                # A busy node refuses the upgrade (503) and says when to come back.
                retry_after = parse_retry_after(exc.response.headers.get("Retry-After"))
                _log.info("control link refused: %s", exc)
            except (OSError, websockets.WebSocketException, MalformedMessage) as exc:
                _log.info("control link down: %s", exc)
            finally:
                self.connected.clear()
            delay = self._backoff.after(
                asyncio.get_running_loop().time() - started, retry_after=retry_after
            )
            _log.info("reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)

    async def run_once(self, on_busy: Callable[[float], None] | None = None) -> None:
        """One connection, until it drops: raises what ended it (ServerNotTrusted, a
        closed socket, a malformed message). The Support client runs this, not
        :meth:`run_forever`: a server it cannot trust is a reason to stop, not retry.

        A busy node's 503 with Retry-After (server/admission.py) is not the end: it
        refused before the upgrade, before anything of this client was shown, and said
        when to come back; the link waits that (bounded and jittered by the back-off,
        ``on_busy`` told how long) and tries again, until its caller gives up."""
        while True:
            try:
                await self._run_once()
                return
            except websockets.InvalidStatus as exc:
                told = parse_retry_after(exc.response.headers.get("Retry-After"))
                if exc.response.status_code != 503 or told is None:
                    raise
                delay = self._backoff.after(0.0, retry_after=told)
                _log.info("control link: the node is busy, again in %.1f s", delay)
                if on_busy is not None:
                    on_busy(delay)
                await asyncio.sleep(delay)

    async def _run_once(self) -> None:
        async with websockets.connect(
            self._config.control_url,
            ssl=self._config.ssl,
            max_size=64 * 1024,
            compression=None,
            open_timeout=20,
            ping_interval=30,
            ping_timeout=30,
        ) as ws:
            self._ws = ws
            await self._authenticate(ws)
            self.connections += 1
            self.connected.set()
            sender = asyncio.create_task(self._send_outbox(ws))
            # A Support client has no machine to report on.
            reporter = asyncio.create_task(
                self._report_changes(ws) if self._config.support_token is None else _idle()
            )
            try:
                async for raw in ws:
                    message = parse_server_message(raw)
                    if isinstance(message, Dial):
                        # Sessions outlive this loop iteration; keep a reference so the
                        # task is not garbage-collected mid-session.
                        task = asyncio.create_task(self._on_dial(message))
                        self._sessions.add(task)
                        task.add_done_callback(self._sessions.discard)
                    elif isinstance(message, Cut):
                        await self._on_cut(message)
                    else:
                        raise MalformedMessage(f"unexpected {message.type} after login")
            finally:
                sender.cancel()
                reporter.cancel()
                for task in (sender, reporter):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _authenticate(self, ws: websockets.ClientConnection) -> None:
        first = parse_server_message(await asyncio.wait_for(ws.recv(), 20))
        if not isinstance(first, Challenge):
            raise MalformedMessage("expected a challenge")
        nonce = unb64(first.nonce, statements.NONCE_BYTES)
        try:
            self._config.server_public_key.verify(
                unb64(first.signature, 64), statements.server_challenge_statement(nonce)
            )
        except InvalidSignature as exc:
            raise ServerNotTrusted("challenge not signed by the pinned server key") from exc
        # Our own randomness goes into nothing the server chose alone: the proof binds
        # the server's fresh nonce and our machine id.
        hello: Hello | SupportHello
        if self._config.support_token is not None:
            public = self._config.identity.public_key().public_bytes_raw()
            proof = self._config.identity.sign(
                statements.support_client_proof_statement(nonce, self._config.machine_id, public)
            )
            hello = SupportHello(
                session_id=self._config.machine_id,
                token=self._config.support_token,
                public_key=b64(public),
                signature=b64(proof),
                client_version=self._config.client_version[:32],
            )
        else:
            proof = self._config.identity.sign(
                statements.agent_proof_statement(nonce, self._config.machine_id)
            )
            hello = Hello(
                machine_id=self._config.machine_id,
                signature=b64(proof),
                info=self._machine_info(),
            )
        await ws.send(hello.model_dump_json())
        welcome = parse_server_message(await asyncio.wait_for(ws.recv(), 20))
        if not isinstance(welcome, Welcome) or welcome.machine_id != self._config.machine_id:
            raise MalformedMessage("expected a welcome for this machine")

    async def _send_outbox(self, ws: websockets.ClientConnection) -> None:
        while True:
            item = await self._outbox.get()
            try:
                await ws.send(item)
            except Exception:
                # Put it back for the next connection, then let the link fail.
                with contextlib.suppress(asyncio.QueueFull):
                    self._outbox.put_nowait(item)
                raise
            finally:
                self._outbox.task_done()  # counted for flush(), sent or put back

    async def _report_changes(self, ws: websockets.ClientConnection) -> None:
        last = self._machine_info()
        while True:
            await asyncio.sleep(15)
            now = self._machine_info()
            if now != last:
                await ws.send(Report(info=now).model_dump_json())
                last = now
