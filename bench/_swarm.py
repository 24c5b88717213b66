"""A compact swarm of simulated agents: raw `websockets` clients doing the agent's real
control-link login (the server's challenge checked against the pinned key, the nonce
signed with the agent's identity key), then idling; on a drop they come back with the
agent's own back-off (fjernhjelp.agent.backoff: ``Backoff.after``, as agent/link.py uses
it, jitter, the reset after a stable link and a busy node's Retry-After included) and its
timeouts.

Run by bench/fleet.py, one process per slice of the agents: a full ControlLink per agent
would cost the client side more than the server being measured.

stdin: one JSON object {"url", "server_key" (hex), "agents": [[machine_id, seed hex], ...],
"pace": concurrent first logins}. stdout: "up N attempts A drops D failures F" whenever
one of them changed (at most every 0.2 s): agents logged in now, connection attempts,
links lost and attempts failed so far; stderr, every 10 s while it changes: the failed
attempts by kind.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fjernhjelp.agent.backoff import Backoff, parse_retry_after
from fjernhjelp.control import statements
from fjernhjelp.control.messages import b64, unb64

HELLO_INFO = {"hostname": "", "os": "bench", "agent_version": "0"}


class Swarm:
    def __init__(self, url: str, server_key: Ed25519PublicKey, pace: int) -> None:
        self.url = url
        self.server_key = server_key
        self.up = 0
        self.attempts = 0
        self.failures = 0
        self.drops = 0
        self.failed: collections.Counter[str] = collections.Counter()
        self.first = asyncio.Semaphore(pace)

    async def login(
        self, ws: websockets.ClientConnection, mid: uuid.UUID, key: Ed25519PrivateKey, name: str
    ) -> None:
        # The agent's own timeouts (agent/link.py).
        challenge = json.loads(await asyncio.wait_for(ws.recv(), 20))
        nonce = unb64(challenge["nonce"], statements.NONCE_BYTES)
        # The pinned key's proof, as the real agent checks it (raises InvalidSignature).
        self.server_key.verify(
            unb64(challenge["signature"], 64), statements.server_challenge_statement(nonce)
        )
        proof = key.sign(statements.agent_proof_statement(nonce, mid))
        hello = {
            "type": "hello",
            "machine_id": str(mid),
            "signature": b64(proof),
            "info": {**HELLO_INFO, "hostname": name},
        }
        await ws.send(json.dumps(hello))
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if welcome.get("type") != "welcome":
            raise ConnectionError(f"no welcome: {welcome}")

    async def agent(self, mid: uuid.UUID, key: Ed25519PrivateKey, name: str) -> None:
        backoff = Backoff()
        first = True
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            retry_after = None
            try:
                self.attempts += 1
                if first:
                    await self.first.acquire()
                try:
                    try:
                        ws = await websockets.connect(
                            self.url,
                            compression=None,
                            open_timeout=20,
                            ping_interval=None,
                            max_size=64 * 1024,
                        )
                    except TimeoutError as exc:
                        raise OpenTimeout from exc
                    try:
                        await self.login(ws, mid, key, name)
                    except BaseException:
                        await ws.close()
                        raise
                finally:
                    if first:
                        self.first.release()
                        first = False
                self.up += 1
                try:
                    await ws.wait_closed()
                finally:
                    self.up -= 1
                    self.drops += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Any failure is a retry, as for the agent; counted by kind. A busy node's
                # 503 says when to come back, and the agent honours it (agent/link.py).
                self.failures += 1
                self.failed[_kind(exc)] += 1
                if isinstance(exc, websockets.InvalidStatus):
                    retry_after = parse_retry_after(exc.response.headers.get("Retry-After"))
            await asyncio.sleep(backoff.after(loop.time() - started, retry_after=retry_after))


class OpenTimeout(TimeoutError):
    """The connection did not open within the agent's 20 s (a TimeoutError otherwise is
    an answer that did not come within them)."""


def _kind(exc: Exception) -> str:
    if isinstance(exc, websockets.InvalidStatus):
        return f"http {exc.response.status_code}"
    if isinstance(exc, websockets.ConnectionClosed):
        return f"closed {exc.rcvd.code if exc.rcvd else 'abnormally'}"
    return type(exc).__name__


async def report(swarm: Swarm) -> None:
    last = (-1, -1, -1, -1)
    said: dict[str, int] = {}
    ticks = 0
    while True:
        now = (swarm.up, swarm.attempts, swarm.drops, swarm.failures)
        if now != last:
            print(f"up {now[0]} attempts {now[1]} drops {now[2]} failures {now[3]}", flush=True)
            last = now
        ticks += 1
        if ticks % 50 == 0 and dict(swarm.failed) != said:
            said = dict(swarm.failed)
            print(f"swarm {id(swarm) % 1000}: failed {said}", file=sys.stderr, flush=True)
        await asyncio.sleep(0.2)


async def main() -> None:
    config = json.loads(sys.stdin.readline())
    server_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(config["server_key"]))
    swarm = Swarm(config["url"], server_key, config.get("pace", 200))
    agents = [
        (uuid.UUID(mid), Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed)))
        for mid, seed in config["agents"]
    ]
    tasks = [
        asyncio.create_task(swarm.agent(mid, key, f"pc-{str(mid)[:8]}")) for mid, key in agents
    ]
    await report(swarm)
    del tasks


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
