"""/metrics answers only the addresses ``metrics_allow`` names; others get a 404 that is
counted as a probe of their address (one audit event per interval), and nothing leaks.
The numbers moving with real agents, sessions and logins: tests/live/test_metrics_live.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from fjernhjelp import metrics
from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.db import migrate
from fjernhjelp.server.app import create_app
from fjernhjelp.server.metrics_endpoint import PROBE_KIND
from fjernhjelp.server.state import build_state
from tests import conftest


def _client(app, host: str, **headers: str) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(app, client=(host, 50000), headers=headers, follow_redirects=False)


def test_metrics_for_allowed_addresses_only(tmp_path: Path, database_url: str) -> None:
    settings = conftest.test_settings(
        tmp_path,
        database_url,
        metrics_allow=["127.0.0.0/8", "::1/128"],
        trusted_proxies=["127.0.0.2"],
    )
    state = build_state(settings)
    migrate.upgrade(state.engine)
    app = create_app(state=state)
    try:
        with _client(app, "127.0.0.1") as ok:
            r = ok.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain")
            names = {f.name for f in text_string_to_metric_families(r.text)}
            for name in (
                "fjernhjelp_agents_connected",
                "fjernhjelp_sessions",
                "fjernhjelp_relay_live_sessions",
                "fjernhjelp_relay_bytes",
                "fjernhjelp_logins",
                "fjernhjelp_refusals",
                "fjernhjelp_audit_append_seconds",
                "fjernhjelp_event_loop_lag_seconds",
            ):
                assert name in names, name
            assert 'fjernhjelp_sessions{kind="access",state="active"} 0.0' in r.text
            # The dashboard in docs/ asks only for series that exist.
            # (a labelled counter nobody has moved yet is served as its HELP and TYPE)
            suffixes = ("", "_total", "_bucket", "_count", "_sum")
            served = {f.name + x for f in text_string_to_metric_families(r.text) for x in suffixes}
            dashboard = (Path(__file__).parents[2] / "docs" / "grafana-fjernhjelp.json").read_text()
            asked = set(re.findall(r"fjernhjelp_[a-z_]+", dashboard)) - {"fjernhjelp_"}
            assert asked and asked <= served, asked - served

        # Elsewhere: 404 like any unknown path, whether it asks directly or through the
        # trusted proxy (whose X-Forwarded-For names the real caller)...
        with _client(app, "203.0.113.9") as outsider:
            assert outsider.get("/metrics").status_code == 404
        with _client(app, "127.0.0.2", **{"x-forwarded-for": "203.0.113.9"}) as proxied:
            r = proxied.get("/metrics")
            assert r.status_code == 404 and "fjernhjelp_" not in r.text
        # ... and a name that is not an address is nobody's.
        with _client(app, "testclient") as named:
            assert named.get("/metrics").status_code == 404

        # Counted per address and written as probing events when the interval ends or
        # the server stops (server/probes.py), as each client above stopped it.
        with state.readers() as db:
            events = list(
                db.execute(
                    select(AuditEvent).where(AuditEvent.action == "security.probing")
                ).scalars()
            )
        kinds: dict[str | None, dict[str, int]] = {}
        for event in events:
            for kind, count in json.loads(event.details or "{}")["kinds"].items():
                seen = kinds.setdefault(event.source_address, {})
                seen[kind] = seen.get(kind, 0) + count
        assert kinds == {"203.0.113.9": {PROBE_KIND: 2}, "testclient": {PROBE_KIND: 1}}
        assert all(e.outcome == "denied" for e in events)
    finally:
        state.engine.dispose()


def test_reasons_cannot_grow_the_label_space(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(metrics, "_reasons", set())
    assert metrics.bounded_reason("bad_credentials") == "bad_credentials"
    assert metrics.bounded_reason("Kari Nordmann's laptop") == "other"
    assert metrics.bounded_reason(None) == "none"
    for i in range(metrics.MAX_REASONS + 10):
        metrics.bounded_reason(f"made_up_{i}")
    assert metrics.bounded_reason("another_new_one") == "other"
