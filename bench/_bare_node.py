"""The baseline node of bench/fleet.py: a bare `websockets` server doing the control
link's crypto (sign a fresh challenge, verify the agent's proof against its known key)
with no database, no Redis, no audit, then holding the idle connection.

Run: python bench/_bare_node.py PORT HEALTH_PORT KEYS.json (HEALTH_PORT answers /healthz)
"""

from __future__ import annotations

import asyncio
import http
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
from websockets.http11 import Request, Response

from fjernhjelp.control import statements
from fjernhjelp.control.messages import b64, unb64
from fjernhjelp.server.agent_listener import BACKLOG


async def main(port: int, health_port: int, keys: dict[str, Any]) -> None:
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

    def healthz(conn: websockets.ServerConnection, request: Request) -> Response:
        # HAProxy's check (bench/fleet-haproxy.cfg), on a port of its own in the same
        # process, as a node's /healthz is on its main port and not its agent listener.
        status = http.HTTPStatus.OK if request.path == "/healthz" else http.HTTPStatus.NOT_FOUND
        return conn.respond(status, "ok\n")

    async def never(ws: websockets.ServerConnection) -> None:
        raise AssertionError("answered before the upgrade")

    # The listen backlog of server/agent_listener.py: a storm queues, it is not dropped.
    async with (
        websockets.serve(
            hold, "127.0.0.1", port, compression=None, max_size=64 * 1024, backlog=BACKLOG
        ),
        websockets.serve(never, "127.0.0.1", health_port, process_request=healthz),
    ):
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(15, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text())))
