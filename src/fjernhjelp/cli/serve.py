"""``fjernhjelp serve`` and ``fjernhjelp demo``: run the server."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, TypedDict

import typer

from fjernhjelp.cli.common import DatabaseUrl, DataDir, console, settings_from

if TYPE_CHECKING:
    from fjernhjelp.config import Settings

# The server is imported when a command runs, never for `--help` or the agent.

Bind = Annotated[str | None, typer.Option("--bind", help="host:port to listen on.")]


def _run(settings: "Settings") -> None:
    import uvicorn

    from fjernhjelp import logs
    from fjernhjelp.db import migrate
    from fjernhjelp.server.app import create_app
    from fjernhjelp.server.state import build_state

    logs.configure(settings)
    state = build_state(settings)
    migrate.upgrade(state.engine)
    app = create_app(state=state, periodic=True)
    _tune_garbage_collector()
    uvicorn.run(app, **uvicorn_options(settings))


def _tune_garbage_collector() -> None:
    """A node holds tens of thousands of idle links, and a full collection walks every
    object: with CPython's defaults, every object of the app and its libraries too. While
    a node's agents came back that was a full collection every few hundred logins and a
    sixth of the node's CPU (docs/BENCHMARKS.md, "fleet"). What start-up left lives as
    long as the process: frozen after one last collection, no collection walks it again.
    The thresholds stay CPython's: full collections still come as often, and still free
    what ended links leave in cycles, at the cost of the links alone."""
    import gc

    gc.collect()
    gc.freeze()


class UvicornOptions(TypedDict):
    """The keyword arguments ``uvicorn.run`` gets besides the app."""

    host: str
    port: int
    ssl_certfile: str | None
    ssl_keyfile: str | None
    proxy_headers: bool
    server_header: bool
    ws_max_size: int
    ws_per_message_deflate: bool
    log_config: dict[str, object]


def uvicorn_options(settings: "Settings") -> UvicornOptions:
    from fjernhjelp import logs
    from fjernhjelp.server.ws_guard import PROTOCOL_MAX_MESSAGE

    return UvicornOptions(
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        proxy_headers=False,  # X-Forwarded-For is read by us, from trusted proxies only
        server_header=False,
        # No WebSocket message larger than a tunnel record is ever buffered; the
        # endpoints lower it to a few KiB until the socket authenticates (ws_guard.py).
        ws_max_size=PROTOCOL_MAX_MESSAGE,
        # Tunnel records are ciphertext (docs/tunnel.md §4): compressing them only costs
        # CPU, and with it a browser's full-size record (65 560 bytes, exactly the limit)
        # was refused on the way in and the connection dropped (1006): the screen share's
        # page sending a file to the technician hit it. The relay would also spend a
        # compression and a decompression on every byte a browser sends or receives.
        ws_per_message_deflate=False,
        log_config=logs.uvicorn_log_config(),
    )


def serve(data_dir: DataDir = None, database_url: DatabaseUrl = None, bind: Bind = None) -> None:
    """Run the server (migrations are applied first)."""
    _run(settings_from(data_dir, database_url, bind=bind))


def demo(data_dir: DataDir = None, database_url: DatabaseUrl = None, bind: Bind = None) -> None:
    """Run the server with demo data, printing the demo logins."""
    from fjernhjelp import demo as demo_data
    from fjernhjelp.db import migrate
    from fjernhjelp.server.state import build_state

    settings = settings_from(data_dir, database_url, bind=bind)
    if "metrics_allow" not in settings.model_fields_set:
        # The demo's metrics are for whoever sits at this machine (docs/metrics.md).
        settings = settings.model_copy(update={"metrics_allow": ["127.0.0.0/8", "::1/128"]})
    state = build_state(settings)
    migrate.upgrade(state.engine)
    with state.db_sessions() as db:
        accounts = demo_data.seed(db, state.login.passwords, state.keys.at_rest)
        db.commit()
    path = settings.data_dir / "demo-credentials.json"
    url = settings.effective_public_url
    data = demo_data.save(path, url, accounts)
    _print_credentials(url, data, path)
    _run(settings)


def _print_credentials(url: str, data: Mapping[str, object], path: object) -> None:
    import segno

    accounts = data["accounts"]
    assert isinstance(accounts, list), "demo.save writes the accounts as a list"
    console.rule("[bold]fjernhjelp demo")
    console.print(f"Open [bold]{url}[/bold] in a browser.\n")
    for account in accounts:
        console.print(
            f"  [bold]{account['username']}[/bold] ({account['role']}, {account['organisation']})\n"
            f"    password:    {account['password']}\n"
            f"    TOTP secret: {account['totp_secret']}"
        )
    technician = next((a for a in accounts if a["role"] == "technician"), None)
    if technician:
        uri = (
            f"otpauth://totp/fjernhjelp:{technician['username']}"
            f"?secret={technician['totp_secret']}&issuer=fjernhjelp"
        )
        console.print("\nScan this with an authenticator app to log in as the technician:")
        segno.make(uri, error="m").terminal(compact=True)
    console.print(f"\nThe same is written to {path}.")
    console.rule()


__all__ = ["demo", "serve"]
