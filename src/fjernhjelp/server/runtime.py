"""What runs for Access while the server is up: the cluster link, the relay, the agent
hub, the task that turns revocations into cut sessions, and the node's heartbeat, which
also notices other nodes that died and ends the sessions they were relaying."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from fastapi.concurrency import run_in_threadpool
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from fjernhjelp.caller import Caller
from fjernhjelp.control.dial import make_dial
from fjernhjelp.machines import removal
from fjernhjelp.machines.removal import RemovedMachine
from fjernhjelp.portal.revocations import Revocation
from fjernhjelp.refusals import SessionRefused
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote.models import RemoteSession, SessionStatus
from fjernhjelp.remote.sessions import IssuedSession
from fjernhjelp.server.agent_hub import AgentHub
from fjernhjelp.server.cluster import Cluster, make_cluster
from fjernhjelp.server.relay import Outcome as RelayOutcome
from fjernhjelp.server.relay import Relay
from fjernhjelp.server.relay_endpoint import RelayEndpoint
from fjernhjelp.server.state import AppState
from fjernhjelp.server.unavailable import classify

_log = logging.getLogger(__name__)

PRESENCE_REFRESH_SECONDS = 30
# Sessions nobody is at the relay for yet: a cut records their end itself.
_UNPAIRED = (SessionStatus.REQUESTED, SessionStatus.JOINED, SessionStatus.WAITING)


class AccessRuntime:
    def __init__(self, state: AppState, cluster: Cluster | None = None) -> None:
        self.state = state
        self.cluster = cluster or make_cluster(
            state.settings.redis_url,
            state.settings.node_id,
            heartbeat_seconds=state.settings.node_heartbeat_seconds,
        )
        self.relay = Relay(
            pair_timeout=state.settings.relay_pair_seconds,
            on_paired=lambda sid: self.relay_endpoint.paired(sid),
            on_end=self._relay_ended,
        )
        self.relay_endpoint = RelayEndpoint(state, self.relay)
        self.hub = AgentHub(state, self.cluster, self.relay)
        self._tasks: list[asyncio.Task[None]] = []

    async def _relay_ended(self, outcome: RelayOutcome) -> None:
        await self.relay_endpoint.ended(outcome)
        # The end of a Support session's one tunnel is the end of the session: its
        # client, if still on the control link, is told so and exits.
        session_id = uuid.UUID(outcome.session_id)
        try:
            support = await run_in_threadpool(self._is_support, session_id)
        except Exception as exc:
            if classify(exc) is None:
                raise
            # The database cannot say: tell whatever client waits on the session's id
            # (for an Access session there is none, and the cut reaches nobody).
            support = True
        if support:
            await self.hub.cut(session_id, session_id, outcome.reason[:64])

    def _is_support(self, session_id: uuid.UUID) -> bool:
        with self.state.db_sessions() as db:
            row = db.get(RemoteSession, session_id)
            return row is not None and row.is_support

    async def start(self) -> None:
        await self.cluster.start()
        ended = await run_in_threadpool(self._end_orphans)
        if ended:
            _log.info("ended %d sessions left over from before the restart", ended)
        # Other nodes see this one alive from the start, not a heartbeat later.
        await self.cluster.beat()
        self._tasks = [
            asyncio.create_task(self._consume_revocations()),
            asyncio.create_task(self._heartbeat()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session_id in self.relay.live_sessions():
            self.relay.cut(session_id, "server_stopping")
        await self.cluster.stop()

    def _end_orphans(self) -> int:
        with self.state.db_sessions() as db:
            count = remote_sessions.end_orphans(
                db, node_id=self.state.settings.node_id, now=self.state.now()
            )
            db.commit()
            return count

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.state.settings.node_heartbeat_seconds
        refreshed = loop.time()
        missing_since: dict[str, float] = {}
        while True:
            await asyncio.sleep(interval)
            try:
                lost_state = await self.cluster.beat()
                if lost_state or loop.time() - refreshed >= PRESENCE_REFRESH_SECONDS:
                    if lost_state:
                        _log.warning("the cluster store lost this node's state: rebuilding")
                    await self.hub.refresh_presence()
                    refreshed = loop.time()
                await self._end_sessions_of_lost_nodes(missing_since, loop.time())
            except (OperationalError, InterfaceError, RedisError) as exc:
                # The database or Redis is away: the node serves what it can and tries
                # again at the next beat (server/unavailable.py answers requests).
                _log.warning("node heartbeat incomplete: %s", type(exc).__name__)
            except Exception:
                _log.exception("node heartbeat failed")

    async def _end_sessions_of_lost_nodes(
        self, missing_since: dict[str, float], now: float
    ) -> None:
        """End the sessions of nodes whose alive key has been gone for a whole alive
        period. Not at the first miss: after a Redis restart every node's key is gone
        until that node's next beat, which comes well within the period."""
        others = await run_in_threadpool(self._session_nodes)
        others.discard(self.cluster.node_id)
        alive = await self.cluster.alive_nodes(others)
        for node in list(missing_since):
            if node not in others or node in alive:
                del missing_since[node]
        grace = 3 * self.state.settings.node_heartbeat_seconds
        lost = []
        for node in others - alive:
            if now - missing_since.setdefault(node, now) >= grace:
                lost.append(node)
        if not lost:
            return
        ended = await run_in_threadpool(self._end_sessions_of, lost)
        _log.warning("nodes %s lost: ended %d of their sessions", sorted(lost), len(ended))
        for session_id, end_id in ended:
            # Whatever end still waits for them (an agent that has not noticed) is told.
            await self.hub.cut(session_id, end_id, "node_lost")

    def _session_nodes(self) -> set[str]:
        with self.state.readers() as reader:
            return remote_sessions.nodes_with_live_sessions(reader)

    def _end_sessions_of(self, nodes: list[str]) -> list[tuple[uuid.UUID, uuid.UUID]]:
        with self.state.db_sessions() as db:
            ended = remote_sessions.end_sessions_of_lost_nodes(db, nodes, now=self.state.now())
            db.commit()
            return [(s.id, s.machine_id or s.id) for s in ended]

    async def _consume_revocations(self) -> None:
        queue, unsubscribe = self.state.revocations.subscribe_queue(asyncio.get_running_loop())
        try:
            while True:
                event = await queue.get()
                try:
                    await self.apply(event)
                except Exception:
                    _log.exception("applying revocation %s failed", event.kind)
        finally:
            unsubscribe()

    async def apply(self, event: Revocation) -> list[uuid.UUID]:
        """Cut every live session the event touches; returns their ids."""
        affected = await run_in_threadpool(self._affected, event)
        for session_id, machine_id, relay_node in affected:
            await self.hub.cut(session_id, machine_id, str(event.kind), relay_node=relay_node)
        return [sid for sid, _, _ in affected]

    async def remove_machine(
        self, db: Session, caller: Caller, machine_id: uuid.UUID
    ) -> RemovedMachine:
        """Remove a machine for ``caller`` (pages and API alike), then cut what it had
        open. Raises NotFound as ``removal.remove`` does, marked recorded (the request
        keeps its audit event)."""

        def act() -> RemovedMachine:
            removed = removal.remove(db, caller, machine_id)
            # Committed before anything is cut: a removal that did not hold cuts nothing.
            db.commit()
            return removed

        removed = await run_in_threadpool(act)
        await self.machine_removed(removed)
        return removed

    async def dial(
        self, db: Session, end_id: uuid.UUID, issued: IssuedSession, offline_reason: str
    ) -> str:
        """Tell the agent or Support client ``end_id`` to dial the relay for ``issued``
        (Access and Support alike) and return the relay URL the technician joins. An end
        that is not connected anywhere ends the session, and the request is refused with
        ``offline_reason``."""
        settings = self.state.settings
        relay_url = f"{settings.relay_base_url}/relay/{issued.session.id}"

        def ended(reason: str) -> None:
            remote_sessions.end(db, issued.session.id, now=self.state.now(), reason=reason)
            db.commit()

        try:
            dialled = await self.hub.dial(
                end_id,
                make_dial(
                    self.state.keys.signing,
                    session_id=issued.session.id,
                    relay_url=relay_url,
                    relay_token=issued.agent_token,
                    public_url=settings.effective_public_url,
                ),
            )
        except RedisError:
            # The cluster cannot say where the end is: the session ends here, recorded,
            # and the request is answered with a 503 (server/unavailable.py).
            await run_in_threadpool(ended, "cluster_unavailable")
            raise
        if not dialled:
            await run_in_threadpool(ended, offline_reason)
            raise SessionRefused(offline_reason)
        return relay_url

    async def machine_removed(self, removed: RemovedMachine) -> None:
        """After a removal has committed: cut the machine's open sessions and its control
        link, wherever in the cluster they are."""
        for session_id, relay_node in removed.active_sessions:
            await self.hub.cut(
                session_id, removed.machine_id, "machine_removed", relay_node=relay_node
            )
        await self.hub.disconnect(removed.machine_id, "machine_revoked")

    def _affected(self, event: Revocation) -> list[tuple[uuid.UUID, uuid.UUID, str | None]]:
        """The live sessions ``event`` touches: (session, its agent or client, the node
        holding its relay); the unpaired ones are recorded as ended here."""
        out: list[tuple[uuid.UUID, uuid.UUID, str | None]] = []
        unpaired: list[uuid.UUID] = []
        # Read without SQLite's write lock: most events touch no live session, and an
        # IMMEDIATE transaction here would stall (or, for a reader about to write, fail)
        # whoever else writes at the moment.
        with self.state.readers() as reader:
            # Support sessions whose tunnel is not asked for yet count too: a waiting
            # code dies with them, and a joined client waits on the control link and is
            # cut there.
            for session in remote_sessions.live_sessions(reader, support_before_tunnel=True):
                if not event.affects(remote_sessions.as_live(session)):
                    continue
                # A Support client's control link is keyed by its session's id
                # (agent_hub): the cut reaches it there.
                out.append((session.id, session.machine_id or session.id, session.node_id))
                if session.status in _UNPAIRED:
                    unpaired.append(session.id)
        if unpaired:
            with self.state.db_sessions() as db:
                for session_id in unpaired:
                    # Nobody is at the relay yet to report the end: record it here, and
                    # the relay tokens stop working with it.
                    remote_sessions.end(
                        db, session_id, now=self.state.now(), reason=f"cut:{event.kind}"
                    )
                db.commit()
        return out
