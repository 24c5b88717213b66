"""The cluster bus hands a node its messages one at a time: what a message asks of one
agent's link must not hold up what the next asks of another's (a revocation's cut above
all)."""

from __future__ import annotations

import asyncio
import json
import uuid

from fjernhjelp.server.agent_hub import AgentLink
from fjernhjelp.server.runtime import AccessRuntime
from tests.fuzz.harness import LOOP


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
