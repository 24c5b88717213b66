"""One TLS policy for every connection the agent makes: enrolment, the control link and
each relay. Certificates are verified against the system's store, or against the CA file
named in the agent's configuration (a private CA); TLS 1.2 at least. The relay gets the
very context the control link has, so a relay can never be trusted on weaker terms."""

from __future__ import annotations

import ssl

from fjernhjelp.agent.config import AgentConfig


def client_context(config: AgentConfig) -> ssl.SSLContext:
    cafile = str(config.tls_ca_file) if config.tls_ca_file else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def for_url(context: ssl.SSLContext | None, url: str) -> ssl.SSLContext | None:
    """The context for a wss:// URL; None for ws:// (websockets refuses one there, and
    control.dial lets plain ws through only on loopback for a plain-http server)."""
    return context if url.startswith("wss://") else None
