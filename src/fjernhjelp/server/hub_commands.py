"""What the hub tells agents, wherever in the cluster their links are: dial a relay, a
session cut, a link closed. A command for an agent held by another node travels over the
cluster bus (server/cluster.py); each node hands what it receives to its own links.
AgentHub (server/agent_hub.py) takes these with the links and the login."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from fjernhjelp.control.messages import Cut, Dial
from fjernhjelp.server.agent_link import AgentLink, CloseCode, dial_json
from fjernhjelp.server.cluster import Cluster, Message
from fjernhjelp.server.relay import Relay

_log = logging.getLogger(__name__)


class HubCommands:
    """The commands' half of AgentHub."""

    if TYPE_CHECKING:
        # What AgentHub provides, declared for the type checker only.
        links: dict[uuid.UUID, AgentLink]
        cluster: Cluster
        relay: Relay
        _sending: set[asyncio.Task[None]]

        def _close_when_over(self, link: AgentLink) -> None: ...

    async def dial(self, machine_id: uuid.UUID, command: Dial) -> bool:
        """Tell the agent to dial the relay, wherever it is connected. False if offline."""
        link = self.links.get(machine_id)
        if link is not None:
            await link.send(dial_json(command))
            return True
        node = await self.cluster.locate(str(machine_id))
        if node is None or node == self.cluster.node_id:
            return False
        # A node that holds the agent's presence but no longer listens (killed, its keys
        # not yet expired) cannot pass the dial on: the agent is as good as offline.
        return await self.cluster.send_to_node(
            node,
            {
                "type": "dial",
                "machine_id": str(machine_id),
                "command": command.model_dump(mode="json", exclude_none=True),
            },
        )

    async def cut(
        self,
        session_id: uuid.UUID,
        machine_id: uuid.UUID,
        reason: str,
        *,
        relay_node: str | None = None,
    ) -> None:
        """Cut a session: the relay closes both ends and records why, the agent is told.

        With ``relay_node`` (the node that recorded the session, where its relay is), the
        cut goes there first and that node tells the agent once its relay has taken the
        reason. Told at the same moment by the node holding its link, the agent could
        close its end before the relay on another node had heard of the cut, and the
        session was recorded as "agent_closed" instead of why it was cut (a CI run of the
        several-node test). When that node does not listen (killed, or unknown), or is
        not named, every node cuts and the agent is told at once: the relay's record
        matters less than the cut."""
        message: Message = {
            "type": "cut",
            "session_id": str(session_id),
            "machine_id": str(machine_id),
            "reason": reason,
        }
        if relay_node is not None and await self.cluster.send_to_node(
            relay_node, {**message, "type": "cut_relay_first"}
        ):
            return
        await self.cluster.broadcast(message)

    async def disconnect(self, machine_id: uuid.UUID, reason: str) -> None:
        """Close the machine's control link on whichever node holds it (a removed
        machine); its key is refused when it dials back."""
        await self.cluster.broadcast(
            {"type": "disconnect", "machine_id": str(machine_id), "reason": reason}
        )

    async def _close_link(self, machine_id: uuid.UUID, reason: str) -> None:
        link = self.links.get(machine_id)
        if link is not None:
            with contextlib.suppress(Exception):
                await link.websocket.close(CloseCode.REFUSED, reason[:100])

    async def _on_cluster_message(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "dial":
            link = self.links.get(uuid.UUID(message["machine_id"]))
            if link is not None:
                self._send_soon(link, dial_json(Dial.model_validate(message["command"])))
        elif kind == "cut":
            self.relay.cut(message["session_id"], message["reason"])
            self._tell_cut(message)
        elif kind == "cut_relay_first":
            # This node holds the session's relay (AgentHub.cut): the relay takes the
            # cut's reason before the agent hears of it.
            self.relay.cut(message["session_id"], message["reason"])
            await self._pass_cut_to_agent(message)
        elif kind == "cut_agent":
            self._tell_cut(message)
        elif kind == "disconnect":
            await self._close_link(uuid.UUID(message["machine_id"]), message["reason"])

    def _tell_cut(self, message: Message) -> None:
        """Tell the agent (or Support client) of a cut, if its link is on this node."""
        link = self.links.get(uuid.UUID(message["machine_id"]))
        if link is None:
            return
        cut = Cut(session_id=uuid.UUID(message["session_id"]), reason=message["reason"][:64])
        self._send_soon(link, cut.model_dump_json())
        if link.support:
            self._close_when_over(link)

    async def _pass_cut_to_agent(self, message: Message) -> None:
        """After the relay here has cut: the agent, wherever its link is."""
        told: Message = {**message, "type": "cut_agent"}
        if self.links.get(uuid.UUID(message["machine_id"])) is not None:
            self._tell_cut(told)
            return
        try:
            node = await self.cluster.locate(message["machine_id"])
        except RedisError:
            # Nobody can say where the agent is: every node looks (the bus may be back).
            _log.warning("cut %s: the agent's node is unknown, told to all", message["session_id"])
            await self.cluster.broadcast(told)
            return
        if node is not None and node != self.cluster.node_id:
            await self.cluster.send_to_node(node, told)

    def _send_soon(self, link: AgentLink, text: str) -> None:
        """Send to a link from a task of its own, not from the cluster bus's handler: the
        bus hands this node its messages one at a time, and a send waits while the agent
        does not read (up to control_socket.DRAIN_TIMEOUT), so one such agent held up
        every dial and cut for the node's other agents meanwhile (found by review). The
        link's lock is taken in the order the tasks start, so its messages keep their
        order."""

        async def send() -> None:
            try:
                await link.send(text)
            except Exception:  # the link is ending; its handler records how
                _log.debug("a message to %s was not sent: its link is ending", link.machine_id)

        task = asyncio.get_running_loop().create_task(send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
