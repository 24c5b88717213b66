"""``fjernhjelp support CODE``: the end user's one-time Support client, from the package."""

from typing import Annotated

import typer

# The client itself (and through it cryptography) is imported when the command runs:
# `fjernhjelp --help` must start quickly (issue 9).


def support(
    code: Annotated[list[str], typer.Argument(help="The code the technician gave you.")],
    server: Annotated[
        str | None, typer.Option("--server", help="The service's address (https://…).")
    ] = None,
    language: Annotated[str | None, typer.Option("--language", help="nb or en.")] = None,
) -> None:
    """Join a Support session with a code (the same client the service hands out)."""
    from fjernhjelp.support.client import main

    argv = [*code]
    if server is not None:
        argv += ["--server", server]
    if language is not None:
        argv += ["--language", language]
    raise typer.Exit(main(argv))
