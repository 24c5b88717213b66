"""One agent's (or one-time Support client's) control link as the hub holds it, and the
close codes the hub ends links with."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from fastapi import WebSocket

from fjernhjelp.control.messages import Dial


class CloseCode:
    REFUSED = 4401
    MALFORMED = 4400
    REPLACED = 4409  # the same machine connected again; the newer link wins
    # A Support client's session is over and the client did not close its link within
    # the grace time (support_link_grace_seconds).
    SESSION_OVER = 4410
    # The login's batch did not commit (the database is away): nothing was kept, the
    # agent comes back with its back-off.
    TRY_AGAIN = 1013


@dataclass(slots=True)
class AgentLink:
    machine_id: uuid.UUID
    websocket: WebSocket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # A one-time Support client's link (keyed by its session's id), not an agent's.
    support: bool = False
    # Set for a Support link once its session is over: the server closes the link if
    # the client has not, this long after (the client's last reports come first).
    closer: asyncio.Task[None] | None = None

    async def send(self, text: str) -> None:
        async with self.lock:
            await self.websocket.send_text(text)


def dial_json(command: Dial) -> str:
    # Without empty fields: agents that predate a field refuse a message that names it.
    return command.model_dump_json(exclude_none=True)
