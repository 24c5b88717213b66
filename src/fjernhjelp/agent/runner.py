"""``fjernhjelp agent run``: enrol once, then keep the control link up and serve sessions."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fjernhjelp import __version__
from fjernhjelp.agent.backoff import Backoff
from fjernhjelp.agent.config import AgentConfig, ConfigError, load_config, save_config
from fjernhjelp.agent.display import DisplayTarget, find_active_display
from fjernhjelp.agent.enrol import EnrolmentFailed, enrol
from fjernhjelp.agent.identity import load_or_create_identity
from fjernhjelp.agent.link import ControlLink, LinkConfig
from fjernhjelp.agent.remote_session import AgentSessions
from fjernhjelp.agent.sysinfo import logged_in_users, os_name
from fjernhjelp.agent.tls import client_context, for_url
from fjernhjelp.control.messages import MachineInfo, SessionEvent

_log = logging.getLogger(__name__)

DISPLAY_POLL_SECONDS = 15.0


class FatalAgentError(Exception):
    """The agent cannot run and retrying will not help (refused enrolment, bad config)."""


def display_finder(config: AgentConfig) -> Callable[[], DisplayTarget | None]:
    if config.display == "auto":
        return find_active_display
    if config.display == "none":
        return lambda: None
    fixed = DisplayTarget(display=config.display, language=config.language)
    return lambda: fixed


@dataclass
class Presence:
    """What the agent reports about its machine; the display check runs off the loop."""

    hostname: str
    find_display: Callable[[], DisplayTarget | None] = find_active_display
    display: bool = False

    def info(self) -> MachineInfo:
        return MachineInfo(
            hostname=self.hostname[:255],
            os=os_name()[:255],
            users=[u[:64] for u in logged_in_users()][:32],
            agent_version=__version__,
            display=self.display,
        )

    async def watch_display(self) -> None:
        while True:
            self.display = await asyncio.to_thread(self.find_display) is not None
            await asyncio.sleep(DISPLAY_POLL_SECONDS)


def control_url(server_url: str) -> str:
    return "ws" + server_url[4:] + "/agent/control" if server_url.startswith("http") else server_url


async def ensure_enrolled(config: AgentConfig, path: Path, presence: Presence) -> AgentConfig:
    if config.enrolled:
        return config
    identity = load_or_create_identity(config.identity_key_path)
    backoff = Backoff(cap=300)
    while True:
        try:
            machine_id = await enrol(config, identity, presence.info())
        except EnrolmentFailed as exc:
            if exc.permanent:
                raise FatalAgentError(f"enrolment refused: {exc.reason}") from exc
            delay = backoff.next_delay()
            _log.warning("enrolment failed (%s); retrying in %.0f s", exc.reason, delay)
            await asyncio.sleep(delay)
            continue
        config = config.after_enrolment(str(machine_id))
        save_config(config, path)
        _log.info("enrolled as machine %s", machine_id)
        return config


async def run_agent(path: Path, *, hostname: str | None = None) -> None:
    config = load_config(path)
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    finder = display_finder(config)
    presence = Presence(hostname or socket.gethostname(), finder)
    config = await ensure_enrolled(config, path, presence)
    identity = load_or_create_identity(config.identity_key_path)
    assert config.machine_id is not None
    machine_id = uuid.UUID(config.machine_id)
    link: ControlLink | None = None
    tls = client_context(config)
    url = control_url(config.server_url)

    def report(event: SessionEvent) -> None:
        assert link is not None
        link.report_event(event)

    sessions = AgentSessions(
        config=config,
        identity=identity,
        machine_id=machine_id,
        report=report,
        find_display=finder,
        tls=tls,
    )
    link = ControlLink(
        LinkConfig(
            control_url=url,
            server_public_key=config.server_key,
            machine_id=machine_id,
            identity=identity.private_key,
            ssl=for_url(tls, url),
        ),
        machine_info=presence.info,
        on_dial=sessions.dial,
        on_cut=sessions.cut,
    )
    watcher = asyncio.create_task(presence.watch_display())
    try:
        await link.run_forever()
    finally:
        watcher.cancel()


def run_in_foreground(config: Path, *, hostname: str | None, verbose: bool) -> str | None:
    """Run the agent until stopped (what the systemd unit runs, through ``fjernhjelp agent
    run`` or the one-file copy); returns why it cannot run, or None when stopped."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # websockets logs the start of every frame at DEBUG: control messages carry relay
    # tokens and tickets, which never go to a log, whatever the verbosity.
    logging.getLogger("websockets").setLevel(logging.INFO)
    try:
        asyncio.run(run_agent(config, hostname=hostname))
    except (ConfigError, FatalAgentError) as exc:
        return str(exc)
    except KeyboardInterrupt:
        pass
    return None
