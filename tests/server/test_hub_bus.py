"""The cluster bus hands a node its messages one at a time: what a message asks of one
agent's link must not hold up what the next asks of another's (a revocation's cut above
all)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from fjernhjelp.server.agent_hub import AgentHub, AgentLink
from fjernhjelp.server.cluster import RedisCluster
from fjernhjelp.server.runtime import AccessRuntime
from tests.fuzz.harness import LOOP
from tests.server.test_cluster import REDIS_URL, _redis_or_skip


class _NeverReads:
    """A link whose agent does not read: every send waits."""

    async def send_text(self, text: str) -> None:
        await asyncio.Event().wait()


class _Reads:
    def __init__(self) -> None:
        self.got: list[dict[str, object]] = []
        self.arrived = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.got.append(json.loads(text))
        self.arrived.set()


def test_an_agent_that_does_not_read_holds_up_no_other_agents_cut(state) -> None:  # type: ignore[no-untyped-def]
    hub = AccessRuntime(state).hub
    stalled, other = uuid.uuid4(), uuid.uuid4()
    session = uuid.uuid4()

    async def run() -> None:
        reads = _Reads()
        hub.links[stalled] = AgentLink(stalled, _NeverReads())  # type: ignore[arg-type]
        hub.links[other] = AgentLink(other, reads)  # type: ignore[arg-type]
        dial = {
            "session_id": str(uuid.uuid4()),
            "relay_url": "wss://fjh.example.no/relay",
            "relay_token": "t" * 43,
        }
        # The bound only turns a hang into a failure.
        await asyncio.wait_for(
            hub._on_cluster_message({"type": "dial", "machine_id": str(stalled), "command": dial}),
            30,
        )
        await asyncio.wait_for(
            hub._on_cluster_message(
                {
                    "type": "cut",
                    "session_id": str(session),
                    "machine_id": str(other),
                    "reason": "grant_revoked",
                }
            ),
            30,
        )
        await asyncio.wait_for(reads.arrived.wait(), 30)
        assert reads.got == [{"type": "cut", "session_id": str(session), "reason": "grant_revoked"}]
        for task in list(hub._sending):
            task.cancel()

    LOOP.run(run())


class _Relay:
    """A node's relay, as far as a cut goes: what it was told, in the order of events."""

    def __init__(self, node: str, log: list[str]) -> None:
        self.node, self.log = node, log

    def cut(self, session_id: str, why: str) -> bool:
        self.log.append(f"relay {self.node}: {why}")
        return True


class _Agent(_Reads):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def send_text(self, text: str) -> None:
        self.log.append(f"agent told: {json.loads(text)['reason']}")
        await super().send_text(text)


@pytest.mark.parametrize("relay_node", ["a", "gone"])
def test_a_cut_reaches_the_relay_before_the_agent_on_another_node(state, relay_node: str) -> None:  # type: ignore[no-untyped-def]
    """Told first, the agent closed its end of the relay, and the relay on another node
    recorded "agent_closed" instead of the revocation (a CI run). With the relay's node
    named, its relay has the reason before the agent hears; with that node gone, every
    node cuts and the agent is told all the same."""
    _redis_or_skip()
    prefix = f"fjh-test-{uuid.uuid4().hex[:8]}"
    log: list[str] = []
    machine, session = uuid.uuid4(), uuid.uuid4()

    async def run() -> None:
        a = RedisCluster(REDIS_URL, node_id="a", prefix=prefix, ttl_seconds=5)
        b = RedisCluster(REDIS_URL, node_id="b", prefix=prefix, ttl_seconds=5)
        await a.start()
        await b.start()
        try:
            AgentHub(state, a, _Relay("a", log))  # type: ignore[arg-type]
            hub_b = AgentHub(state, b, _Relay("b", log))  # type: ignore[arg-type]
            agent = _Agent(log)
            hub_b.links[machine] = AgentLink(machine, agent)  # type: ignore[arg-type]
            await b.mark_online(str(machine))
            # The revocation is applied on node b, which holds the agent's link.
            await hub_b.cut(session, machine, "grant_revoked", relay_node=relay_node)
            await asyncio.wait_for(agent.arrived.wait(), 30)  # a hang made a failure
        finally:
            await a.stop()
            await b.stop()

    LOOP.run(run())
    if relay_node == "a":
        assert log == ["relay a: grant_revoked", "agent told: grant_revoked"]
    else:
        # Node a's relay hears the broadcast in its own time; b's own cut comes first.
        told = log.index("agent told: grant_revoked")
        assert log.index("relay b: grant_revoked") < told
