"""What a WebSocket may cost before it has proved anything.

Three bounds, cheapest first:

- ``PROTOCOL_MAX_MESSAGE`` is given to uvicorn (``ws_max_size``): no message larger than
  the largest any endpoint accepts after authentication (a tunnel record) is ever
  buffered; the protocol closes with 1009 first.
- Until a socket has authenticated, each message must fit a few KiB (the relay's join
  message, the agent's hello); a larger one closes it with 1009 before it is parsed.
- Each source address may hold only so many sockets that have not authenticated yet
  (``Settings.ws_unauthenticated_per_address``); one more is refused at the upgrade.
- The node as a whole may hold only so many (``Settings.ws_unauthenticated_total``):
  logins in progress on both listeners and relay joins together. Per address alone, an
  attacker with many addresses could keep any number of sockets, each holding memory and
  a hello timeout, open; beyond the total every new one is refused at the upgrade and
  comes back with its backoff, so a flood costs the node a bounded amount.
- A source whose sockets keep saying nothing (``Settings.ws_silent_strikes`` of them in
  ``ws_silent_window_seconds``, each silent for ``ws_silent_seconds`` after it was let
  in) keeps only ``ws_silent_allowance`` sockets until its strikes are old. An agent says
  its hello within a round trip of the challenge and a browser its join as it opens, so
  honest sources are not struck, however many machines share the address; a source that
  opens sockets to hold them is, after its first allowance: at 32 a source, 47 addresses
  kept a node's admission full (server/admission.py) and 64 its cap, so that every agent
  was told to wait; at 2, it takes 750 and 1,024 (and a silent socket leaves admission's
  count after ``ws_silent_seconds``, so the attacker must open them anew all the time).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import WebSocket, WebSocketDisconnect
from starlette.responses import Response

from fjernhjelp import metrics
from fjernhjelp.addresses import source_prefix
from fjernhjelp.control.messages import MAX_MESSAGE_BYTES as CONTROL_MAX_MESSAGE
from fjernhjelp.server.probes import Kind
from fjernhjelp.tunnel.limits import MAX_RECORD

PROTOCOL_MAX_MESSAGE = max(MAX_RECORD, CONTROL_MAX_MESSAGE)
RELAY_JOIN_MAX = 1024  # {"role": ..., "token": ...}: a role and a 128-character token
AGENT_HELLO_MAX = 8 * 1024  # machine id, signature, host name, OS, up to 32 user names
TOO_BIG = 1009  # RFC 6455 "message too big"
TRY_AGAIN_LATER = 1013  # RFC 6455; used only where the server cannot answer HTTP 429


class MessageTooBig(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds {limit}")
        self.reason = "message_too_big"


async def receive_text_limited(websocket: WebSocket, limit: int) -> str:
    """The next text message, refused if it is larger than ``limit`` bytes."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raise ValueError("expected a text message")
    size = len(text.encode("utf-8"))
    if size > limit:
        raise MessageTooBig(size, limit)
    return text


class Cap(enum.StrEnum):
    """Which bound refused a socket; the value is its probe kind."""

    ADDRESS = Kind.SOCKET_CAP
    NODE = Kind.NODE_SOCKET_CAP
    SILENT = Kind.SILENT_SOCKET_CAP  # the source's sockets kept silent: its allowance is cut

    @property
    def http_status(self) -> str:
        """The refused upgrade's status line: the source's doing (429), or the node's (503)."""
        if self is Cap.NODE:
            return "503 Service Unavailable"
        return "429 Too Many Requests"


def source_group(address: str | None) -> str | None:
    """What one source holds (addresses.source_prefix: an IPv6 address by its /64)."""
    return None if address is None else source_prefix(address)


@dataclass(frozen=True, slots=True)
class SilenceRule:
    """When a source's silent sockets cut its allowance (module docstring)."""

    strikes: int = 32
    window_seconds: float = 60.0
    allowance: int = 2
    # Sources whose strikes are remembered at once; beyond it the oldest are forgotten
    # first, so a flood from many addresses costs bounded memory.
    max_sources: int = 65_536


