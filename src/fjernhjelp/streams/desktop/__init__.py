"""The desktop service: the customer's X screen as RFB 3.8, inside the tunnel.

Runs on the customer machine: imports no server, portal or database code.
"""

from __future__ import annotations

from fjernhjelp.streams.desktop.errors import DesktopUnavailable
from fjernhjelp.streams.desktop.service import listen_tcp, serve_desktop, serve_stream
from fjernhjelp.streams.desktop.viewer import DesktopViewer, InputEvent

__all__ = [
    "DesktopUnavailable",
    "DesktopViewer",
    "InputEvent",
    "listen_tcp",
    "serve_desktop",
    "serve_stream",
]
