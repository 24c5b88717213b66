"""What server nodes share: where each agent is connected, and messages between nodes.

One node (the embedded default) keeps this in memory. Several nodes share Redis: an
agent's presence is a key naming the node that holds its control link, refreshed by
heartbeats and expiring on its own if that node dies; nodes talk over pub/sub, e.g. "have
machine M dial the relay on node N" or "cut session S wherever it runs".
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

    async def send_to_node(self, node_id: str, message: Message) -> None: ...

    async def broadcast(self, message: Message) -> None: ...

    def on_message(self, handler: Handler) -> None: ...


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

    async def send_to_node(self, node_id: str, message: Message) -> None:
        if node_id == self.node_id:
            await self._deliver(message)

    async def broadcast(self, message: Message) -> None:
        await self._deliver(message)

    def on_message(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def _deliver(self, message: Message) -> None:
        for handler in self._handlers:
            await handler(message)


class RedisCluster:
    """Presence keys with a time to live, and pub/sub channels per node and for all."""

    def __init__(
        self, url: str, *, node_id: str | None = None, prefix: str = "fjh", ttl_seconds: int = 90
    ) -> None:
        import redis.asyncio as redis

        self.node_id = node_id or f"node-{uuid.uuid4().hex[:8]}"
        self._redis = redis.from_url(url, decode_responses=True)
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._handlers: list[Handler] = []
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def _key(self, machine_id: str) -> str:
        return f"{self._prefix}:presence:{machine_id}"

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
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._node_channel(self.node_id), self._all_channel)
        self._ready.set()
        try:
            async for item in pubsub.listen():
                if item.get("type") != "message":
                    continue
                try:
                    message = json.loads(item["data"])
                except (TypeError, ValueError):
                    _log.warning("ignoring a malformed cluster message")
                    continue
                for handler in self._handlers:
                    try:
                        await handler(message)
                    except Exception:
                        _log.exception("cluster message handler failed")
        finally:
            await pubsub.aclose()

    async def mark_online(self, machine_id: str) -> None:
        await self._redis.set(self._key(machine_id), self.node_id, ex=self._ttl)

    async def mark_offline(self, machine_id: str) -> None:
        # Only if it is still ours: the agent may already have reconnected elsewhere.
        key = self._key(machine_id)
        if await self._redis.get(key) == self.node_id:
            await self._redis.delete(key)

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

    async def send_to_node(self, node_id: str, message: Message) -> None:
        await self._redis.publish(self._node_channel(node_id), json.dumps(message))

    async def broadcast(self, message: Message) -> None:
        await self._redis.publish(self._all_channel, json.dumps(message))

    def on_message(self, handler: Handler) -> None:
        self._handlers.append(handler)


def make_cluster(redis_url: str | None, node_id: str | None = None) -> Cluster:
    if redis_url:
        return RedisCluster(redis_url, node_id=node_id)
    return LocalCluster(node_id)
