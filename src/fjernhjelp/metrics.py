"""The server's counters for Prometheus: the facts that happen, counted where they happen.

One place per fact:
- every audited event passes ``audit.log.record``, which calls :func:`audited` (logins by
  step and outcome, refusals by action and reason, how long the append took);
- the relay counts its own bytes and finished sessions (server/relay.py);
- what *is* (agents connected, sessions by kind and state, the relay's live sessions, the
  event loop's lag) is read when scraped (server/metrics_endpoint.py), not kept twice.

The counters live in one registry per process (:data:`REGISTRY`): that is what a scrape
of this process means. Labels are bounded by the code, never by data: actions and reasons
are keys the code names, and a reason that does not look like one (or one past
:data:`MAX_REASONS`) is counted as ``other`` so no input can grow the label space. No user,
machine or session id is ever a label.
"""

from __future__ import annotations

import re
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram

PREFIX = "fjernhjelp_"
REGISTRY = CollectorRegistry(auto_describe=True)

MAX_REASONS = 200
_REASON = re.compile(r"^[a-z0-9_.:-]{1,64}$")
_REFUSED = frozenset({"failure", "denied"})


def _counter(name: str, documentation: str, labels: list[str]) -> Counter:
    return Counter(PREFIX + name, documentation, labels, registry=REGISTRY)


LOGINS = _counter(
    "logins", "Login steps audited, by step (password, factor) and outcome.", ["step", "outcome"]
)
REFUSALS = _counter(
    "refusals",
    "Refusals audited (outcome failure or denied), by action and reason.",
    ["action", "reason"],
)
AUDIT_APPEND = Histogram(
    PREFIX + "audit_append_seconds",
    "Time to append one event to the audit chain (head lock, hash, flush).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
RELAY_BYTES = _counter(
    "relay_bytes",
    "Bytes the relay passed on, by the end that sent them; finished sessions only "
    "(fjernhjelp_relay_live_bytes has the running ones).",
    ["source"],
)
RELAY_SESSIONS = _counter(
    "relay_sessions_ended",
    "Relay sessions ended on this node, by whether both ends had met and how it ended.",
    ["paired", "ending"],
)

SOCKETS_REFUSED = _counter(
    "sockets_refused",
    "WebSockets refused at the upgrade before authenticating, by the cap that refused "
    "them: address (too many from one source), node (too many unauthenticated sockets) "
    "or busy (an agent told to come back later: more logins in progress than the node "
    "answers in time).",
    ["cap"],
)

_reasons: set[str] = set()
_reasons_lock = threading.Lock()


def bounded_reason(reason: str | None) -> str:
    """``reason`` as a label value: a code key as it is, anything else ``other``."""
    if not reason:
        return "none"
    if not _REASON.match(reason):
        return "other"
    with _reasons_lock:
        if reason in _reasons:
            return reason
        if len(_reasons) >= MAX_REASONS:
            return "other"
        _reasons.add(reason)
        return reason


def audited(action: str, outcome: str, reason: str | None, seconds: float) -> None:
    """One event appended to the audit chain (called by audit.log.record)."""
    AUDIT_APPEND.observe(seconds)
    if action.startswith("auth.login."):
        LOGINS.labels(action.removeprefix("auth.login."), outcome).inc()
    if outcome in _REFUSED:
        REFUSALS.labels(action, bounded_reason(reason)).inc()


def socket_refused(cap: str) -> None:
    """An unauthenticated socket refused by a cap (called by server/ws_guard.py)."""
    SOCKETS_REFUSED.labels(cap).inc()


def relay_ended(paired: bool, reason: str, from_technician: int, from_agent: int) -> None:
    """A relay session is over (called by server/relay.py once per session)."""
    RELAY_BYTES.labels("technician").inc(from_technician)
    RELAY_BYTES.labels("agent").inc(from_agent)
    # "cut:<why>" and "<role>_closed" name the kind of ending; <why> may be free text.
    ending = reason.split(":", 1)[0]
    RELAY_SESSIONS.labels("true" if paired else "false", bounded_reason(ending)).inc()
