from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fjernhjelp.portal.models import Permission
from tests.live.live import LiveSite
from tests.portal.world import CLAUSE, build_world

# The agents here run as root, so their shells need "terminal as administrator".
FULL = frozenset(
    {
        Permission.VIEW,
        Permission.CONTROL,
        Permission.TERMINAL,
        Permission.TERMINAL_ADMIN,
        Permission.FILES,
    }
)


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    """A pre-approved grant with every permission but chat, and a running server."""
    world = build_world(db, state, agreement=False)
    world.agreement = world.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
    world.grant = world.make_grant(permissions=FULL, consent_required=False)
    live = LiveSite(world, tmp_path, database_url)
    live.start_server()
    yield live
    live.stop()


