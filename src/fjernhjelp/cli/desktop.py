"""``fjernhjelp agent desktop-serve``: the desktop service on a local VNC port (debugging).

The port has no authentication (RFB security None, as inside the tunnel), so it binds
to loopback addresses only.
"""

import ipaddress
import os
from typing import Annotated

import typer

from fjernhjelp.cli.common import console, err


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise typer.BadParameter("use HOST:PORT, e.g. 127.0.0.1:5901")
    host = host.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise typer.BadParameter("the VNC port has no password: listen on loopback only")
    return host, int(port)


def desktop_serve(
    listen: Annotated[str, typer.Option("--listen", help="Loopback HOST:PORT.")] = "127.0.0.1:5901",
    display: Annotated[
        str | None, typer.Option("--display", help="X display (default: $DISPLAY).")
    ] = None,
    view_only: Annotated[bool, typer.Option("--view-only", help="Ignore all input.")] = False,
    clipboard: Annotated[
        bool, typer.Option("--clipboard/--no-clipboard", help="Share the clipboard.")
    ] = True,
) -> None:
    """Serve an X display as RFB 3.8 on a local port, for any VNC viewer."""
    host, port = _parse_listen(listen)
    display = display or os.environ.get("DISPLAY")
    if not display:
        err.print("No X display: pass --display or set DISPLAY.")
        raise typer.Exit(2)
    import asyncio
    import contextlib
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from fjernhjelp.streams.desktop.service import listen_tcp  # needs the desktop extra

    async def run() -> None:
        server = await listen_tcp(
            host, port, display=display, view_only=view_only, share_clipboard=clipboard
        )
        console.print(
            f"Serving X display {display} on {host}:{port}"
            + (" (view only)" if view_only else "")
            + ". Ctrl-C stops."
        )
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
