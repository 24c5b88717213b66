"""The browser's tunnel (static/js/tunnel/) agrees byte for byte with the shared test
vectors (docs/tunnel.md §16) computed by the Python implementation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

VECTORS = json.loads(
    (Path(__file__).parents[2] / "data" / "vectors" / "tunnel-v1.json").read_text()
)


def test_every_vector_value_is_reproduced(tunnel_page) -> None:
    got = tunnel_page.evaluate("window.fjh.computeVectors()")
    v = VECTORS
    assert got["technician_ephemeral"] == v["public_keys"]["technician_ephemeral"]
    assert got["technician_key_sha256"] == v["ticket"]["technician_key_sha256"]
    assert got["hello"] == v["handshake"]["hello"]
    assert got["transcript_hash"] == v["handshake"]["transcript_hash"]
    assert got["shared_secret"] == v["handshake"]["shared_secret"]
    assert got["key_technician_to_agent"] == v["handshake"]["key_technician_to_agent"]
    assert got["key_agent_to_technician"] == v["handshake"]["key_agent_to_technician"]
    t2a, a2t = v["records"]["technician_to_agent"], v["records"]["agent_to_technician"]
    assert got["t2a_frames"] == [r["frame"] for r in t2a]
    assert got["t2a_records"] == [r["record"] for r in t2a]
    assert got["a2t_frames"] == [r["frame"] for r in a2t]
    assert [p[0] for p in got["a2t_parsed"]] == [7, 2, 3, 3, 4, 8]
    assert got["goodbye"] == {"code": 6, "text": "Avsluttet av brukeren"}
    assert got["refuse"] == {"name": "Refused", "code": 9, "slug": "key-mismatch"}


def test_every_altered_vector_is_refused(tunnel_page) -> None:
    got = tunnel_page.evaluate("window.fjh.negativeVectors()")
    assert got["valid"] == "accepted"
    assert got["other_listed_key"] == "AgentKeyMismatch"
    assert got["flipped_signature"] == "BadAgentSignature"
    # The signature covers the agent's ephemeral key and our HELLO's random.
    assert got["flipped_agent_ephemeral"] == "BadAgentSignature"
    assert got["other_hello_random"] == "BadAgentSignature"
    assert got["wrong_version"] == "MalformedHandshake"
    assert got["short"] == "MalformedHandshake"
    assert got["bad_magic"] == "MalformedHandshake"
    assert got["refuse_too_long"] == "MalformedHandshake"
    assert got["records_in_order"] == "opened 6"
    assert got["records_tampered"] == "RecordError after 1, then RecordError"
    assert got["records_header_tampered"] == "RecordError after 1, then RecordError"
    assert got["records_replayed"] == "RecordError after 1, then RecordError"
    assert got["records_reordered"] == "RecordError after 1, then RecordError"
    assert got["records_dropped"] == "RecordError after 1, then RecordError"
    assert got["records_truncated"] == "RecordError after 0, then RecordError"
    assert got["record_reflected"] == "RecordError"
    frames = got["frames"]
    assert frames.pop("empty_end") == "parsed"
    assert frames == dict.fromkeys(frames, "ProtocolError:1")
