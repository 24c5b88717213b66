"""Presence and node messages, in memory and over a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from fjernhjelp.server.cluster import LocalCluster, RedisCluster

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> None:
    import os

    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        if os.environ.get("FJERNHJELP_TEST_REQUIRE_REDIS"):
            raise
        pytest.skip("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")


@pytest.fixture
def redis_prefix() -> str:
    _redis_or_skip()
    return f"fjh-test-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def two_nodes(prefix: str):
    a = RedisCluster(REDIS_URL, node_id="a", prefix=prefix, ttl_seconds=2)
    b = RedisCluster(REDIS_URL, node_id="b", prefix=prefix, ttl_seconds=2)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def test_presence_is_shared_between_nodes(redis_prefix: str) -> None:
    async with two_nodes(redis_prefix) as (a, b):
        await a.mark_online("m1")
        assert await b.locate("m1") == "a"
        assert await b.online(["m1", "m2"]) == {"m1"}
        # b may not take a's agent offline: the agent may have moved on
        await b.mark_offline("m1")
        assert await a.locate("m1") == "a"
        await a.mark_offline("m1")
        assert await b.locate("m1") is None


async def test_presence_expires_when_a_node_dies(redis_prefix: str) -> None:
    async with two_nodes(redis_prefix) as (a, b):
        await a.mark_online("m3")
        await a.refresh(["m3"])
        for _ in range(50):  # ttl is 2 s; nothing refreshes it now
            if await b.locate("m3") is None:
                break
            await asyncio.sleep(0.1)
        assert await b.locate("m3") is None


async def test_messages_reach_the_named_node_and_broadcasts_reach_all(redis_prefix: str) -> None:
    async with two_nodes(redis_prefix) as (a, b):
        got: dict[str, list] = {"a": [], "b": []}

        async def on_a(m):
            got["a"].append(m)

        async def on_b(m):
            got["b"].append(m)

        a.on_message(on_a)
        b.on_message(on_b)
        assert await a.send_to_node("b", {"type": "dial", "session": "s1"})
        # A node that does not listen (killed, say) is told apart: the sender can act.
        assert not await a.send_to_node("gone", {"type": "dial", "session": "s0"})
        await b.broadcast({"type": "cut", "session": "s2"})
        for _ in range(50):
            if len(got["b"]) == 2 and len(got["a"]) == 1:
                break
            await asyncio.sleep(0.05)
        assert got["b"] == [{"type": "dial", "session": "s1"}, {"type": "cut", "session": "s2"}]
        assert got["a"] == [{"type": "cut", "session": "s2"}]


async def test_local_cluster() -> None:
    c = LocalCluster("solo")
    seen = []

    async def on(m):
        seen.append(m)

    c.on_message(on)
    await c.mark_online("m")
    assert await c.locate("m") == "solo" and await c.online(["m", "x"]) == {"m"}
    assert await c.send_to_node("solo", {"n": 1})
    assert not await c.send_to_node("other", {"n": 2})
    await c.broadcast({"n": 3})
    assert seen == [{"n": 1}, {"n": 3}]


async def test_a_node_beats_and_a_store_that_lost_it_is_noticed(redis_prefix: str) -> None:
    import redis.asyncio as redis

    async with two_nodes(redis_prefix) as (a, b):
        assert await a.beat() is True  # nothing of a's was there yet
        assert await a.beat() is False
        assert await b.alive_nodes(["a", "b", "c"]) == {"a"}
        # Redis restarted empty (its keys gone): a notices at its next beat, to write
        # its presence again.
        store = redis.from_url(REDIS_URL)
        try:
            await store.delete(f"{redis_prefix}:alive:a")
        finally:
            await store.aclose()
        assert await b.alive_nodes(["a"]) == set()
        assert await a.beat() is True
        assert await b.alive_nodes(["a"]) == {"a"}


async def test_a_single_node_never_takes_another_for_dead() -> None:
    c = LocalCluster("solo")
    assert await c.beat() is False
    assert await c.alive_nodes(["solo", "gone"]) == {"solo", "gone"}
