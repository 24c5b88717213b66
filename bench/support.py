"""A Support session's start against an Access session's, on the same machine in the same run.

Real processes: a server (bench/_live.py), an Access agent and the end user's one-time
client (``fjernhjelp support CODE`` from the package, or ``--one-file`` a
``make support-client`` build stamped for this server), both on one Xvfb display; the
technician is this process, through the same modules as the command line
(technician/support.py, technician/tunnel.py) and the same local VNC port as
``--vnc`` (streams/desktop/technician.py), read by a measuring RFB client
(bench/_rfb_probe.py). A "first frame" is the first whole FramebufferUpdate at that port.

Consent is given at once: the bench clicks "Allow" with xdotool as soon as the program
logs that its dialog is shown (no hook in the client: nothing a stamped client could be
made to skip). Each round, interleaved so that load on the shared machine hits all alike:

- Access, pre-approved: from asking the server for the session to the first frame;
- Access, attended: the same with the end user's consent (grant changed between the two);
- Support: from the client's join call (entering the code) to the first frame. The
  technician waits as ``support-session connect`` does, polling the session's state
  (every ``--poll`` seconds) and opening the tunnel once the client has logged in.
  Reported separately: the client's own start-up (process start to the join call).

Printed: medians and spread (min–max) per path, the parts of the Support time, and the
ratio of Support to each Access path (issue 11's target: within 1.5x of Access, start-up
apart). The attended Access path is the like-for-like baseline: both ask and are allowed.

Run: .venv/bin/python bench/support.py [--rounds 7] [--poll 0.1] [--one-file PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.desktop.xvfb import xvfb
from tests.live.live import LiveSite

from bench._live import FULL, live_site
from bench._rfb_probe import Probe
from fjernhjelp.control.package import b64e
from fjernhjelp.streams.desktop.technician import serve_local_vnc
from fjernhjelp.support.stamp import stamp
from fjernhjelp.technician import support
from fjernhjelp.technician.api import Api
from fjernhjelp.technician.tunnel import OpenedSession, open_session

HOSTNAME = "bench-support"
SHOWN = re.compile(r"consent dialog shown: (\{.*\})")


def click(display: str, x: int, y: int) -> None:
    subprocess.run(
        ["xdotool", "mousemove", "--sync", str(x), str(y), "click", "1"],
        env={**os.environ, "DISPLAY": display},
        check=True,
        timeout=30,
    )


@dataclass
class Lines:
    """A process's output, line by line with the monotonic time each arrived."""

    proc: subprocess.Popen[bytes]
    seen: list[tuple[float, str]] = field(default_factory=list)
    _new: queue.Queue[tuple[float, str] | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._new.put((time.monotonic(), raw.decode("utf-8", "replace")))
        self._new.put(None)

    def wait_for(
        self, pattern: re.Pattern[str], timeout: float = 60
    ) -> tuple[float, re.Match[str]]:
        for at, line in self.seen:
            if found := pattern.search(line):
                return at, found
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self._new.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                break
            self.seen.append(item)
            if found := pattern.search(item[1]):
                return item[0], found
        tail = "".join(line for _, line in self.seen[-30:])
        raise TimeoutError(f"{pattern.pattern!r} never came:\n{tail}")

    def drain(self, timeout: float = 10) -> None:
        """Take in what is left once the process has ended."""
        with contextlib.suppress(TimeoutError):
            self.wait_for(re.compile(r"(?!)"), timeout)


def watch_log(path: Path, pattern: re.Pattern[str], stop: threading.Event) -> re.Match[str] | None:
    """Polls a log file (the agent's) every 10 ms for a new line matching ``pattern``."""
    start = path.stat().st_size if path.exists() else 0
    while not stop.is_set():
        with path.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", "replace")
        if found := pattern.search(text):
            return found
        time.sleep(0.01)
    return None


async def first_frame(session: OpenedSession) -> float:
    """The monotonic time the first whole desktop update arrives at a local VNC port."""
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve_local_vnc(
            lambda: session.tunnel.open("desktop"),
            "127.0.0.1",
            0,
            on_listening=lambda _h, port: listening.set_result(port),
        )
    )
    try:
        probe = await Probe.connect(await listening)
        reader = asyncio.create_task(probe.run())
        try:
            while not probe.updates:
                await asyncio.wait_for(probe._new_update.wait(), 120)
            return probe.updates[0].received
        finally:
            reader.cancel()
            await probe.close()
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


async def consent_clicker(
    display: str, find: Callable[[threading.Event], re.Match[str] | None]
) -> float:
    """Clicks "Allow" as soon as ``find`` sees the dialog; the time of the click."""
    stop = threading.Event()
    try:
        found = await asyncio.to_thread(find, stop)
    finally:
        stop.set()
    if found is None:
        return 0.0
    buttons = json.loads(found.group(1))["buttons"]
    at = time.monotonic()
    await asyncio.to_thread(click, display, *buttons["allow"])
    return at


