"""The PTY shell service, driven over an in-memory channel by raw messages and by the client."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from fjernhjelp.streams.shell import wire as shell
from fjernhjelp.streams.shell.service import ShellAccount, ShellOutcome, serve_shell
from fjernhjelp.streams.shell.technician import run_shell_client
from fjernhjelp.streams.shell.wire import (
    DATA,
    ERROR,
    EXIT,
    MAX_DATA,
    OFFER,
    ShellChoice,
    ShellOffer,
    ShellProtocolError,
    ShellRefused,
    decode_offer,
    encode_offer,
    encode_open,
    encode_resize,
)
from fjernhjelp.tunnel.channel import ChannelClosed, MemoryChannel, memory_pair
from tests.asyncrun import run_async

IS_ROOT = os.geteuid() == 0
WAIT = 20.0  # generous upper bound for anything to arrive; never asserted as a duration


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Shells started here read no start-up files of the account running the tests (on a
    # developer's machine those can be slow, or wait on a lock another shell left).
    monkeypatch.setenv("HOME", str(tmp_path))


class Technician:
    """The technician's end of the channel, speaking the wire format by hand."""

    def __init__(self, channel: MemoryChannel) -> None:
        self.channel = channel
        self.output = bytearray()
        self.exit: int | None = None
        self.error: dict[str, str] | None = None
        self.offer: ShellOffer | None = None
        self.closed = False

    async def send_data(self, text: str) -> None:
        await self.channel.send(bytes([DATA]) + text.encode())

    async def _next(self) -> None:
        try:
            message = await self.channel.recv()
        except ChannelClosed:
            self.closed = True
            return
        if message[0] == DATA:
            self.output += message[1:]
        elif message[0] == EXIT:
            self.exit = struct.unpack("!i", message[1:])[0]
        elif message[0] == ERROR:
            self.error = json.loads(message[1:])
        elif message[0] == OFFER and self.offer is None and not self.output:
            self.offer = decode_offer(message[1:])
        else:
            raise AssertionError(f"unexpected {message!r}")

    async def until(self, needle: bytes) -> None:
        async def loop() -> None:
            while needle not in self.output and not self.closed:
                await self._next()

        await asyncio.wait_for(loop(), WAIT)
        assert needle in self.output, bytes(self.output)

    async def until_re(self, pattern: bytes) -> None:
        async def loop() -> None:
            while not re.search(pattern, self.output) and not self.closed:
                await self._next()

        await asyncio.wait_for(loop(), WAIT)

    async def until_closed(self) -> None:
        async def loop() -> None:
            while not self.closed:
                await self._next()

        await asyncio.wait_for(loop(), WAIT)


Script = Callable[[Technician], Awaitable[None]]


def run_session(
    script: Script,
    accounts: dict[str, ShellAccount] | None = None,
    first: bytes | None = None,
    *,
    admin: bool = True,
    started: list[ShellOutcome] | None = None,
) -> tuple[ShellOutcome, Technician]:
    """``admin``: the ticket allows terminal_admin (the tests run as root, and a shell as
    root needs it); the tests of that permission say False."""
    accounts = accounts if accounts is not None else {"user": ShellAccount.current()}

    async def main() -> tuple[ShellOutcome, Technician]:
        agent_end, tech_end = memory_pair()
        tech = Technician(tech_end)
        service = asyncio.create_task(
            serve_shell(
                agent_end,
                accounts,
                admin=admin,
                on_started=started.append if started is not None else None,
                kill_grace=1.0,
            )
        )
        await tech_end.send(first if first is not None else encode_open(24, 80, "xterm", "user"))
        await script(tech)
        outcome = await asyncio.wait_for(service, WAIT)
        return outcome, tech

    return run_async(main())


def test_shell_runs_commands_and_reports_the_exit_status() -> None:
    async def script(tech: Technician) -> None:
        await tech.send_data("echo one-$((40+2))\n")
        await tech.until(b"one-42")
        await tech.send_data("exit 3\n")
        await tech.until_closed()

    outcome, tech = run_session(script)
    assert tech.exit == 3
    assert outcome.ended_by == "exit" and outcome.exit_status == 3
    assert outcome.bytes_in > 0 and outcome.bytes_out > 0


