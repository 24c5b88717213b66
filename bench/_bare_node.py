"""The baseline node of bench/fleet.py: a bare `websockets` server doing the control
link's crypto (sign a fresh challenge, verify the agent's proof against its known key)
with no database, no Redis, no audit, then holding the idle connection.

Run: python bench/_bare_node.py PORT KEYS.json
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fjernhjelp.control import statements
from fjernhjelp.control.messages import b64, unb64
from fjernhjelp.server.agent_listener import BACKLOG


async def main(port: int, keys: dict[str, Any]) -> None:
    server = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(keys["server_seed"]))
    agents = {m: bytes.fromhex(k) for m, k in keys["agents"].items()}

    async def hold(ws: websockets.ServerConnection) -> None:
        nonce = os.urandom(statements.NONCE_BYTES)
        signature = server.sign(statements.server_challenge_statement(nonce))
        await ws.send(
            json.dumps({"type": "challenge", "nonce": b64(nonce), "signature": b64(signature)})
        )
        hello = json.loads(await ws.recv())
        mid = uuid.UUID(hello["machine_id"])
        Ed25519PublicKey.from_public_bytes(agents[str(mid)]).verify(
            unb64(hello["signature"], 64), statements.agent_proof_statement(nonce, mid)
        )
        await ws.send(
            json.dumps({"type": "welcome", "machine_id": str(mid), "heartbeat_seconds": 30})
        )
        await ws.wait_closed()

    # The listen backlog of server/agent_listener.py: a storm queues, it is not dropped.
    async with websockets.serve(
        hold, "127.0.0.1", port, compression=None, max_size=64 * 1024, backlog=BACKLOG
    ):
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(15, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())))
