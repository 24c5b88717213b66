from __future__ import annotations

import pytest

from tests.portal.world import World, build_world


@pytest.fixture
def world(db, state) -> World:  # type: ignore[no-untyped-def]
    return build_world(db, state)