def test_resize_reaches_the_pty_and_its_foreground_process() -> None:
    waiter = (
        'python3 -c "import signal,shutil; signal.pthread_sigmask(signal.SIG_BLOCK,'
        "[signal.SIGWINCH]); print('re'+'ady', flush=True); signal.sigwait([signal.SIGWINCH]);"
        " s=shutil.get_terminal_size(); print('winch', s.lines, s.columns)\"\n"
    )

    async def script(tech: Technician) -> None:
        await tech.send_data("stty size\n")
        await tech.until(b"24 80")
        await tech.send_data(waiter)
        await tech.until(b"ready")
        await tech.channel.send(encode_resize(50, 132))
        await tech.until(b"winch 50 132")
        await tech.send_data("stty size; exit\n")
        await tech.until_closed()

    _, tech = run_session(script)
    assert b"50 132" in tech.output.split(b"winch 50 132", 1)[1]
    assert tech.exit == 0


def _pid_after(output: bytes, label: bytes) -> int:
    # A label followed by digits: the echoed command line shows "$$" or "$!" there instead.
    found = re.search(rb"\b" + label + rb"=(\d+)", output)
    assert found, output
    return int(found.group(1))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_closing_the_channel_kills_the_shell_and_everything_it_started() -> None:
    async def script(tech: Technician) -> None:
        await tech.send_data("echo shell=$$\n")
        await tech.until_re(rb"shell=\d+")
        # One job ignores SIGHUP (nohup): only the SIGKILL after the grace period ends it.
        await tech.send_data("nohup sleep 1000 >/dev/null 2>&1 & echo hup=$!\n")
        await tech.until_re(rb"hup=\d+")
        await tech.send_data("sleep 1001 & echo bg=$!\n")
        await tech.until_re(rb"bg=\d+")
        await tech.send_data("sleep 1002\n")
        await asyncio.sleep(0.2)
        for label in (b"shell", b"hup", b"bg"):
            assert not _gone(_pid_after(tech.output, label))
        await tech.channel.close("technician left")

    outcome, tech = run_session(script)
    assert outcome.ended_by == "channel_closed"
    for label in (b"shell", b"hup", b"bg"):
        assert _gone(_pid_after(tech.output, label)), label


def test_leftover_jobs_are_killed_when_the_shell_exits_too() -> None:
    async def script(tech: Technician) -> None:
        await tech.send_data("nohup sleep 1000 >/dev/null 2>&1 & echo hup=$!; exit 0\n")
        await tech.until_closed()

    _, tech = run_session(script)
    assert tech.exit == 0
    assert _gone(_pid_after(tech.output, b"hup"))


@pytest.mark.skipif(not IS_ROOT, reason="switching users needs root")
def test_root_agent_runs_the_shell_as_the_account_the_session_allows() -> None:
    nobody = ShellAccount.from_name("nobody")

    async def script(tech: Technician) -> None:
        await tech.send_data("echo uid=$(id -u) gid=$(id -g) home=$HOME; tty; exit\n")
        await tech.until_closed()

    outcome, tech = run_session(script, accounts={"user": nobody})
    assert f"uid={nobody.uid} gid={nobody.gid}".encode() in tech.output
    assert outcome.account == "nobody"
    assert nobody.shell not in ("/usr/sbin/nologin", "/bin/false")  # a usable shell was chosen


def test_a_technician_asking_for_root_when_only_the_user_is_allowed_is_refused() -> None:
    before = set(psutil.pids())
    allowed = {"user": ShellAccount.from_name("nobody")}

    async def script(tech: Technician) -> None:
        await tech.until_closed()

    outcome, tech = run_session(
        script, accounts=allowed, first=encode_open(24, 80, "xterm", "service")
    )
    assert tech.error is not None and tech.error["code"] == "run_as_not_offered"
    assert "user (nobody)" in tech.error["message"]
    assert outcome.ended_by == "refused" and outcome.account is None
    spawned = [p for p in set(psutil.pids()) - before if _is_shell_child(p)]
    assert spawned == []


def _is_shell_child(pid: int) -> bool:
    try:
        return psutil.Process(pid).ppid() == os.getpid()
    except psutil.NoSuchProcess:
        return False