class PendingSockets:
    """Counts the sockets still waiting to authenticate, per source (``source_group``)
    and in all, and the strikes of sources whose sockets said nothing."""

    def __init__(
        self,
        per_address: int,
        total: int,
        silence: SilenceRule | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_address = per_address
        self.total = total
        self.silence = silence or SilenceRule()
        self._clock = clock
        self._counts: dict[str | None, int] = {}
        self._all = 0
        # source -> (when its first strike of the window came, strikes since)
        self._strikes: dict[str | None, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def admit(self, address: str | None) -> Cap | None:
        """Count one more for ``address``: None, or the cap that refuses it (counted
        in the metrics; the caller notes the probe and refuses the upgrade)."""
        address = source_group(address)
        with self._lock:
            count = self._counts.get(address, 0)
            refused = (
                Cap.ADDRESS
                if count >= self.per_address
                else Cap.SILENT
                if count >= self.silence.allowance and self._struck(address)
                else Cap.NODE
                if self._all >= self.total
                else None
            )
            if refused is None:
                self._counts[address] = count + 1
                self._all += 1
        if refused is not None:
            metrics.socket_refused(refused.name.lower())
        return refused

    def release(self, address: str | None) -> None:
        address = source_group(address)
        with self._lock:
            count = self._counts.get(address, 0) - 1
            if count >= 0:
                self._all -= 1
            if count > 0:
                self._counts[address] = count
            else:
                self._counts.pop(address, None)

    def strike(self, address: str | None) -> bool:
        """One of ``address``'s sockets was let in and said nothing in time. True when
        the source's allowance is cut from now on (the caller notes it as probing)."""
        address = source_group(address)
        now = self._clock()
        rule = self.silence
        with self._lock:
            first, strikes = self._strikes.pop(address, (now, 0))
            if now - first >= rule.window_seconds:
                first, strikes = now, 0
            strikes += 1
            # Re-inserted at the end: the dict's order is the order of last strikes.
            self._strikes[address] = (first, strikes)
            while len(self._strikes) > rule.max_sources:
                del self._strikes[next(iter(self._strikes))]
            return strikes == rule.strikes

    def _struck(self, address: str | None) -> bool:
        record = self._strikes.get(address)
        if record is None:
            return False
        first, strikes = record
        if self._clock() - first >= self.silence.window_seconds:
            del self._strikes[address]
            return False
        return strikes >= self.silence.strikes

    def count(self, address: str | None) -> int:
        address = source_group(address)
        with self._lock:
            return self._counts.get(address, 0)

    def count_all(self) -> int:
        with self._lock:
            return self._all


def busy_response_headers(retry_after: int) -> dict[str, str]:
    """The headers of a busy node's 503 to an agent's upgrade (both listeners)."""
    return {"Retry-After": str(retry_after), "Cache-Control": "no-store"}


def count_busy_refusal() -> None:
    """An agent's upgrade refused because the node has more logins in progress than it
    answers in time (server/admission.py).

    Counted, not audited: it comes before the agent has presented any identity, so an
    event would say only "someone from HAProxy's address was asked to wait", and in a
    restart storm it would be thousands of them a second, written to the audit chain by
    the node that is shedding load precisely to keep its database work for the logins
    it admits. The agent's login when it comes back is audited as every login is."""
    metrics.socket_refused("busy")


async def refuse_busy(websocket: WebSocket, retry_after: int) -> None:
    """Refuse an agent's upgrade on the main port: 503 with Retry-After, or where the
    server cannot answer HTTP, close code 1013 (the agent's own back-off applies)."""
    count_busy_refusal()
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            Response(status_code=503, headers=busy_response_headers(retry_after))
        )
    else:
        await websocket.close(TRY_AGAIN_LATER, "busy")


async def refuse_upgrade(websocket: WebSocket, cap: Cap = Cap.ADDRESS) -> None:
    """Refuse a socket before accepting it: HTTP 429 (this address has too many) or 503
    (the node has) where the server can send it; else close code 1013, "try again
    later", with the reason in words (the lean agent listener, server/agent_listener.py)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        status = int(cap.http_status.split()[0])
        await websocket.send_denial_response(
            Response(status_code=status, headers={"Retry-After": "5"})
        )
    elif cap is not Cap.NODE:
        await websocket.close(TRY_AGAIN_LATER, "too many unauthenticated sockets")
    else:
        await websocket.close(TRY_AGAIN_LATER, "too many logins in progress")
