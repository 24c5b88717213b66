"""``fjernhjelp agent``: install and remove the agent on a customer machine.

Imports only agent code: this runs on the customer's machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from fjernhjelp.agent import install as installer
from fjernhjelp.cli.common import console, err
from fjernhjelp.control.package import InstallerPackage, PackageRejected, read_package

app = typer.Typer(help="The agent on a customer machine.", no_args_is_help=True)

# Tests replace this to record system commands instead of running them.
system_ops: installer.SystemOps = installer.HostSystem()

Root = Annotated[
    Path,
    typer.Option("--root", hidden=True, help="Install below this folder (tests, images)."),
]


def _read(path: Path, expected: str | None) -> InstallerPackage:
    try:
        data = path.read_bytes()
    except OSError as exc:
        err.print(f"[red]cannot read {path}: {exc.strerror}[/red]")
        raise typer.Exit(2) from exc
    try:
        return read_package(data, expected_fingerprint=expected)
    except PackageRejected as exc:
        err.print(f"[red]package refused ({exc.reason}): {exc.message}[/red]")
        raise typer.Exit(2) from exc


def _describe(package: InstallerPackage) -> None:
    console.print(f"server:       [bold]{package.server_url}[/bold]")
    console.print(f"server key:   [bold]{package.fingerprint}[/bold]")
    console.print(f"group:        {package.group}")
    if package.organisation:
        console.print(f"organisation: {package.organisation}")
    if package.expires_at:
        console.print(f"token valid until {package.expires_at.isoformat()}")


@app.command()
def inspect(package: Annotated[Path, typer.Argument(help="Installer package file.")]) -> None:
    """Show what a package would install, and its server key's fingerprint."""
    _describe(_read(package, None))


@app.command("install")
def install_command(
    package: Annotated[Path, typer.Argument(help="Installer package from the portal.")],
    expect_fingerprint: Annotated[
        str | None,
        typer.Option(help="The server key fingerprint the portal shows; refuse any other."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    privileged: Annotated[
        bool,
        typer.Option(help="Run the agent as root (needed for shells as the logged-in user)."),
    ] = False,
    file_root: Annotated[
        list[Path] | None,
        typer.Option(help="A folder files may be copied to and from (repeat for more)."),
    ] = None,
    root: Root = Path("/"),
) -> None:
    """Install the agent as a systemd service from an installer PACKAGE."""
    if root == Path("/") and os.geteuid() != 0:
        err.print("[red]installing the agent needs root[/red]")
        raise typer.Exit(2)
    checked = _read(package, expect_fingerprint)
    _describe(checked)
    if expect_fingerprint:
        console.print("The server key matches the expected fingerprint.")
    elif not yes:
        console.print(
            "This package decides which server this machine will trust. Compare the key "
            "fingerprint above with the one the portal shows."
        )
        typer.confirm("Install and trust this server?", abort=True)
    try:
        report = installer.install(
            checked,
            layout=installer.Layout(root),
            ops=system_ops,
            privileged=privileged,
            file_roots=file_root or [],
        )
    except installer.InstallError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"Installed: {report.unit_file} running as {report.account}; "
        f"config in {report.config_file}."
    )


@app.command()
def uninstall(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    root: Root = Path("/"),
) -> None:
    """Stop the agent and remove it, its config, its identity key and its account."""
    if root == Path("/") and os.geteuid() != 0:
        err.print("[red]removing the agent needs root[/red]")
        raise typer.Exit(2)
    if not yes:
        typer.confirm("Remove the agent? The machine must be enrolled again after.", abort=True)
    try:
        installer.uninstall(layout=installer.Layout(root), ops=system_ops)
    except installer.InstallError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print("The agent is removed.")


@app.command("run")
def run_command(
    config: Annotated[Path, typer.Option("--config", help="The agent's configuration file.")],
    hostname: Annotated[
        str | None, typer.Option(help="Name to report instead of the host name.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the agent in the foreground (the systemd unit runs this)."""
    import asyncio
    import logging

    from fjernhjelp.agent.config import ConfigError
    from fjernhjelp.agent.runner import FatalAgentError, run_agent

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run_agent(config, hostname=hostname))
    except (ConfigError, FatalAgentError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        pass