@dataclass
class Bench:
    site: LiveSite
    api: Api
    machine_id: str
    display: str
    agent_log: Path
    poll: float
    client_program: list[str]
    results: dict[str, list[float]] = field(default_factory=dict)
    trace: list[str] = field(default_factory=list)
    agent_trace: list[str] = field(default_factory=list)

    def add(self, name: str, value: float) -> None:
        self.results.setdefault(name, []).append(value)

    def set_consent(self, required: bool) -> None:
        self.site.update_grant(FULL, consent_required=required)

    async def access(self, attended: bool) -> None:
        clicker = (
            asyncio.create_task(
                consent_clicker(self.display, lambda stop: watch_log(self.agent_log, SHOWN, stop))
            )
            if attended
            else None
        )
        log_from = self.agent_log.stat().st_size
        start = time.monotonic()
        try:
            session = await open_session(self.api, self.machine_id)
            try:
                frame = await first_frame(session)
            finally:
                await session.close()
        finally:
            if clicker is not None:
                clicker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await clicker
        self.add("access_attended" if attended else "access_preapproved", frame - start)
        if attended:
            with self.agent_log.open("rb") as fh:
                fh.seek(log_from)
                self.agent_trace = fh.read().decode("utf-8", "replace").splitlines()

    async def support_round(self, scratch: Path) -> None:
        made = await asyncio.to_thread(support.create, self.api, str(self.site.world.gp.id))
        home, tmp = scratch / "home", scratch / "tmp"
        for folder in (home, tmp):
            folder.mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "XAUTHORITY"))}
        env.update(HOME=str(home), TMPDIR=str(tmp), DISPLAY=self.display, LANG="C.UTF-8")
        launched = time.monotonic()
        proc = launch([*self.client_program, made["code"], "--language", "en", "--verbose"], env)
        out = Lines(proc)
        try:
            # The technician waits from the start, as on the telephone.
            opening = asyncio.create_task(
                support.open_when_joined(self.api, made["id"], poll=self.poll, patience=120)
            )
            joined_at, _ = await asyncio.to_thread(out.wait_for, re.compile(r"^Code: "))
            dialog_at, found = await asyncio.to_thread(out.wait_for, SHOWN)
            clicked_at = time.monotonic()
            await asyncio.to_thread(
                click, self.display, *json.loads(found.group(1))["buttons"]["allow"]
            )
            session = await opening
            try:
                frame = await first_frame(session)
            finally:
                await session.close()
            await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await asyncio.to_thread(out.drain)
        self.trace = [
            f"{(at - joined_at) * 1000:8.0f} ms  {line.rstrip()}" for at, line in out.seen
        ]
        self.trace.append(f"{(frame - joined_at) * 1000:8.0f} ms  (first frame at the technician)")
        self.add("support", frame - joined_at)
        self.add("support_client_start", joined_at - launched)
        self.add("support_join_to_dialog", dialog_at - joined_at)
        self.add("support_click_to_frame", frame - clicked_at)


def launch(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Not in the bench's scratch folder: nothing of ours where the client writes.
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir()
    )


def spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:7.0f} ms  "
        f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, n={len(values)})"
    )


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fjh-bench-support-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def client_program(site: LiveSite, one_file: Path | None, scratch: Path) -> list[str]:
    server = site.server
    assert server is not None
    if one_file is None:
        key = b64e(site.state.keys.signing.public_key().public_bytes_raw())
        return [
            sys.executable,
            "-m",
            "fjernhjelp",
            "support",
            "--server",
            server.url,
            f"--server-key={key}",
        ]
    path = scratch / "fjernhjelp-support"
    path.write_bytes(stamp(one_file.read_bytes(), server.url, site.state.keys.signing))
    path.chmod(0o755)
    return [str(path)]


async def run(bench: Bench, rounds: int, scratch: Path) -> None:
    # One untimed round of each: the first start reads files the later ones find cached.
    for n in range(rounds + 1):
        bench.set_consent(False)
        await bench.access(attended=False)
        bench.set_consent(True)
        await bench.access(attended=True)
        folder = scratch / f"round-{n}"
        folder.mkdir()
        await bench.support_round(folder)
        if n == 0:
            bench.results.clear()
        print(f"round {n}{' (warm-up)' if n == 0 else ''} done", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--poll", type=float, default=0.1, help="technician's wait, seconds")
    parser.add_argument("--one-file", type=Path, help="a `make support-client` build")
    parser.add_argument(
        "--trace", action="store_true", help="print the last client's output, timed from the join"
    )
    args = parser.parse_args()
    with xvfb(1280, 800) as screen, live_site() as site, scratch_dir() as scratch:
        agent = site.agent(HOSTNAME, display=screen.display)
        agent.start()
        token = site.api_token(site.world.tech)
        machines = site.wait_online(token, {HOSTNAME})
        machine_id = next(m["id"] for m in machines if m["hostname"] == HOSTNAME)
        assert site.server is not None
        with Api(site.server.url, token) as api:
            bench = Bench(
                site,
                api,
                machine_id,
                screen.display,
                agent.log,
                args.poll,
                client_program(site, args.one_file, scratch),
            )
            asyncio.run(run(bench, args.rounds, scratch))
    if args.trace:
        print("the agent, last attended Access round:", *bench.agent_trace, sep="\n")
        print("the Support client, last round:", *bench.trace, sep="\n")
    r = bench.results
    med = statistics.median
    print(f"rounds: {args.rounds} (after one warm-up), technician polls every {args.poll} s")
    print(f"client: {'one-file build' if args.one_file else 'fjernhjelp support (package)'}")
    for label, key in (
        ("Access, pre-approved: connect to first frame", "access_preapproved"),
        ("Access, attended: connect to first frame", "access_attended"),
        ("Support: join call to first frame", "support"),
        ("  of which join call to consent dialog shown", "support_join_to_dialog"),
        ("  of which click on Allow to first frame", "support_click_to_frame"),
        ("Support client start-up (not counted above)", "support_client_start"),
    ):
        print(f"  {label:48} {spread(r[key])}")
    for label, key in (("attended", "access_attended"), ("pre-approved", "access_preapproved")):
        print(f"ratio Support / Access {label + ':':14} {med(r['support']) / med(r[key]):.2f}")


if __name__ == "__main__":
    main()