def _as_nobody(results: Any) -> None:
    # A forked child that drops root, then runs both ends of a session in its own loop.
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    root = ShellAccount("root", 0, 0, "/root", "/bin/sh")
    out: dict[str, object] = {}

    async def script_refused(tech: Technician) -> None:
        await tech.until_closed()

    _, tech = run_session(script_refused, accounts={"user": root})
    out["refused"] = tech.error

    async def script_self(tech: Technician) -> None:
        await tech.send_data("id -u; exit\n")
        await tech.until_closed()

    _, tech = run_session(
        script_self,
        accounts={"service": ShellAccount.current()},
        first=encode_open(24, 80, "xterm", "service"),
    )
    out["self"] = tech.output.decode(errors="replace")
    results.put(out)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to drop to another user")
def test_an_agent_not_running_as_root_refuses_other_accounts_clearly() -> None:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_as_nobody, args=(results,))
    child.start()
    out = results.get(timeout=60)
    child.join(30)
    assert out["refused"]["code"] == "needs_root"
    assert "not root" in out["refused"]["message"] and "root" in out["refused"]["message"]
    assert "65534" in out["self"]


BAD_FIRST = {
    "empty": b"",
    "unknown type": b"\x09hello",
    "data first": bytes([DATA]) + b"ls\n",
    "not json": bytes([shell.OPEN]) + b"{rows",
    "not utf-8": bytes([shell.OPEN]) + b"\xff\xfe",
    "json list": bytes([shell.OPEN]) + b"[]",
    "extra field": bytes([shell.OPEN])
    + json.dumps({"rows": 24, "cols": 80, "term": "xterm", "run_as": "user", "uid": 0}).encode(),
    "zero rows": encode_open(0, 80, "xterm", "user"),
    "huge cols": encode_open(24, 5000, "xterm", "user"),
    "bool rows": bytes([shell.OPEN])
    + json.dumps({"rows": True, "cols": 80, "term": "xterm", "run_as": "user"}).encode(),
    "term path": encode_open(24, 80, "../../etc/passwd", "user"),
    "term newline": encode_open(24, 80, "xterm\nLD_PRELOAD=x", "user"),
    "run as root": encode_open(24, 80, "xterm", "root"),
    "oversized": encode_open(24, 80, "x" * 2000, "user"),
    # Found by fuzzing: nesting past the recursion limit escaped as RecursionError.
    "deeply nested": bytes([shell.OPEN]) + b"[" * 1024,
}


@pytest.mark.parametrize("name", list(BAD_FIRST))
def test_a_malformed_first_message_is_refused_without_starting_a_shell(name: str) -> None:
    async def script(tech: Technician) -> None:
        await tech.until_closed()

    outcome, tech = run_session(script, first=BAD_FIRST[name])
    assert tech.error is not None and tech.error["code"] == "protocol"
    assert outcome.ended_by == "protocol" and outcome.account is None


BAD_LATER = {
    "unknown type": b"\x7fxx",
    "second open": encode_open(24, 80, "xterm", "user"),
    "short resize": bytes([shell.RESIZE]) + b"\x00\x10\x00",
    "zero resize": encode_resize(0, 0),
    "oversized data": bytes([DATA]) + b"a" * (MAX_DATA + 1),
    "exit from technician": bytes([EXIT]) + b"\x00\x00\x00\x00",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(BAD_LATER))
def test_a_malformed_message_mid_session_ends_the_shell(name: str) -> None:
    async def script(tech: Technician) -> None:
        await tech.send_data("echo shell=$$\n")
        await tech.until_re(rb"shell=\d+")
        await tech.channel.send(BAD_LATER[name])
        await tech.until_closed()

    outcome, tech = run_session(script)
    assert tech.error is not None and tech.error["code"] == "protocol"
    assert outcome.ended_by == "protocol"
    assert _gone(_pid_after(tech.output, b"shell"))


def test_no_open_in_time_is_refused() -> None:
    async def main() -> tuple[ShellOutcome, bytes]:
        agent_end, tech_end = memory_pair()
        outcome = await serve_shell(
            agent_end, {"user": ShellAccount.current()}, admin=True, open_timeout=0.2
        )
        return outcome, await tech_end.recv(), await tech_end.recv()

    outcome, offer, message = run_async(main())
    assert outcome.ended_by == "protocol" and offer[0] == OFFER and message[0] == ERROR


