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
    server_key: Annotated[
        str | None,
        typer.Option("--server-key", help="The service's key (base64url), to pin."),
    ] = None,
    language: Annotated[str | None, typer.Option("--language", help="nb or en.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Say more.")] = False,
) -> None:
    """Join a Support session with a code (the same client the service hands out)."""
    from fjernhjelp.support.client import main

    argv = [*code]
    if server is not None:
        argv += ["--server", server]
    if server_key is not None:
        # One word: the client's parser must not take a key beginning with "-" for an
        # option.
        argv.append(f"--server-key={server_key}")
    if language is not None:
        argv += ["--language", language]
    if verbose:
        argv.append("--verbose")
    raise typer.Exit(main(argv))
