"""The ``fjernhjelp`` command."""

# No `from __future__ import annotations`: typer would eval every string annotation
# at start-up (see bench/startup.py).

import typer

from fjernhjelp.cli import (
    admin,
    agent,
    audit,
    connect,
    db,
    desktop,
    login,
    serve,
    support,
    support_session,
)

app = typer.Typer(
    name="fjernhjelp",
    help="Remote assistance for a health network.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold passwords or keys
    # Plain help and errors: rich's help renderer alone takes longer to import than all
    # of typer, and every command pays it at start-up (bench/startup.py, issue 9).
    rich_markup_mode=None,
)
app.command("serve")(serve.serve)
app.command("demo")(serve.demo)
app.command("login")(login.login)
app.command("logout")(login.logout)
app.command("whoami")(login.whoami)
app.command("connect")(connect.connect)
app.command("support")(support.support)
app.add_typer(support_session.app, name="support-session")
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(audit.app, name="audit")
agent.app.command("desktop-serve")(desktop.desktop_serve)
app.add_typer(agent.app, name="agent")


def main() -> None:
    app()