# --- the technician's client, with a real local terminal --------------------------------


def _read_available(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except (BlockingIOError, OSError):
        return b""


async def _collect_until(fd: int, buffer: bytearray, needle: bytes) -> None:
    async def loop() -> None:
        while needle not in buffer:
            await shell.wait_fd(fd)
            buffer.extend(_read_available(fd))

    await asyncio.wait_for(loop(), WAIT)


async def _until_remote_size(fd: int, buffer: bytearray, size: bytes) -> None:
    """Ask the remote shell for its size until it reports ``size``.

    The resize travels client → tunnel → agent → remote PTY while the next command may
    already be on its way, so one ``stty size`` can answer with the old size on a loaded
    machine. Each round waits for the shell's own answer (a numbered marker), never a sleep.
    """
    for round_ in range(1000):
        marker = f"done-{round_}".encode()
        start = len(buffer)
        # The marker is split in the command so the echoed command line never matches it.
        os.write(fd, b"stty size; echo done-''" + str(round_).encode() + b"\r")
        await _collect_until(fd, buffer, marker)
        if size in buffer[start:]:
            return


SELF = "tests.streams.shell.test_shell"  # this module, as the fresh process imports it


def test_client_drives_a_remote_shell_from_a_local_terminal() -> None:
    # SIGWINCH reaches only a main thread's event loop, and in this test process the main
    # thread may be Playwright's (tests/asyncrun.py): run the scenario in a fresh process.
    result = subprocess.run(
        [sys.executable, "-c", f"from {SELF} import _resize_scenario as s; s()"],
        cwd=Path(__file__).parents[3],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def _resize_scenario() -> None:
    term_master, term_slave = pty.openpty()
    shell.set_winsize(term_slave, 30, 100)
    os.set_blocking(term_master, False)
    before = termios.tcgetattr(term_slave)

    async def main() -> tuple[int, list[Any], bytearray]:
        agent_end, tech_end = memory_pair()
        service = asyncio.create_task(
            serve_shell(agent_end, {"user": ShellAccount.current()}, admin=True)
        )
        client = asyncio.create_task(run_shell_client(tech_end, term_slave, term_slave))
        seen = bytearray()
        os.write(term_master, b"stty size\r")
        await _collect_until(term_master, seen, b"30 100")
        during = termios.tcgetattr(term_slave)
        shell.set_winsize(term_slave, 40, 120)
        os.kill(os.getpid(), __import__("signal").SIGWINCH)
        await asyncio.wait_for(_until_remote_size(term_master, seen, b"40 120"), WAIT)
        os.write(term_master, b"exit 7\r")
        status = await asyncio.wait_for(client, WAIT)
        await asyncio.wait_for(service, WAIT)
        return status, during, seen

    try:
        status, during, _ = asyncio.run(main())
        after = termios.tcgetattr(term_slave)
    finally:
        os.close(term_master)
        os.close(term_slave)
    assert status == 7
    assert not during[3] & termios.ICANON and not during[3] & termios.ECHO  # raw while connected
    assert after == before  # and restored afterwards


USER_ONLY = ShellOffer((ShellChoice("user", "kari", 1000),), "user")

HOSTILE_AGENT = {
    "error": (bytes([ERROR]) + b'{"code":"needs_root","message":"no"}', ShellRefused),
    "garbled error": (bytes([ERROR]) + b"\xff", ShellRefused),
    "unknown type": (b"\x42", ShellProtocolError),
    "short exit": (bytes([EXIT]) + b"\x00", ShellProtocolError),
    "empty": (b"", ShellProtocolError),
}


@pytest.mark.parametrize("name", list(HOSTILE_AGENT))
def test_client_refuses_what_a_broken_agent_sends(name: str) -> None:
    message, expected = HOSTILE_AGENT[name]
    read_fd, write_fd = os.pipe()  # not a tty: the client must cope without raw mode

    async def main() -> None:
        agent_end, tech_end = memory_pair()
        client = asyncio.create_task(run_shell_client(tech_end, read_fd, write_fd))
        await agent_end.send(encode_offer(USER_ONLY))
        assert (await agent_end.recv())[0] == shell.OPEN
        await agent_end.send(message)
        await client

    try:
        with pytest.raises(expected):
            run_async(main())
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_client_reports_a_tunnel_that_ends_before_the_shell() -> None:
    read_fd, write_fd = os.pipe()

    async def main() -> None:
        agent_end, tech_end = memory_pair()
        client = asyncio.create_task(run_shell_client(tech_end, read_fd, write_fd))
        await agent_end.send(encode_offer(USER_ONLY))
        await agent_end.recv()
        await agent_end.close("tunnel down")
        await client

    try:
        with pytest.raises(ChannelClosed):
            run_async(main())
    finally:
        os.close(read_fd)
        os.close(write_fd)


# --- terminal as administrator, and the OFFER ------------------------------------------


@pytest.mark.skipif(not IS_ROOT, reason="a privileged agent's service account is root")
def test_without_terminal_admin_a_root_shell_is_refused_by_the_agent_itself() -> None:
    # The attack: the ticket says terminal but not terminal_admin, and the technician's
    # OPEN asks for the agent's own account (root here) anyway.
    before = set(psutil.pids())
    accounts = {"user": ShellAccount.from_name("nobody"), "service": ShellAccount.current()}

    async def script(tech: Technician) -> None:
        await tech.until_closed()

    outcome, tech = run_session(
        script, accounts=accounts, first=encode_open(24, 80, "xterm", "service"), admin=False
    )
    assert tech.offer is not None and [c.run_as for c in tech.offer.choices] == ["user"]
    assert tech.error is not None and tech.error["code"] == "needs_terminal_admin"
    assert outcome.ended_by == "refused" and outcome.error == "needs_terminal_admin"
    assert outcome.account is None and outcome.run_as == "service"
    assert [p for p in set(psutil.pids()) - before if _is_shell_child(p)] == []

    # The same session may still have what it is allowed: a shell as the user.
    async def as_user(tech: Technician) -> None:
        await tech.send_data("id -u; exit\n")
        await tech.until_closed()

    outcome, tech = run_session(as_user, accounts=accounts, admin=False)
    assert outcome.account == "nobody" and tech.exit == 0


@pytest.mark.skipif(not IS_ROOT, reason="needs a root account to be the user")
def test_a_user_shell_that_would_be_root_needs_terminal_admin_too() -> None:
    root = ShellAccount.current()
    outcome, tech = run_session(
        lambda tech: tech.until_closed(), accounts={"user": root}, admin=False
    )
    # Nothing to offer: the agent says why before any OPEN, and starts nothing.
    assert tech.offer is None
    assert tech.error is not None and tech.error["code"] == "needs_terminal_admin"
    assert outcome.account is None


def test_the_agent_without_any_account_to_offer_says_so() -> None:
    outcome, tech = run_session(lambda tech: tech.until_closed(), accounts={})
    assert tech.offer is None and tech.error is not None
    assert tech.error["code"] == "no_shell_account" and outcome.error == "no_shell_account"


@pytest.mark.skipif(not IS_ROOT, reason="switching to nobody needs root")
def test_every_shell_reports_the_os_account_and_uid_it_runs_as() -> None:
    nobody = ShellAccount.from_name("nobody")
    started: list[ShellOutcome] = []

    async def script(tech: Technician) -> None:
        await tech.send_data("echo uid=$(id -u); exit\n")
        await tech.until_closed()

    outcome, tech = run_session(
        script,
        accounts={"user": nobody, "service": ShellAccount.current()},
        first=encode_open(24, 80, "xterm", "service"),
        started=started,
    )
    assert tech.offer is not None
    assert [(c.run_as, c.account, c.uid) for c in tech.offer.choices] == [
        ("user", "nobody", nobody.uid),
        ("service", "root", 0),
    ]
    assert tech.offer.default == "user"  # the least the technician needs comes first
    assert b"uid=0" in tech.output
    assert [(s.run_as, s.account, s.uid) for s in started] == [("service", "root", 0)]
    assert (outcome.account, outcome.uid) == ("root", 0)


def test_one_account_is_offered_once() -> None:
    # An unprivileged agent is the user at its display: one choice, not two names for it.
    me = ShellAccount.current()

    async def script(tech: Technician) -> None:
        await tech.send_data("exit\n")
        await tech.until_closed()

    _, tech = run_session(script, accounts={"user": me, "service": me}, admin=True)
    assert tech.offer is not None and [c.run_as for c in tech.offer.choices] == ["user"]


BAD_OFFERS = {
    "not json": b"{",
    "no choices": b'{"choices":[],"default":"user"}',
    "unknown run_as": b'{"choices":[{"run_as":"root","account":"root","uid":0}],"default":"root"}',
    "default not offered": (
        b'{"choices":[{"run_as":"user","account":"kari","uid":1000}],"default":"service"}'
    ),
    "twice": (
        b'{"choices":[{"run_as":"user","account":"a","uid":1},'
        b'{"run_as":"user","account":"b","uid":2}],"default":"user"}'
    ),
}


@pytest.mark.parametrize("name", list(BAD_OFFERS))
def test_a_malformed_offer_is_a_protocol_error(name: str) -> None:
    with pytest.raises(ShellProtocolError):
        decode_offer(BAD_OFFERS[name])


def test_the_client_takes_the_agents_default_and_reports_its_choice() -> None:
    read_fd, write_fd = os.pipe()
    seen: list[tuple[ShellOffer, str]] = []
    offer = ShellOffer(
        (ShellChoice("user", "kari", 1000), ShellChoice("service", "root", 0)), "user"
    )

    async def main() -> bytes:
        agent_end, tech_end = memory_pair()
        client = asyncio.create_task(
            run_shell_client(tech_end, read_fd, write_fd, on_offer=lambda o, c: seen.append((o, c)))
        )
        await agent_end.send(encode_offer(offer))
        opened = await agent_end.recv()
        await agent_end.send(bytes([EXIT]) + struct.pack("!i", 0))
        await client
        return opened

    try:
        opened = run_async(main())
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert json.loads(opened[1:])["run_as"] == "user"
    assert seen == [(offer, "user")]


def test_the_client_raises_the_agents_refusal_sent_instead_of_an_offer() -> None:
    read_fd, write_fd = os.pipe()

    async def main() -> None:
        agent_end, tech_end = memory_pair()
        client = asyncio.create_task(run_shell_client(tech_end, read_fd, write_fd))
        await agent_end.send(shell.encode_error("needs_terminal_admin", "no"))
        await client

    try:
        with pytest.raises(ShellRefused) as refused:
            run_async(main())
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert refused.value.code == "needs_terminal_admin"


# --- which accounts there are (agent.services) ----------------------------------------


def test_shell_accounts_without_a_display_is_the_agent_alone() -> None:
    from fjernhjelp.agent.services import shell_accounts

    assert set(shell_accounts(None)) == {"service"}


@pytest.mark.skipif(not IS_ROOT, reason="a root agent reads the display socket's owner")
def test_a_root_agent_on_a_configured_display_offers_the_socket_owners_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fjernhjelp.agent import services
    from fjernhjelp.agent.display import DisplayTarget

    monkeypatch.setattr(services, "X11_SOCKETS", str(tmp_path))
    socket = tmp_path / "X7"
    socket.touch()
    nobody = ShellAccount.from_name("nobody")
    os.chown(socket, nobody.uid, -1)
    accounts = services.shell_accounts(DisplayTarget(":7"))
    assert accounts["user"].name == "nobody" and accounts["service"].uid == 0
    assert "user" not in services.shell_accounts(DisplayTarget(":8"))  # no socket: no guess


HOSTILE_OFFERS = {
    # Found by fuzzing: 1e999 is a float infinity, and int() of it is OverflowError.
    "infinite uid": b'{"choices":[{"run_as":"user","account":"a","uid":1e999}],"default":"user"}',
    "deeply nested": b"[" * 1024,  # found by fuzzing: RecursionError
}


@pytest.mark.parametrize("name", list(HOSTILE_OFFERS))
def test_a_malformed_offer_from_the_agent_is_a_protocol_error(name: str) -> None:
    with pytest.raises(shell.ShellProtocolError):
        decode_offer(HOSTILE_OFFERS[name])


def test_a_malformed_error_from_the_agent_reads_as_a_protocol_error() -> None:
    assert shell.decode_error(b"[" * 1024)[0] == "protocol"  # found by fuzzing
