"""Request hardening: security headers, CSRF tokens, and the client's real address."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fjernhjelp.config import Settings

_CSP_DIRECTIVES = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]
CSP = "; ".join(_CSP_DIRECTIVES)


def new_style_nonce() -> str:
    return secrets.token_urlsafe(18)


def csp_with_style_nonce(nonce: str) -> str:
    """The policy for a page whose scripts add <style> elements (xterm.js writes its
    dimension and theme rules into them and takes no nonce itself; the page stamps this
    one on each). Only <style> elements carrying the response's nonce are allowed;
    style attributes stay refused and 'unsafe-inline' is never used."""
    return "; ".join([*_CSP_DIRECTIVES, f"style-src-elem 'self' 'nonce-{nonce}'"])


class SecurityHeaders:
    """Pure ASGI, so it adds no cost to WebSocket traffic (it only touches HTTP)."""

    def __init__(self, app: ASGIApp, *, hsts: bool, relay_origin: str | None = None) -> None:
        self.app = app
        self.hsts = hsts
        # A relay on an origin of its own (relay_origin below): the pages may open their
        # WebSockets there too, and nowhere else.
        self.connect = f"connect-src 'self' {relay_origin}" if relay_origin else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                if self.connect:
                    policy = headers["Content-Security-Policy"]
                    headers["Content-Security-Policy"] = policy.replace(
                        "connect-src 'self'", self.connect
                    )
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Cross-Origin-Resource-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                headers.setdefault("Cache-Control", "no-store")
                if self.hsts:
                    headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def relay_origin(settings: Settings) -> str | None:
    """The relay's origin (``wss://host:port``) when it is not the pages' own: a node
    that serves its relay on a lean listener of its own port (FJERNHJELP_RELAY_BIND)
    with FJERNHJELP_NODE_URL naming it. None when the relay is on the pages' origin."""
    relay = urlsplit(settings.relay_base_url)
    pages = urlsplit(settings.effective_public_url)
    secure = {"wss": "https", "ws": "http"}.get(relay.scheme, relay.scheme)
    default = {"https": 443, "http": 80}
    if (secure, relay.hostname, relay.port or default.get(secure)) == (
        pages.scheme,
        pages.hostname,
        pages.port or default.get(pages.scheme),
    ):
        return None
    host = f"[{relay.hostname}]" if relay.hostname and ":" in relay.hostname else relay.hostname
    return f"{relay.scheme}://{host}" + (f":{relay.port}" if relay.port else "")


def cookie_name(settings: Settings, name: str) -> str:
    # __Host- cookies are bound to this exact origin, path / and TLS: a sibling
    # subdomain cannot plant or overwrite them.
    return f"__Host-{name}" if settings.secure_cookies else name


def new_csrf_seed() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(key: bytes, seed: str) -> str:
    mac = hmac.new(key, b"csrf\x00" + seed.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def csrf_valid(key: bytes, seed: str | None, token: str | None) -> bool:
    if not seed or not token:
        return False
    return hmac.compare_digest(csrf_token(key, seed), token)


_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])
_EXEMPT = "__csrf_exempt__"


def csrf_exempt(reason: str) -> Callable[[_Endpoint], _Endpoint]:
    """Mark an endpoint as taking no ambient credential, so the app-wide CSRF check
    (deps.csrf_protect) lets it through. Every use is listed, with its reason, in
    tests/server/test_csrf_everywhere.py; adding one means adding it there."""

    def mark(endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, _EXEMPT, reason)
        return endpoint

    return mark


def csrf_exemption(endpoint: object) -> str | None:
    """Why ``endpoint`` is exempt from the CSRF check, or None when it is checked."""
    return getattr(endpoint, _EXEMPT, None)


def client_address(peer: str | None, forwarded_for: str | None, settings: Settings) -> str | None:
    """The peer address, or, when the peer is a trusted proxy, the nearest address in
    X-Forwarded-For that is not itself a trusted proxy."""
    if peer is None:
        return None
    networks = settings.trusted_proxy_networks
    if not networks or not forwarded_for:
        return peer

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in networks)

    if not trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop
    return peer


class CsrfSeedCookie:
    """Gives every browser a random CSRF seed cookie and exposes it to handlers.

    Forms carry HMAC(cookie key, seed); a cross-site page can neither read the seed
    (HttpOnly, SameSite=Strict) nor compute the token without the server's key.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.cookie = cookie_name(settings, "fjh_csrf")
        self.secure = settings.secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seed = _cookie_from_scope(scope, self.cookie)
        fresh = seed is None or len(seed) > 64
        if fresh:
            seed = new_csrf_seed()
        scope.setdefault("state", {})["csrf_seed"] = seed

        async def send_with_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                attrs = "Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if self.secure else "")
                headers.append("Set-Cookie", f"{self.cookie}={seed}; {attrs}")
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie_from_scope(scope: Scope, name: str) -> str | None:
    from http.cookies import SimpleCookie

    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return None
            if name in jar:
                return jar[name].value
    return None
