"""The lean relay listener with TLS terminated by the node itself (``tls_cert``, as a
node without a TLS-terminating front serves it): the spliced path under uvloop's TLS,
where reads hold several frames and partial ones, passes every record whole, in order,
unchanged, both ways, and counts them."""

from __future__ import annotations

import json
import os
import ssl
import uuid
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from fjernhjelp.remote.models import SessionStatus
from fjernhjelp.tunnel.limits import MAX_RECORD
from tests.agent.test_relay_dial import certificate  # noqa: F401 (a fixture)
from tests.conftest import test_settings as settings_for
from tests.server.test_relay_listener import (  # noqa: F401 (lean is a fixture)
    _closed_with,
    _ended,
    _port,
    _session,
    lean,
)


@pytest.fixture
def settings(tmp_path, database_url, certificate):  # type: ignore[no-untyped-def]  # noqa: F811
    cert, key = certificate
    return settings_for(
        tmp_path, database_url, relay_bind=f"127.0.0.1:{_port()}", tls_cert=cert, tls_key=key
    )


def _join(url: str, sid: uuid.UUID, role: str, token: str, cert: Path) -> ClientConnection:
    ws = connect(
        f"{url.replace('ws://', 'wss://')}/relay/{sid}",
        ssl=ssl.create_default_context(cafile=str(cert)),
        compression=None,
        max_size=1 << 20,
        open_timeout=30,
        legacy=True,
    )
    ws.send(json.dumps({"role": role, "token": token}))
    return ws


def test_records_pass_unchanged_through_tls_at_the_node(lean, db, state, certificate) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _, url, site, written = lean
    cert, _ = certificate
    sid, _, tech_token, agent_token = _session(db, state, site)
    tech = _join(url, sid, "technician", tech_token, cert)
    agent = _join(url, sid, "agent", agent_token, cert)
    # A burst, so that reads hold several frames (and partial ones) to pass at once.
    sizes = [MAX_RECORD, 16 * 1024, 1, 125, 126, 65535, 65536, MAX_RECORD, 3000] * 4
    burst = [os.urandom(n) for n in sizes]
    for record in burst:
        tech.send(record)
    for record in burst:
        assert agent.recv(timeout=30) == record
    answers = [os.urandom(n) for n in (16 * 1024, 7, 16 * 1024)]
    for record in answers:
        agent.send(record)
    for record in answers:
        assert tech.recv(timeout=30) == record
    tech.close()
    assert _closed_with(agent) == 4000
    row = _ended(db, sid, written)
    assert (row.status, row.end_reason) == (SessionStatus.ENDED, "technician_closed")
    assert (row.bytes_from_technician, row.bytes_from_agent) == (
        sum(sizes),
        sum(len(a) for a in answers),
    )
