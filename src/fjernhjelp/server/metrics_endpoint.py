"""``/metrics``: Prometheus text for the addresses ``metrics_allow`` names (docs/metrics.md).

The counters of what happened are kept where it happens (fjernhjelp/metrics.py); what *is*
is read here at scrape time, from the one place that holds it: the agent hub's links, the
relay's live pairs, the database's sessions, this loop's lag. Nothing is kept twice, so
nothing can drift.

A caller outside the allow-list gets the same 404 as any unknown path (a scanner learns
nothing), counted as a probe of its address like other requests that can do nothing
(server/probes.py: one audit event per address per interval, not one per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.exceptions import HTTPException

from fjernhjelp import metrics
from fjernhjelp.config import Settings
from fjernhjelp.remote.models import RemoteSession, SessionKind, SessionStatus
from fjernhjelp.server.deps import State, get_client
from fjernhjelp.server.state import AppState

PROBE_KIND = "metrics_refused"
LAG_INTERVAL = 0.5  # seconds between the lag monitor's ticks

router = APIRouter()


class LoopLag:
    """How late the event loop runs a timer: the time every socket waits on top of its own
    work. A task sleeps ``LAG_INTERVAL`` and measures how much later than asked it woke."""

    def __init__(self) -> None:
        self.last = 0.0
        self.worst = 0.0  # since the last scrape
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_INTERVAL)
            self.last = max(0.0, loop.time() - asked - LAG_INTERVAL)
            self.worst = max(self.worst, self.last)

    def take_worst(self) -> float:
        worst, self.worst = self.worst, self.last
        return worst


def allowed(settings: Settings, address: str | None) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # "testclient", a Unix socket: not an address anyone allowed
        return False
    return any(ip in net for net in settings.metrics_networks)


@dataclass(frozen=True)
class Snapshot:
    """What the event loop holds, read on the loop (its dicts change only there)."""

    node: str
    agents_connected: int
    relay_live_sessions: int
    relay_live_bytes: dict[str, int]
    loop_lag: float
    loop_lag_worst: float
    sessions: dict[tuple[str, str], int]  # (kind, status) -> count, from the database


def _gauge(
    name: str, documentation: str, labels: list[str], rows: Iterable[tuple[list[str], float]]
) -> GaugeMetricFamily:
    """One series of gauges: ``rows`` are (label values, value)."""
    family = GaugeMetricFamily(metrics.PREFIX + name, documentation, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


class _Now(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    def collect(self) -> Iterable[Metric]:
        s = self._snap
        node = [s.node]
        yield _gauge(
            "agents_connected",
            "Control links (agents, Support clients) held by this node.",
            ["node"],
            [(node, s.agents_connected)],
        )
        yield _gauge(
            "relay_live_sessions",
            "Relay sessions on this node now (waiting for the second end, or paired).",
            ["node"],
            [(node, s.relay_live_sessions)],
        )
        yield _gauge(
            "relay_live_bytes",
            "Bytes passed so far by the relay sessions still running on this node.",
            ["node", "source"],
            [([s.node, source], count) for source, count in sorted(s.relay_live_bytes.items())],
        )
        yield _gauge(
            "sessions",
            "Remote sessions in the database by kind and state (the whole cluster's: "
            "take max(), not sum(), across nodes).",
            ["kind", "state"],
            [([kind, status], count) for (kind, status), count in sorted(s.sessions.items())],
        )
        yield _gauge(
            "event_loop_lag_seconds",
            f"How late this node's event loop ran a {LAG_INTERVAL} s timer, last tick.",
            ["node"],
            [(node, s.loop_lag)],
        )
        yield _gauge(
            "event_loop_lag_max_seconds",
            "The worst event-loop lag since the previous scrape.",
            ["node"],
            [(node, s.loop_lag_worst)],
        )


def _sessions(state: AppState) -> dict[tuple[str, str], int]:
    # Every pair is named, zero or not, so a dashboard's series do not come and go.
    counts = {(str(k), str(st)): 0 for k in SessionKind for st in SessionStatus}
    with state.db_sessions() as db:
        rows = db.execute(
            select(RemoteSession.kind, RemoteSession.status, func.count()).group_by(
                RemoteSession.kind, RemoteSession.status
            )
        ).all()
    for kind, status, count in rows:
        counts[(str(kind), str(status))] = int(count)
    return counts


def _render(state: AppState, snap: Snapshot) -> bytes:
    snap = Snapshot(**{**snap.__dict__, "sessions": _sessions(state)})
    now = CollectorRegistry(auto_describe=False)
    now.register(_Now(snap))
    return generate_latest(metrics.REGISTRY) + generate_latest(now)


@router.get("/metrics", include_in_schema=False)
async def metrics_text(request: Request, state: State) -> Response:
    address = get_client(request).source_address
    if not allowed(state.settings, address):
        state.probes.note(address, PROBE_KIND, request.method, request.url.path, state.now())
        raise HTTPException(404)
    runtime = request.app.state.access
    lag: LoopLag = request.app.state.loop_lag
    snap = Snapshot(
        node=state.settings.node_id,
        agents_connected=len(runtime.hub.links),
        relay_live_sessions=len(runtime.relay.live_sessions()),
        relay_live_bytes=runtime.relay.live_bytes(),
        loop_lag=lag.last,
        loop_lag_worst=lag.take_worst(),
        sessions={},
    )
    body = await run_in_threadpool(_render, state, snap)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
