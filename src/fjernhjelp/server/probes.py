"""Probing, counted instead of logged line by line.

A request that cannot do anything (an unknown endpoint, an anonymous form without its
CSRF token, a body over the limit, a socket over the per-address or the node's cap or
with an oversized first message) is refused at once, but writing one audit event for
each would let anyone fill the append-only log and queue every honest writer behind the
chain-head lock. So these refusals are tallied in memory per source address, and each
address gets ONE ``security.probing`` event per interval carrying the count, the kinds
and a few samples.
The tally is written when its interval ends (housekeeping) and when the server stops.

Real attempts (logins, second factors, codes, tickets, agent proofs, a refused form of a
logged-in user) are not probes: they keep one event each, written where they happen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fjernhjelp.auth import guard

ACTION = guard.PROBING
SAMPLES = 10  # distinct (kind, method, path) kept per window, for whoever investigates
OVERFLOW = "*"  # the window that counts addresses beyond the cap


class Kind:
    UNKNOWN_ENDPOINT = "unknown_endpoint"
    CSRF_ANONYMOUS = "csrf_refused"  # noted as "csrf_refused:<reason>"
    BODY_TOO_LARGE = "body_too_large"
    SOCKET_CAP = "socket_cap"
    NODE_SOCKET_CAP = "node_socket_cap"  # the node's cap on logins in progress
    SILENT_SOCKET = "silent_socket"  # let in, and no hello or join in time
    SILENT_SOCKET_CAP = "silent_socket_cap"  # refused: the source's silent sockets cut it
    MESSAGE_TOO_BIG = "ws_message_too_big"


@dataclass
class Window:
    address: str | None
    started: datetime
    last: datetime
    count: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, str]] = field(default_factory=list)
    addresses: set[str | None] = field(default_factory=set)  # the overflow window's

    def add(self, kind: str, method: str, path: str, now: datetime) -> None:
        self.count += 1
        self.last = now
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        sample = {"kind": kind, "method": method, "path": path[:200]}
        if len(self.samples) < SAMPLES and sample not in self.samples:
            self.samples.append(sample)


class ProbeTally:
    """Thread-safe: notes come from the event loop, flushes from a worker thread."""

    def __init__(self, interval: timedelta, max_addresses: int) -> None:
        self.interval = interval
        self.max_addresses = max_addresses
        self._open: dict[str, Window] = {}
        self._closed: list[Window] = []
        self._lock = threading.Lock()

    def note(self, address: str | None, kind: str, method: str, path: str, now: datetime) -> None:
        key = address or ""
        with self._lock:
            window = self._open.get(key)
            if window is not None and now >= window.started + self.interval:
                self._closed.append(self._open.pop(key))
                window = None
            if window is None:
                if len(self._open) >= self.max_addresses:
                    # Memory stays bounded however many addresses probe; the excess is
                    # still counted, under one window without an address.
                    key = OVERFLOW
                    window = self._open.get(key)
                if window is None:
                    window = Window(None if key == OVERFLOW else address, now, now)
                    self._open[key] = window
            if key == OVERFLOW:
                window.addresses.add(address)
            window.add(kind, method, path, now)

    def take_due(self, now: datetime) -> list[Window]:
        """Windows whose interval has ended, removed from the tally."""
        with self._lock:
            due = [k for k, w in self._open.items() if now >= w.started + self.interval]
            windows = self._closed + [self._open.pop(k) for k in due]
            self._closed = []
            return windows

    def noted(self, address: str | None) -> dict[str, int]:
        """What ``address``'s open window has counted so far, by kind (for whoever
        watches a flood as it happens: the event comes when the window ends)."""
        with self._lock:
            window = self._open.get(address or "")
            return dict(window.kinds) if window is not None else {}

    def take_all(self) -> list[Window]:
        with self._lock:
            windows = self._closed + list(self._open.values())
            self._closed = []
            self._open = {}
            return windows


def write(db: Session, windows: list[Window]) -> None:
    """One event per window, appended in order in the caller's transaction."""
    for window in sorted(windows, key=lambda w: w.started):
        details: dict[str, object] = {
            "count": window.count,
            "kinds": dict(sorted(window.kinds.items())),
            "first_at": window.started.isoformat(),
            "last_at": window.last.isoformat(),
            "samples": window.samples,
        }
        if window.addresses:
            details["addresses"] = len(window.addresses)
        guard.probing(db, window.address, details)


def flush(db: Session, tally: ProbeTally, now: datetime, *, everything: bool = False) -> int:
    """Write what is due (or everything, at shutdown) and commit. Returns events written."""
    windows = tally.take_all() if everything else tally.take_due(now)
    if windows:
        write(db, windows)
        db.commit()
    return len(windows)
