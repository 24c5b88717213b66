"""/metrics on a real server: the numbers move when an agent connects, a session runs
through the relay and a login is refused."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from fjernhjelp.caller import Caller
from fjernhjelp.remote import sessions
from tests.live.conftest import FULL
from tests.live.live import LiveSite
from tests.portal.world import CLAUSE, build_world

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def metrics_site(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    world = build_world(db, state, agreement=False)
    world.agreement = world.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
    world.grant = world.make_grant(permissions=FULL, consent_required=False)
    live = LiveSite(world, tmp_path, database_url)
    live.start_server(extra_env={"FJERNHJELP_METRICS_ALLOW": '["127.0.0.0/8"]'})
    yield live
    live.stop()


def _scrape(site: LiveSite) -> Samples:
    assert site.server is not None
    r = httpx.get(site.server.url + "/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def _wait(site: LiveSite, check: Callable[[Samples], bool], timeout: float = 30) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = _scrape(site)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise TimeoutError("the metrics did not move")
        time.sleep(0.2)


def test_the_numbers_move(metrics_site: LiveSite) -> None:
    site = metrics_site
    before = _scrape(site)
    assert _value(before, "fjernhjelp_agents_connected") == 0

    # An agent connects.
    site.agent("pc-metrics").start()
    token = site.api_token(site.world.tech)
    (machine,) = site.wait_online(token, {"pc-metrics"})
    now = _wait(site, lambda s: _value(s, "fjernhjelp_agents_connected") == 1)
    appended = "fjernhjelp_audit_append_seconds_count"
    assert _value(now, appended) > _value(before, appended)
    assert _value(now, "fjernhjelp_logins_total", step="factor", outcome="success") >= 1

    # A login is refused.
    assert site.server is not None
    refused = httpx.post(
        site.server.url + "/api/v1/auth/login",
        json={"username": site.world.tech.username, "password": "not the password at all"},
    )
    assert refused.status_code == 401
    failed = {"step": "password", "outcome": "failure"}
    after_login = _scrape(site)
    assert _value(after_login, "fjernhjelp_logins_total", **failed) == (
        _value(now, "fjernhjelp_logins_total", **failed) + 1
    )
    refusal = {"action": "auth.login.password"}
    assert _value(after_login, "fjernhjelp_refusals_total", **refusal) == (
        _value(now, "fjernhjelp_refusals_total", **refusal) + 1
    )

    # A session runs through the relay: 3 x 1000 bytes one way, 10 back.
    db = site.world.db
    db.rollback()
    issued = sessions.request(
        db,
        Caller.of_person(site.world.tech.user, site.state.now()),
        machine_id=uuid.UUID(machine["id"]),
        technician_key=os.urandom(32),
        signing_key=site.state.keys.signing,
        node_id="test-node",
    )
    db.commit()
    url = site.server.url.replace("http", "ws") + f"/relay/{issued.session.id}"
    with connect(url) as tech, connect(url) as agent:
        tech.send(json.dumps({"role": "technician", "token": issued.technician_token}))
        agent.send(json.dumps({"role": "agent", "token": issued.agent_token}))
        for _ in range(3):
            tech.send(b"x" * 1000)
            assert agent.recv(timeout=30) == b"x" * 1000
        running = _wait(
            site, lambda s: _value(s, "fjernhjelp_sessions", kind="access", state="active") == 1
        )
        assert _value(running, "fjernhjelp_relay_live_sessions") == 1
        assert _value(running, "fjernhjelp_relay_live_bytes", source="technician") == 3000
        agent.send(b"y" * 10)
        assert tech.recv(timeout=30) == b"y" * 10
    ended = "fjernhjelp_relay_sessions_ended_total"
    done = _wait(site, lambda s: _value(s, ended) == _value(before, ended) + 1)
    assert _value(done, "fjernhjelp_relay_live_sessions") == 0
    for source, count in (("technician", 3000), ("agent", 10)):
        moved = _value(done, "fjernhjelp_relay_bytes_total", source=source)
        assert moved - _value(before, "fjernhjelp_relay_bytes_total", source=source) == count
    done = _wait(
        site, lambda s: _value(s, "fjernhjelp_sessions", kind="access", state="ended") == 1
    )
    assert _value(done, "fjernhjelp_sessions", kind="access", state="active") == 0
    assert "fjernhjelp_event_loop_lag_seconds" in {name for name, _ in done}
