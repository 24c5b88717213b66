"""The one-file build as the agent: ``fjernhjelp-agent-<group>.run install`` and friends.

The same executable is the Support client (``support.client``) and the agent installer;
``support/__main__.py`` asks :func:`wanted` which one it is. A file the portal handed out
with an installer package appended (``control.agent_file``) is the installer; so is any
run whose first word is one of :data:`COMMANDS`, none of which is a Support code or
option, so that a file whose package was cut off says so rather than asking for a code.

- ``install``: check the package (cut, altered, another build, expired: refused, nothing
  written), show the server key's fingerprint and ask, or compare it with
  ``--expect-fingerprint``; then ``agent.install.install`` as ``fjernhjelp agent install``
  does, with a copy of this executable, less the package, for the unit to run.
- ``uninstall``: ``agent.install.uninstall``, as ``fjernhjelp agent uninstall``.
- ``inspect``: what ``install`` would install.
- ``run --config``: the agent itself (what the installed unit runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fjernhjelp.agent import install as installer
from fjernhjelp.control.agent_file import AgentFile, AgentFileRefused, carries_package
from fjernhjelp.control.agent_file import read_agent_file as read_file
from fjernhjelp.i18n import LANGUAGES, Translator, command_line_language

COMMANDS = ("install", "uninstall", "inspect", "run")
EXIT_FAILED = 1
EXIT_REFUSED = 2
YES = ("j", "ja", "y", "yes")


def wanted(argv: Sequence[str], executable: str | os.PathLike[str] | None = None) -> bool:
    """Whether this run is the agent's: a one-file build carrying a package, or asked for
    one of the agent's commands."""
    if argv[:1] and argv[0] in COMMANDS:
        return True
    if executable is None:
        if not getattr(sys, "frozen", False):
            return False
        executable = sys.executable
    try:
        return carries_package(executable)
    except OSError:
        return False


def _parser(t: Translator) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=Path(sys.argv[0]).name or "fjernhjelp-agent",
        description=t("agent.onefile.description"),
    )
    parser.add_argument("--language", choices=LANGUAGES, help=t("support.client.language_help"))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    install = commands.add_parser("install", help=t("agent.onefile.install_help"))
    install.add_argument("--expect-fingerprint", metavar="FP", help=t("agent.onefile.expect_help"))
    install.add_argument("--yes", action="store_true", help=t("agent.onefile.yes_help"))
    install.add_argument("--privileged", action="store_true", help=t("agent.onefile.root_help"))
    install.add_argument(
        "--file-root", action="append", type=Path, default=[], metavar="DIR",
        help=t("agent.onefile.file_root_help"),
    )  # fmt: skip
    uninstall = commands.add_parser("uninstall", help=t("agent.onefile.uninstall_help"))
    uninstall.add_argument("--yes", action="store_true", help=t("agent.onefile.yes_help"))
    commands.add_parser("inspect", help=t("agent.onefile.inspect_help"))
    run = commands.add_parser("run", help=t("agent.onefile.run_help"))
    run.add_argument("--config", type=Path, required=True, metavar="FILE")
    run.add_argument("--hostname")
    run.add_argument("--verbose", "-v", action="store_true")
    return parser


def main(
    argv: Sequence[str],
    *,
    executable: Path | None = None,
    layout: installer.Layout | None = None,
    ops: installer.SystemOps | None = None,
    ask: Callable[[str], str] = input,
) -> int:
    """``executable`` is the file this runs as (tests name one; the build is
    ``sys.executable``); ``layout`` and ``ops`` as for ``agent.install``."""
    t = Translator(command_line_language(argv))
    args = _parser(t).parse_args(list(argv))
    program = executable or Path(sys.executable)

    def say(key: str, **values: object) -> None:
        print(t(f"agent.onefile.{key}", **values), flush=True)

    def refuse(key: str, code: int, **values: object) -> int:
        print(t(f"agent.onefile.{key}", **values), file=sys.stderr, flush=True)
        return code

    if args.command == "run":
        from fjernhjelp.agent.runner import run_in_foreground

        problem = run_in_foreground(args.config, hostname=args.hostname, verbose=args.verbose)
        return refuse("run_failed", EXIT_REFUSED, why=problem) if problem else 0
    if args.command in ("install", "uninstall") and layout is None and os.geteuid() != 0:
        return refuse("needs_root", EXIT_REFUSED)
    if args.command == "uninstall":
        if not args.yes and not _confirmed(ask, t("agent.onefile.confirm_uninstall")):
            return refuse("nothing_removed", EXIT_FAILED)
        try:
            installer.uninstall(layout=layout, ops=ops)
        except installer.InstallError as exc:
            return refuse("failed", EXIT_FAILED, why=str(exc))
        say("removed")
        return 0
    expected = getattr(args, "expect_fingerprint", None)
    try:
        checked = read_file(program, expected_fingerprint=expected)
    except (AgentFileRefused, OSError) as exc:
        why = exc.message if isinstance(exc, AgentFileRefused) else str(exc)
        return refuse("refused", EXIT_REFUSED, why=why)
    _describe(checked, say)
    if args.command == "inspect":
        return 0
    if expected:
        say("fingerprint_matches")
    elif not args.yes:
        say("compare_fingerprint")
        if not _confirmed(ask, t("agent.onefile.confirm_install")):
            return refuse("nothing_installed", EXIT_FAILED)
    try:
        report = installer.install(
            checked.package,
            layout=layout,
            ops=ops,
            privileged=args.privileged,
            file_roots=args.file_root,
            program=installer.ProgramCopy(program, checked.executable_size),
        )
    except installer.InstallError as exc:
        return refuse("failed", EXIT_FAILED, why=str(exc))
    say("installed", unit=report.unit_file, account=report.account, config=report.config_file)
    return 0


def _confirmed(ask: Callable[[str], str], question: str) -> bool:
    try:
        return ask(question + " ").strip().lower() in YES
    except EOFError:  # no terminal and nothing piped in: not a yes
        return False


def _describe(checked: AgentFile, say: Callable[..., None]) -> None:
    package = checked.package
    say("server", url=package.server_url)
    say("server_key", fingerprint=package.fingerprint)
    say("group", group=package.group, organisation=package.organisation or "")
    if package.expires_at:
        say("valid_until", when=package.expires_at.isoformat())
