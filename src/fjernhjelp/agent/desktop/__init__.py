"""The desktop service: the customer's X screen as RFB 3.8, inside the tunnel.

Runs on the customer machine: imports no server, portal or database code.
"""

from __future__ import annotations

from fjernhjelp.agent.desktop.errors import DesktopUnavailable
from fjernhjelp.agent.desktop.service import listen_tcp, serve_desktop, serve_stream
from fjernhjelp.agent.desktop.session import DesktopSession, InputEvent

__all__ = [
    "DesktopSession",
    "DesktopUnavailable",
    "InputEvent",
    "listen_tcp",
    "serve_desktop",
    "serve_stream",
]
