"""The rule for where an agent may dial a relay (control.dial), case by case."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.control import statements
from fjernhjelp.control.dial import DialRefused, check_dial, make_dial
from fjernhjelp.control.messages import Dial, b64

SERVER = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
SID = uuid.UUID("6f1c2d9e-0000-4000-8000-000000000001")
ELSE = uuid.UUID("6f1c2d9e-0000-4000-8000-000000000002")


def dial(
    url: str,
    signed_by: Ed25519PrivateKey | None = None,
    *,
    over: str | None = None,
    session: uuid.UUID = SID,
) -> Dial:
    signature = None
    if signed_by is not None:
        statement = statements.relay_statement(session, over or url)
        signature = b64(signed_by.sign(statement))
    return Dial(session_id=SID, relay_url=url, relay_token="t", relay_signature=signature)


LOCAL = "http://127.0.0.1:8080"
PUBLIC = "https://fjernhjelp.example"
CASES = [
    # pinned, dial, expected refusal (None: accepted)
    (LOCAL, dial(f"ws://127.0.0.1:8080/relay/{SID}"), None),
    (LOCAL, dial(f"ws://localhost:8080/relay/{SID}"), "other_origin"),
    (LOCAL, dial(f"ws://localhost:8080/relay/{SID}", SERVER), None),
    (LOCAL, dial(f"ws://127.0.0.1:9999/relay/{SID}"), "other_origin"),
    (LOCAL, dial(f"ws://fjernhjelp.example/relay/{SID}", SERVER), "not_tls"),
    (LOCAL, dial(f"ws://192.0.2.7:8080/relay/{SID}", SERVER), "not_tls"),
    (LOCAL, dial(f"wss://evil.example/relay/{SID}"), "other_origin"),
    (LOCAL, dial(f"wss://evil.example/relay/{SID}", OTHER), "bad_signature"),
    (LOCAL, dial(f"wss://evil.example/relay/{SID}", SERVER, session=ELSE), "bad_signature"),
    (
        LOCAL,
        dial(f"wss://evil.example/relay/{SID}", SERVER, over=f"wss://n2/relay/{SID}"),
        "bad_signature",
    ),
    (LOCAL, dial(f"ws://127.0.0.1:8080/relay/{ELSE}"), "wrong_path"),
    (LOCAL, dial("ws://127.0.0.1:8080/agent/control"), "wrong_path"),
    (LOCAL, dial(f"ws://u:p@127.0.0.1:8080/relay/{SID}"), "malformed"),
    (LOCAL, dial(f"ws://127.0.0.1:8080/relay/{SID}?next=x"), "malformed"),
    (LOCAL, dial(f"ws://127.0.0.1:port/relay/{SID}"), "malformed"),
    (LOCAL, dial(f"http://127.0.0.1:8080/relay/{SID}"), "not_tls"),
    (PUBLIC, dial(f"wss://fjernhjelp.example/relay/{SID}"), None),
    (PUBLIC, dial(f"wss://FJERNHJELP.example:443/relay/{SID}"), None),
    (PUBLIC, dial(f"ws://fjernhjelp.example/relay/{SID}"), "not_tls"),
    (PUBLIC, dial(f"ws://fjernhjelp.example/relay/{SID}", SERVER), "not_tls"),
    (PUBLIC, dial(f"ws://127.0.0.1:8080/relay/{SID}", SERVER), "not_tls"),
    (PUBLIC, dial(f"wss://fjernhjelp.example:8443/relay/{SID}"), "other_origin"),
    (PUBLIC, dial(f"wss://node2.fjernhjelp.example/relay/{SID}"), "other_origin"),
    (PUBLIC, dial(f"wss://node2.fjernhjelp.example/relay/{SID}", SERVER), None),
    (PUBLIC, dial(f"wss://fjernhjelp.example/x/relay/{SID}"), "other_origin"),
    (PUBLIC + "/fh", dial(f"wss://fjernhjelp.example/fh/relay/{SID}"), None),
]


@pytest.mark.parametrize(("pinned", "command", "refusal"), CASES)
def test_the_agent_dials_only_its_servers_relays_over_tls(
    pinned: str, command: Dial, refusal: str | None
) -> None:
    if refusal is None:
        check_dial(command, server_url=pinned, server_key=SERVER.public_key())
        return
    with pytest.raises(DialRefused) as refused:
        check_dial(command, server_url=pinned, server_key=SERVER.public_key())
    assert refused.value.reason == refusal


def test_the_server_signs_a_node_url_and_only_that() -> None:
    own = make_dial(
        SERVER,
        session_id=SID,
        relay_url=f"wss://fjernhjelp.example/relay/{SID}",
        relay_token="t",
        public_url=PUBLIC,
    )
    node = make_dial(
        SERVER,
        session_id=SID,
        relay_url=f"wss://n2.fjernhjelp.example/relay/{SID}",
        relay_token="t",
        public_url=PUBLIC,
    )
    assert own.relay_signature is None and node.relay_signature is not None
    for command in (own, node):
        check_dial(command, server_url=PUBLIC, server_key=SERVER.public_key())
    # An agent that predates the field reads the unsigned Dial as before.
    assert "relay_signature" not in own.model_dump_json(exclude_none=True)
