"""Starting a session between the page's JavaScript technician and a Python agent."""

from __future__ import annotations

from typing import Any

from tests.e2e.js.agent import AgentSide


def connect_page(
    page: Any, agent: AgentSide, options: dict[str, Any] | None = None, **ticket: Any
) -> Any:
    """Key in the page, ticket from the "server", handshake through the relay. Returns
    "open" or the page's description of the failure."""
    public_key = page.evaluate("window.fjh.newEphemeral()")
    info = agent.issue(public_key, **ticket)
    return page.evaluate("([i, o]) => window.fjh.connectTo(i, o)", [info, options or {}])


def wait_until(page: Any, condition: str) -> None:
    """Waits for a JavaScript condition in the page. (Playwright's wait_for_function
    evaluates its text with eval, which the strict CSP forbids, as it should.)"""
    page.evaluate(
        f"async () => {{ while (!({condition})) await new Promise((r) => setTimeout(r, 10)); }}"
    )
