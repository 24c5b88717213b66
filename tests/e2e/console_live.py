"""What the console tests on a real machine share: a live site whose grant asks for
consent, logging the technician in through the page, and reading what the agent showed
the end user (the dialogs print their layout to the agent's log)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fjernhjelp.portal.models import Permission
from tests.helpers import PASSWORD
from tests.live.live import AgentProcess, LiveSite
from tests.portal.world import build_world

FULL = frozenset(
    {Permission.VIEW, Permission.CONTROL, Permission.TERMINAL, Permission.FILES, Permission.CHAT}
)


@contextmanager
def consent_site(  # type: ignore[no-untyped-def]
    db, state, database_url: str, tmp_path: Path, permissions: frozenset[Permission] = FULL
) -> Iterator[LiveSite]:
    """A running server whose one grant allows everything (but a shell as administrator,
    unless asked for), with the end user's consent."""
    world = build_world(db, state, grant=False)
    world.grant = world.make_grant(permissions=permissions, consent_required=True)
    live = LiveSite(world, tmp_path, database_url)
    live.start_server()
    try:
        yield live
    finally:
        live.stop()


def shown(agent: AgentProcess, what: str, after: int = 0, timeout: float = 30) -> dict:
    """The layout the agent logged when it showed dialog ``what`` for the (after+1)th time."""
    pattern = re.compile(re.escape(what) + r" shown: (\{.*\})")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        matches = pattern.findall(agent.log.read_text())
        if len(matches) > after:
            return json.loads(matches[after])
        time.sleep(0.2)
    raise TimeoutError(f"{what} #{after + 1} never shown:\n{agent.log.read_text()[-3000:]}")


def log_in(page, site: LiveSite) -> None:  # type: ignore[no-untyped-def]
    assert site.server is not None
    tech = site.world.tech
    page.goto(site.server.url + "/login")
    page.fill("input[name=username]", tech.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/login/factor**")
    assert tech.totp_secret
    # A code the server has not seen for this account (the API token may have used one).
    page.fill("input[name=code]", site.fresh_code(tech))
    page.click("button[type=submit]")
    page.wait_for_url("**/console")


def session_state(page, wanted: str) -> str:  # type: ignore[no-untyped-def]
    """Waits for the console's session state ``wanted``; returns the detail shown with it."""
    page.wait_for_selector(f'#state[data-state="{wanted}"]', timeout=60_000)
    return page.inner_text("#state-detail")
