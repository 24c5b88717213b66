"""The end user's one-time Support client: ``fjernhjelp-support-linux-x86_64 CODE``.

The same :func:`main` runs as the one-file executable that the server hands out (stamped
with its URL and key, see ``support.stamp``) and as ``fjernhjelp support CODE`` for those
who have the package installed.

PLACEHOLDER: joining a session (the code exchange, the tunnel, consent, the streams) is not
built yet. For now the client checks its code and its stamp, says whom it would connect to,
makes and removes its private folder, and exits with :data:`EXIT_NOT_BUILT` saying so.

Exit codes: 0 never yet; 2 a usage error (bad code, no server); 1 the client file cannot be
trusted (no stamp, altered, or asked to go to another server); 3 joining is not built yet.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from fjernhjelp.agent.display import language_of
from fjernhjelp.control.package import check_server_url
from fjernhjelp.i18n import LANGUAGES, Translator
from fjernhjelp.support.platform import (
    WINDOW_SWITCH,
    SupportPlatform,
    current_platform,
    guard_extraction,
)
from fjernhjelp.support.stamp import Stamp, StampRefused, read_stamp

EXIT_UNTRUSTED = 1
EXIT_USAGE = 2
EXIT_NOT_BUILT = 3
MIN_CODE_DIGITS = 9
MAX_CODE_DIGITS = 32
# What people type when they copy "482 193 775" from a telephone call or a message.
_SEPARATORS = re.compile(r"[\s\-.]+")


def parse_code(text: str) -> str:
    """The code's digits; raises ValueError for anything that is not a plausible code."""
    digits = _SEPARATORS.sub("", text)
    # isdecimal() alone would let other scripts' digits through; the code is ASCII.
    if not (digits.isascii() and digits.isdecimal()):
        raise ValueError("not digits")
    if not MIN_CODE_DIGITS <= len(digits) <= MAX_CODE_DIGITS:
        raise ValueError("wrong length")
    return digits


def grouped(code: str) -> str:
    """``482193775`` as ``482 193 775``, as the console shows it."""
    return " ".join(code[i : i + 3] for i in range(0, len(code), 3))


def own_stamp() -> Stamp | None:
    """The stamp of the one-file build that is running (None when run from the package).

    Raises StampRefused for a one-file build without a whole stamp: such a file is not
    something a server handed out, and it must not run.
    """
    if not getattr(sys, "frozen", False):
        return None
    return read_stamp(sys.executable)


@dataclass(frozen=True)
class Target:
    server_url: str
    stamp: Stamp | None
    code: str


def _parser(t: Translator) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fjernhjelp-support", description=t("support.client.description")
    )
    parser.add_argument("code", nargs="+", metavar="CODE", help=t("support.client.code_help"))
    parser.add_argument("--server", metavar="URL", help=t("support.client.server_help"))
    parser.add_argument("--language", choices=LANGUAGES, help=t("support.client.language_help"))
    return parser


def _language(argv: Sequence[str]) -> str:
    # Read before parsing, so that even the help and usage errors speak the chosen language.
    for i, arg in enumerate(argv):
        if arg.startswith("--language="):
            return arg.split("=", 1)[1]
        if arg == "--language" and i + 1 < len(argv):
            return argv[i + 1]
    return language_of(os.environ.get("LANG")) or "nb"


def main(argv: Sequence[str] | None = None, *, platform: SupportPlatform | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    guard_extraction()  # one-file build only: see its docstring
    if args_in[:1] == [WINDOW_SWITCH]:
        # The one-file build starting one of its own windows (see platform.window_command).
        from fjernhjelp.support import window

        return window.run(args_in[1:])
    t = Translator(_language(args_in))
    args = _parser(t).parse_args(args_in)

    def say(key: str, **values: object) -> None:
        print(t(f"support.client.{key}", **values), flush=True)

    def refuse(key: str, code: int, **values: object) -> int:
        print(t(f"support.client.{key}", **values), file=sys.stderr, flush=True)
        return code

    try:
        code = parse_code(" ".join(args.code))  # "482 193 775" may come as three arguments
    except ValueError:
        return refuse("bad_code", EXIT_USAGE)
    try:
        stamp = own_stamp()
    except StampRefused as exc:
        return refuse("stamp_refused", EXIT_UNTRUSTED, why=exc.message)
    asked = None
    if args.server is not None:
        try:
            asked = check_server_url(args.server)
        except ValueError:
            return refuse("bad_server", EXIT_USAGE)
    if stamp is not None and asked is not None and asked != stamp.server_url:
        # The key is pinned to the stamped server; another address would be another server.
        return refuse("other_server", EXIT_UNTRUSTED, pinned=stamp.server_url, asked=asked)
    server_url = stamp.server_url if stamp is not None else asked
    if server_url is None:
        return refuse("no_server", EXIT_USAGE)
    target = Target(server_url=server_url, stamp=stamp, code=code)

    platform = platform or current_platform()
    with platform.private_dir():
        say("server", url=target.server_url)
        if target.stamp is not None:
            say("key_pinned", fingerprint=target.stamp.fingerprint)
        else:
            say("key_unpinned")
        say("code", code=grouped(target.code))
        # PLACEHOLDER: joining the session goes here (issue 11, the client's session logic).
        return refuse("not_built", EXIT_NOT_BUILT)
