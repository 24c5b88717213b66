"""Which service a tunnel stream may open, and starting it.

The ticket's permissions decide, checked here on the agent whatever the server said:
``shell`` needs *terminal* (and, for a shell as the agent's account or as root,
*terminal_admin*: see ``shell``), ``files`` needs *files*, ``desktop`` needs *view* (input
only with *control*, the clipboard only with *clipboard* and *control*), ``chat`` needs
*chat* (and someone at a screen to answer: the session refuses it without a display),
``info`` is allowed in every session (it is what the technician sees about the machine
in any case).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from fjernhjelp.agent import sysinfo
from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.streams.chat.service import ChatOutcome, ChatWindow, serve_chat
from fjernhjelp.streams.desktop.errors import DesktopUnavailable
from fjernhjelp.streams.desktop.service import serve_desktop
from fjernhjelp.streams.desktop.viewer import InputEvent
from fjernhjelp.streams.files.roots import FilePolicy
from fjernhjelp.streams.files.service import FileRefusal, FileTransferRecord, serve_files
from fjernhjelp.streams.shell.service import ShellAccount, ShellOutcome, serve_shell
from fjernhjelp.tunnel import Channel, StreamRequest
from fjernhjelp.tunnel.tickets import Permission, Ticket

REQUIRED = {
    "shell": Permission.TERMINAL,
    "files": Permission.FILES,
    "desktop": Permission.VIEW,
    "chat": Permission.CHAT,
}
ALWAYS = frozenset({"info"})
X11_SOCKETS = "/tmp/.X11-unix"  # noqa: S108 - the X server's fixed socket directory


def effective(ticket: Ticket) -> frozenset[Permission]:
    """What the session may really do: the ticket's permissions, less the clipboard when
    the ticket lacks control. The server never issues that ticket; if it did (a bug, a
    leaked key), a session that only watches still does not read what the user copies.
    The consent dialog and the session indicator show this set."""
    if Permission.CONTROL not in ticket.permissions:
        return ticket.permissions - {Permission.CLIPBOARD}
    return ticket.permissions


def allowed(request: StreamRequest, ticket: Ticket) -> bool:
    if request.service in ALWAYS:
        return True
    needed = REQUIRED.get(request.service)
    return needed is not None and ticket.allows(needed)


@dataclass
class ServiceContext:
    ticket: Ticket
    display: DisplayTarget | None
    file_roots: list[str]
    on_file: Callable[[FileTransferRecord], None]
    on_file_refusal: Callable[[FileRefusal], None]
    on_shell: Callable[[ShellOutcome], None]
    on_shell_started: Callable[[ShellOutcome], None] | None = None
    on_input: Callable[[InputEvent], None] | None = None
    chat: ChatWindow | None = None  # the session indicator, when it is shown
    on_chat: Callable[[ChatOutcome], None] = lambda _outcome: None


def shell_accounts(display: DisplayTarget | None) -> dict[str, ShellAccount]:
    """The agent's own account, and the person at the display when the agent knows who.

    A display found by looking (``auto``) names its owner. A display named in the
    configuration (``:N``) does not: an agent that is not root reaches it as its own
    user, so that user is the one at the display; a root agent takes the owner of the
    display's socket (the account that started the X server)."""
    me = ShellAccount.current()
    accounts = {"service": me}
    if display is None:
        return accounts
    uid = display.uid
    if uid is None:
        uid = me.uid if me.uid != 0 else _socket_owner(display)
    if uid is not None:
        # No such account (a socket owned by a deleted user): no user shell.
        with contextlib.suppress(KeyError):
            accounts["user"] = ShellAccount.from_uid(uid)
    return accounts


def _socket_owner(display: DisplayTarget) -> int | None:
    if display.number is None:
        return None
    try:
        return os.stat(f"{X11_SOCKETS}/X{display.number}").st_uid
    except OSError:
        return None


async def run(request: StreamRequest, channel: Channel, ctx: ServiceContext) -> None:
    service = request.service
    if service == "shell":
        outcome = await serve_shell(
            channel,
            shell_accounts(ctx.display),
            admin=ctx.ticket.allows(Permission.TERMINAL_ADMIN),
            on_started=ctx.on_shell_started,
        )
        ctx.on_shell(outcome)
    elif service == "files":
        policy = FilePolicy.create(ctx.file_roots)
        await serve_files(channel, policy, on_transfer=ctx.on_file, on_refusal=ctx.on_file_refusal)
    elif service == "info":
        await channel.send(json.dumps(sysinfo.collect().to_dict()).encode())
        await channel.close()
    elif service == "chat":
        await serve_chat(channel, ctx.chat, ctx.on_chat)
    elif service == "desktop" and ctx.display is not None:
        # Input is ignored at the agent without the control permission, and the X
        # clipboard is not touched without the clipboard permission, whatever the viewer
        # sends (the page hides its controls too, but that is not the guard).
        permissions = effective(ctx.ticket)
        try:
            await serve_desktop(
                channel,
                display=ctx.display.display,
                view_only=Permission.CONTROL not in permissions,
                share_clipboard=Permission.CLIPBOARD in permissions,
                on_input=ctx.on_input,
            )
        except DesktopUnavailable:
            await channel.close("unavailable")
    else:
        await channel.close("unavailable")
