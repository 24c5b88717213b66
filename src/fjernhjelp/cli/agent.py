"""``fjernhjelp agent``: install and remove the agent on a customer machine.

Imports only agent code: this runs on the customer's machine.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fjernhjelp.cli.common import console, err, sub_app

if TYPE_CHECKING:
    from fjernhjelp.agent import install as installer_types
    from fjernhjelp.control.package import InstallerPackage

# Agent modules are imported when a command runs, so `--help` starts quickly.

app = sub_app("The agent on a customer machine.")

# Tests replace this to record system commands instead of running them (None: the host).
system_ops: "installer_types.SystemOps | None" = None


def _system() -> "installer_types.SystemOps":
    from fjernhjelp.agent import install as installer

    return system_ops if system_ops is not None else installer.HostSystem()


Root = Annotated[
    Path,
    typer.Option("--root", hidden=True, help="Install below this folder (tests, images)."),
]


def _read(path: Path, expected: str | None) -> "InstallerPackage":
    from fjernhjelp.control.package import PackageRejected, read_package

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


def _describe(package: "InstallerPackage") -> None:
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
    no_service: Annotated[
        bool,
        typer.Option(
            "--no-service",
            help="Only write the config and identity key into --config-dir; start nothing "
            "(for machines without systemd: run `agent run --config DIR/agent.toml`).",
        ),
    ] = False,
    config_dir: Annotated[
        Path | None,
        typer.Option(help="With --no-service: the folder (0700) for agent.toml and the key."),
    ] = None,
    root: Root = Path("/"),
) -> None:
    """Install the agent as a systemd service from an installer PACKAGE (or, with
    --no-service, only write its config and key)."""
    if no_service != (config_dir is not None):
        err.print("[red]--no-service and --config-dir go together[/red]")
        raise typer.Exit(2)
    if no_service and (privileged or root != Path("/")):
        err.print("[red]--no-service runs as the account that installs it: no --privileged[/red]")
        raise typer.Exit(2)
    if not no_service and root == Path("/") and os.geteuid() != 0:
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
    from fjernhjelp.agent import install as installer

    if config_dir is not None:
        _install_without_service(checked, config_dir, file_root or [])
        return
    try:
        report = installer.install(
            checked,
            layout=installer.Layout(root),
            ops=_system(),
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


def _install_without_service(
    package: "InstallerPackage", config_dir: Path, file_roots: list[Path]
) -> None:
    from fjernhjelp.agent import install as installer

    try:
        done = installer.install_local(package, config_dir=config_dir, file_roots=file_roots)
    except installer.InstallError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    # Paths are printed whole (soft_wrap): a narrow terminal must not break a path that
    # the reader copies into a command.
    console.print(f"Config written to {done.config_file} (0600).", soft_wrap=True)
    console.print(
        f"Identity key {done.identity_fingerprint} in {done.identity_key} (0600).",
        soft_wrap=True,
    )
    console.print("Nothing was started. Run the agent as this account, under whatever supervises")
    console.print(
        f"processes here:\n  fjernhjelp agent run --config {done.config_file}", soft_wrap=True
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
    from fjernhjelp.agent import install as installer

    try:
        installer.uninstall(layout=installer.Layout(root), ops=_system())
    except installer.InstallError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print("The agent is removed.")


@app.command("run")
def run_command(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            help="The agent's TOML config (agent.toml, written by `agent install`; every "
            "key is described in docs/agent.md).",
        ),
    ],
    hostname: Annotated[
        str | None, typer.Option(help="Name to report instead of the host name.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the agent in the foreground (the systemd unit runs this)."""
    from fjernhjelp.agent.runner import run_in_foreground

    problem = run_in_foreground(config, hostname=hostname, verbose=verbose)
    if problem is not None:
        err.print(f"[red]{problem}[/red]")
        raise typer.Exit(2)
