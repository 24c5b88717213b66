"""A throwaway site for benchmarks: database, portal world, a server process, a package.

Built from the same pieces as the live tests (tests/live/live.py), outside pytest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.live.live import LiveSite
from tests.portal.world import CLAUSE, build_world

from fjernhjelp.caller import Caller
from fjernhjelp.config import Settings
from fjernhjelp.db import migrate
from fjernhjelp.machines import packages
from fjernhjelp.portal.models import Permission
from fjernhjelp.server.state import build_state

FULL = frozenset({Permission.VIEW, Permission.CONTROL, Permission.TERMINAL, Permission.FILES})


@contextlib.contextmanager
def live_site(database_url: str | None = None) -> Iterator[LiveSite]:
    tmp = Path(tempfile.mkdtemp(prefix="fjh-bench-"))
    url = database_url or f"sqlite:///{tmp / 'bench.db'}"
    settings = Settings(
        data_dir=tmp / "data",
        database_url=url,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )
    state = build_state(settings)
    migrate.upgrade(state.engine)
    with state.readers() as db:
        world = build_world(db, state, agreement=False)
        world.agreement = world.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
        world.grant = world.make_grant(permissions=FULL, consent_required=False)
        site = LiveSite(world, tmp, url)
        site.start_server()
        try:
            yield site
        finally:
            site.stop()
            state.engine.dispose()
            # Agent homes, logs and the database; a kept copy is of no use after the run.
            if not os.environ.get("FJH_BENCH_KEEP"):
                shutil.rmtree(tmp, ignore_errors=True)


def package_for(site: LiveSite, uses: int) -> bytes:
    db = site.world.db
    assert site.server is not None
    made = packages.create(
        db,
        Caller.of_person(site.world.gp_admin.user, site.state.now()),
        group_id=site.world.group.id,
        label="bench",
        lifetime=timedelta(hours=2),
        max_uses=uses,
        server_url=site.server.url,
        signing_key=site.state.keys.signing,
    )
    db.commit()
    return made.file_bytes
