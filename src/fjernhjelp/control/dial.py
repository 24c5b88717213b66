"""Where an agent may dial a relay: the rule both ends share.

A ``Dial`` names the relay URL the agent connects to. The agent accepts it only when

* the scheme is ``wss`` — plain ``ws`` only when the pinned server URL is itself plain
  ``http`` on a loopback address (development, the tests and the demo) and the relay is
  on a loopback address too;
* the path is the relay endpoint of this very session (``…/relay/<session id>``), with no
  user name, password, query or fragment;
* and either the URL is on the pinned server's origin (scheme, host and port of the
  server URL from the installer package, with that URL's path before ``/relay/``), or the
  Dial carries the pinned server key's signature over the session id and the exact URL
  (``statements.relay_statement``). A server behind a load balancer that does not hash
  ``/relay/…`` sends each node's own URL (``FJERNHJELP_NODE_URL``) signed this way.

So neither whoever can inject a control message nor a server node that was told a wrong
node URL can point the agent at another host or at a plaintext socket. The tunnel inside
is end-to-end encrypted either way; this keeps the agent from being used to reach hosts
its network can reach and the server's cannot, and keeps metadata off plaintext links.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fjernhjelp.control import statements
from fjernhjelp.control.messages import Dial, MalformedMessage, b64, unb64

Reason = Literal["malformed", "not_tls", "wrong_path", "other_origin", "bad_signature"]

_DEFAULT_PORT = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_SECURE = {"https": True, "wss": True, "http": False, "ws": False}


class DialRefused(Exception):
    """The agent will not dial this URL; ``reason`` is one of ``Reason``."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: Reason = reason
        self.message = message


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(parts: SplitResult) -> tuple[bool, str, int]:
    port = parts.port or _DEFAULT_PORT[parts.scheme]
    return _SECURE[parts.scheme], (parts.hostname or "").lower(), port


def plaintext_allowed(server_url: str) -> bool:
    """Plain ws:// relays only for a pinned plain-http loopback server (tests, demo)."""
    pinned = urlsplit(server_url)
    return pinned.scheme == "http" and is_loopback(pinned.hostname)


def relay_origin(url: str) -> str:
    """``scheme://host:port`` of a relay URL, for logs and audit (never the token)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"[:120]
    except ValueError:
        return "unparseable"


def on_server_origin(relay_url: str, session_id: uuid.UUID, server_url: str) -> bool:
    """The relay URL is the server URL's own relay endpoint for this session."""
    try:
        parts, pinned = urlsplit(relay_url), urlsplit(server_url)
        if parts.scheme not in _SECURE or pinned.scheme not in _SECURE:
            return False
        same = _origin(parts) == _origin(pinned)
    except ValueError:
        return False
    return same and parts.path == f"{pinned.path.rstrip('/')}/relay/{session_id}"


def check_dial(dial: Dial, *, server_url: str, server_key: Ed25519PublicKey) -> None:
    """Raise DialRefused unless the agent may dial ``dial.relay_url``."""
    try:
        parts = urlsplit(dial.relay_url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise DialRefused("not_tls", "the relay URL is not a WebSocket URL")
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise DialRefused("malformed", "the relay URL cannot be parsed") from exc
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise DialRefused("malformed", "the relay URL carries credentials, a query or a fragment")
    if parts.scheme == "ws" and not (plaintext_allowed(server_url) and is_loopback(parts.hostname)):
        raise DialRefused("not_tls", "a relay must be reached over TLS (wss://)")
    suffix = f"/relay/{dial.session_id}"
    if not parts.path.endswith(suffix):
        raise DialRefused("wrong_path", "the relay URL is not this session's relay endpoint")
    if on_server_origin(dial.relay_url, dial.session_id, server_url):
        return
    if dial.relay_signature is None:
        raise DialRefused("other_origin", "the relay is not on the pinned server's origin")
    try:
        server_key.verify(
            unb64(dial.relay_signature, 64),
            statements.relay_statement(dial.session_id, dial.relay_url),
        )
    except (InvalidSignature, MalformedMessage) as exc:
        raise DialRefused("bad_signature", "the relay URL is not signed by the pinned key") from exc


def make_dial(
    signing_key: Ed25519PrivateKey,
    *,
    session_id: uuid.UUID,
    relay_url: str,
    relay_token: str,
    public_url: str,
) -> Dial:
    """The server's Dial, signed when the relay URL is not the public URL's own (a node
    URL). Unsigned Dials stay readable by agents that predate the signature."""
    signature = None
    if not on_server_origin(relay_url, session_id, public_url):
        signature = b64(signing_key.sign(statements.relay_statement(session_id, relay_url)))
    return Dial(
        session_id=session_id,
        relay_url=relay_url,
        relay_token=relay_token,
        relay_signature=signature,
    )
