"""The end user's one-time Support client: ``fjernhjelp-support-linux-x86_64 CODE``.

The same :func:`main` runs as the one-file executable that the server hands out (stamped
with its URL and key, see ``support.stamp``) and as ``fjernhjelp support CODE --server URL
--server-key KEY`` for those who have the package installed (the key as the start page
and the agent's configuration spell it: base64url of the raw 32 bytes).

It enters the code at the server's public join API, says who wants to help (technician,
supplier, organisation), and runs the session (``support.session``): the control link
with a key made in memory, the server's key pinned, consent with the three check words,
the indicator, the streams. Everything it writes is in its private folder, removed when
it exits.

Exit codes: 0 the session ran and ended (or the user said no); 1 the client cannot trust
what it talks to (no stamp, altered, another server, a server without the pinned key);
2 a usage error (bad code, no server or key); 3 the code was refused (wrong, used,
expired, throttled) or the server refused the client; 4 the connection was lost or the
technician never came.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import re
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fjernhjelp.control.package import b64d, check_server_url, fingerprint
from fjernhjelp.i18n import LANGUAGES, Translator, command_line_language
from fjernhjelp.support.handover import Handover, HandoverRefused, read_handover
from fjernhjelp.support.platform import (
    WINDOW_SWITCH,
    SupportPlatform,
    current_platform,
    guard_extraction,
    window_command,
)
from fjernhjelp.support.ready_windows import ReadyWindows
from fjernhjelp.support.session import ClientSession, Outcome
from fjernhjelp.support.stamp import Stamp, StampRefused, read_stamp

EXIT_ENDED = 0
EXIT_UNTRUSTED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_LOST = 4
JOIN_TIMEOUT = 30.0
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


def own_handover() -> Handover | None:
    """The session a downloaded one-file build is for (support.handover), if it carries one."""
    if not getattr(sys, "frozen", False):
        return None
    with open(sys.executable, "rb") as fh:
        return read_handover(fh)[1]


@dataclass(frozen=True)
class Target:
    server_url: str
    stamp: Stamp | None
    code: str | None  # None: the session the download carries
    server_key: bytes  # raw 32 bytes, pinned: from the stamp or --server-key


@dataclass(frozen=True)
class Joined:
    session_id: uuid.UUID
    technician: str
    vendor: str
    customer: str
    token: str


class JoinRefused(Exception):
    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


def join(target: Target) -> Joined:
    """Enter the code at the server's public join API: who wants to help, and the
    end-user token for the control link. Raises JoinRefused with the catalogue key."""
    try:
        answer = httpx.post(
            f"{target.server_url}/api/v1/support/join",
            json={"code": target.code},
            timeout=JOIN_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise JoinRefused("unreachable", why=str(exc)[:200]) from exc
    if answer.status_code == 429:
        wait = int(answer.headers.get("retry-after", "60") or 60)
        raise JoinRefused("throttled", minutes=max(1, (wait + 59) // 60))
    if answer.status_code != 200:
        raise JoinRefused("code_refused")
    body = answer.json()
    return Joined(
        session_id=uuid.UUID(body["session_id"]),
        technician=str(body["technician"]),
        vendor=str(body["vendor"]),
        customer=str(body["customer"]),
        token=str(body["client_token"]),
    )


def _parser(t: Translator) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fjernhjelp-support", description=t("support.client.description")
    )
    # Optional for a client downloaded from the start page: it carries its session.
    parser.add_argument("code", nargs="*", metavar="CODE", help=t("support.client.code_help"))
    parser.add_argument("--server", metavar="URL", help=t("support.client.server_help"))
    parser.add_argument("--server-key", metavar="KEY", help=t("support.client.server_key_help"))
    parser.add_argument("--language", choices=LANGUAGES, help=t("support.client.language_help"))
    parser.add_argument("--verbose", action="store_true", help=t("support.client.verbose_help"))
    return parser


# Options whose value is a key: base64url may begin with "-", which argparse would take
# for an option of its own and refuse ("expected one argument").
_KEY_OPTIONS = ("--server-key",)


def _keys_in_one_word(argv: Sequence[str]) -> list[str]:
    """``--server-key KEY`` as ``--server-key=KEY``, whatever KEY begins with: the word
    after a key option is always its value, never another option."""
    out: list[str] = []
    words = iter(argv)
    for word in words:
        if word in _KEY_OPTIONS:
            value = next(words, None)
            out.append(word if value is None else f"{word}={value}")
        else:
            out.append(word)
    return out


def main(argv: Sequence[str] | None = None, *, platform: SupportPlatform | None = None) -> int:
    args_in = _keys_in_one_word(sys.argv[1:] if argv is None else argv)
    guard_extraction()  # one-file build only: see its docstring
    if args_in[:1] == [WINDOW_SWITCH]:
        # The one-file build starting one of its own windows (see platform.window_command).
        from fjernhjelp.support import window

        return window.run(args_in[1:])
    t = Translator(command_line_language(args_in))
    args = _parser(t).parse_args(args_in)

    def say(key: str, **values: object) -> None:
        print(t(f"support.client.{key}", **values), flush=True)

    def refuse(key: str, code: int, **values: object) -> int:
        print(t(f"support.client.{key}", **values), file=sys.stderr, flush=True)
        return code

    try:
        stamp = own_stamp()
        handover = own_handover()
    except (StampRefused, HandoverRefused) as exc:
        why = exc.message if isinstance(exc, StampRefused) else str(exc)
        return refuse("stamp_refused", EXIT_UNTRUSTED, why=why)
    code: str | None = None
    if args.code or handover is None:
        try:
            code = parse_code(" ".join(args.code))  # "482 193 775" may come as three arguments
        except ValueError:
            return refuse("bad_code", EXIT_USAGE)
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
    if stamp is not None:
        key = stamp.server_public_key
    elif args.server_key is not None:
        try:
            key = b64d(args.server_key)
        except ValueError:
            key = b""
        if len(key) != 32:
            return refuse("bad_server_key", EXIT_USAGE)
    else:
        return refuse("no_server_key", EXIT_USAGE)
    target = Target(server_url=server_url, stamp=stamp, code=code, server_key=key)
    if args.verbose:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )

    platform = platform or current_platform()
    with platform.private_dir() as private:
        say("server", url=target.server_url)
        say("key_pinned", fingerprint=fingerprint(target.server_key))
        window_argv = functools.partial(window_command, cache_dir=private.path)

        async def run_session() -> Outcome | JoinRefused:
            # The consent dialog and the indicator load while the code goes to the server
            # and the technician connects (support/ready_windows.py): one event loop for
            # both, since the window processes belong to the loop that started them.
            ready = ReadyWindows()
            try:
                await ready.launch(await asyncio.to_thread(platform.display), window_argv)
                if target.code is None:
                    # The code was entered on the start page; the download carries its session.
                    assert handover is not None
                    joined = Joined(
                        session_id=handover.session_id,
                        technician=handover.technician,
                        vendor=handover.vendor,
                        customer=handover.customer,
                        token=handover.client_token,
                    )
                else:
                    say("code", code=grouped(target.code))
                    try:
                        joined = await asyncio.to_thread(join, target)
                    except JoinRefused as exc:
                        return exc
                say(
                    "who",
                    technician=joined.technician,
                    vendor=joined.vendor,
                    customer=joined.customer,
                )
                say("waiting")
                session = ClientSession(
                    server_url=target.server_url,
                    server_key=Ed25519PublicKey.from_public_bytes(target.server_key),
                    session_id=joined.session_id,
                    token=joined.token,
                    private_dir=private.path,
                    find_display=platform.display,
                    window_argv=window_argv,
                    language=args.language or command_line_language(args_in),
                    ready=ready,
                    on_busy=lambda seconds: say("busy", seconds=max(1, round(seconds))),
                )
                return await session.run()
            finally:
                await ready.close()

        result = asyncio.run(run_session())
        if isinstance(result, JoinRefused):
            return refuse(result.key, EXIT_REFUSED, **result.values)
        outcome = result
        if outcome.kind == "sas_failed":
            # The technician's end could not prove the check words: someone may be in
            # the middle (docs/tunnel.md §18.3).
            print(t("support.sas.reveal_failed"), file=sys.stderr, flush=True)
            return EXIT_UNTRUSTED
        if outcome.kind == "untrusted":
            return refuse("server_not_trusted", EXIT_UNTRUSTED, fingerprint=fingerprint(key))
        if outcome.kind == "refused":
            return refuse("link_refused", EXIT_REFUSED, why=outcome.detail)
        if outcome.kind == "lost":
            return refuse("lost", EXIT_LOST, why=outcome.detail)
        if outcome.kind == "no_technician":
            return refuse("no_technician", EXIT_LOST)
        say("ended")
        return EXIT_ENDED
