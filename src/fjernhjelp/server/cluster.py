"""What server nodes share: where each agent is connected, and messages between nodes.

One node (the embedded default) keeps this in memory. Several nodes share Redis: an
agent's presence is a key naming the node that holds its control link, refreshed by
heartbeats and expiring on its own if that node dies; nodes talk over pub/sub, e.g. "have
machine M dial the relay on node N" or "cut session S wherever it runs".

Each node also keeps a key of its own alive with a short time to live (``beat``): a node
whose key is gone has died, and another node ends the sessions it was relaying
(server/runtime.py). Redis holds nothing that cannot be rebuilt: when it restarts empty,
every node notices at its next beat (its own key is missing) and writes its presence
again, and the pub/sub listener subscribes again on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, cast

_log = logging.getLogger(__name__)

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[None]]


class Cluster(Protocol):
    node_id: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def mark_online(self, machine_id: str) -> None: ...

    async def mark_offline(self, machine_id: str) -> None: ...

    async def refresh(self, machine_ids: Iterable[str]) -> None: ...

    async def locate(self, machine_id: str) -> str | None: ...

    async def online(self, machine_ids: Iterable[str]) -> set[str]: ...

    async def send_to_node(self, node_id: str, message: Message) -> bool:
        """Send to one node; False when no node of that id listens (gone, or unknown)."""
        ...

    async def broadcast(self, message: Message) -> None: ...

    def on_message(self, handler: Handler) -> None: ...

    async def beat(self) -> bool:
        """Say this node is alive. True when the shared store had lost this node's state
        (Redis restarted empty): the caller writes its presence again."""
        ...

    async def alive_nodes(self, node_ids: Iterable[str]) -> set[str]:
        """Which of ``node_ids`` have beaten recently."""
        ...


class LocalCluster:
    """A cluster of one node: presence and messages stay in this process."""

    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or f"node-{uuid.uuid4().hex[:8]}"
        self._present: set[str] = set()
        self._handlers: list[Handler] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def mark_online(self, machine_id: str) -> None:
        self._present.add(machine_id)

    async def mark_offline(self, machine_id: str) -> None:
        self._present.discard(machine_id)

    async def refresh(self, machine_ids: Iterable[str]) -> None:
        # As on Redis: these are here now (the hub marks a batch of logins online so).
        self._present.update(machine_ids)

    async def locate(self, machine_id: str) -> str | None:
        return self.node_id if machine_id in self._present else None

    async def online(self, machine_ids: Iterable[str]) -> set[str]:
        return {m for m in machine_ids if m in self._present}

    async def send_to_node(self, node_id: str, message: Message) -> bool:
        if node_id != self.node_id:
            return False
        await self._deliver(message)
        return True

    async def broadcast(self, message: Message) -> None:
        await self._deliver(message)

    def on_message(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def beat(self) -> bool:
        return False

    async def alive_nodes(self, node_ids: Iterable[str]) -> set[str]:
        # One node alone cannot tell another's death from its own absence of news: its
        # own restart ends what it relayed (remote.sessions.end_orphans).
        return set(node_ids)

    async def _deliver(self, message: Message) -> None:
        for handler in self._handlers:
            await handler(message)


class RedisCluster:
    """Presence keys with a time to live, and pub/sub channels per node and for all."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        prefix: str = "fjh",
        ttl_seconds: int = 90,
        heartbeat_seconds: float = 10.0,
    ) -> None:
        import redis.asyncio as redis

        self.node_id = node_id or f"node-{uuid.uuid4().hex[:8]}"
        self._redis = redis.from_url(url, decode_responses=True)
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._heartbeat = heartbeat_seconds
        # Three beats missed, not one: a loaded machine may be late once.
        self.alive_ttl_seconds = 3 * heartbeat_seconds
        self._handlers: list[Handler] = []
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def _key(self, machine_id: str) -> str:
        return f"{self._prefix}:presence:{machine_id}"

    def _alive_key(self, node_id: str) -> str:
        return f"{self._prefix}:alive:{node_id}"

    def _node_channel(self, node_id: str) -> str:
        return f"{self._prefix}:node:{node_id}"

    @property
    def _all_channel(self) -> str:
        return f"{self._prefix}:all"

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())
        await self._ready.wait()

    async def stop(self) -> None:
        if self._listener:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()

    async def _listen(self) -> None:
        from redis.exceptions import RedisError

        delay = 0.1
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._node_channel(self.node_id), self._all_channel)
                if self._ready.is_set():
                    _log.info("cluster bus: subscribed again")
                self._ready.set()
                delay = 0.1
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        await self._dispatch(item["data"])
            except (RedisError, OSError) as exc:
                # Redis restarting or unreachable: the node keeps serving what it holds
                # and subscribes again as soon as Redis answers (within one heartbeat).
                _log.warning("cluster bus lost (%s); subscribing again", type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._heartbeat / 2)

    async def _dispatch(self, data: str) -> None:
        try:
            message = json.loads(data)
        except (TypeError, ValueError):
            _log.warning("ignoring a malformed cluster message")
            return
        for handler in self._handlers:
            try:
                await handler(message)
            except Exception:
                _log.exception("cluster message handler failed")

    async def mark_online(self, machine_id: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.set(self._key(machine_id), self.node_id, ex=self._ttl)
        except RedisError:
            # The control link stays up; the next beat that finds Redis again writes
            # every link's presence (``beat``).
            _log.warning("presence of %s not written: Redis unavailable", machine_id)

    async def mark_offline(self, machine_id: str) -> None:
        from redis.exceptions import RedisError

        # Only if it is still ours: the agent may already have reconnected elsewhere.
        key = self._key(machine_id)
        try:
            if await self._redis.get(key) == self.node_id:
                await self._redis.delete(key)
        except RedisError:
            _log.warning("presence of %s not removed: Redis unavailable", machine_id)

    async def beat(self) -> bool:
        # SET ... GET (Redis 6.2+) writes the key and says in the same round trip whether
        # it was there: missing means Redis lost this node's keys (restarted empty), or
        # the node was silent so long its key expired; either way presence is rewritten.
        previous = await self._redis.set(
            self._alive_key(self.node_id),
            self.node_id,
            px=int(self.alive_ttl_seconds * 1000),
            get=True,
        )
        return previous is None

    async def alive_nodes(self, node_ids: Iterable[str]) -> set[str]:
        ids = list(node_ids)
        if not ids:
            return set()
        found = await self._redis.mget([self._alive_key(n) for n in ids])
        return {n for n, value in zip(ids, found, strict=True) if value}

    async def refresh(self, machine_ids: Iterable[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for machine_id in machine_ids:
                pipe.set(self._key(machine_id), self.node_id, ex=self._ttl)
            await pipe.execute()

    async def locate(self, machine_id: str) -> str | None:
        node = await self._redis.get(self._key(machine_id))
        # decode_responses=True makes every reply a str; redis-py's types do not follow
        # that flag and still say bytes | str.
        return cast("str | None", node)

    async def online(self, machine_ids: Iterable[str]) -> set[str]:
        ids = list(machine_ids)
        if not ids:
            return set()
        nodes = await self._redis.mget([self._key(m) for m in ids])
        return {m for m, node in zip(ids, nodes, strict=True) if node}

    async def send_to_node(self, node_id: str, message: Message) -> bool:
        # PUBLISH answers how many subscribers took the message: none means the node is
        # not listening (killed, or not started), which a caller may need to act on.
        listeners = await self._redis.publish(self._node_channel(node_id), json.dumps(message))
        return bool(listeners)

    async def broadcast(self, message: Message) -> None:
        await self._redis.publish(self._all_channel, json.dumps(message))

    def on_message(self, handler: Handler) -> None:
        self._handlers.append(handler)


def make_cluster(
    redis_url: str | None, node_id: str | None = None, heartbeat_seconds: float = 10.0
) -> Cluster:
    if redis_url:
        return RedisCluster(redis_url, node_id=node_id, heartbeat_seconds=heartbeat_seconds)
    return LocalCluster(node_id)
