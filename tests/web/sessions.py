"""Starting a session between the page's JavaScript technician and a Python agent."""

from __future__ import annotations

from typing import Any

from tests.web.agent import AgentSide


def connect_page(
    page: Any, agent: AgentSide, options: dict[str, Any] | None = None, **ticket: Any
) -> Any:
    """Key in the page, ticket from the "server", handshake through the relay. Returns
    "open" or the page's description of the failure."""
    public_key = page.evaluate("window.fjh.newEphemeral()")
    info = agent.issue(public_key, **ticket)
    return page.evaluate("([i, o]) => window.fjh.connectTo(i, o)", [info, options or {}])
