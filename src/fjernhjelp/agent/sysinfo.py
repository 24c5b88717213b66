"""What the agent tells about its machine: for presence reports and the console's
system information. Nothing here is secret; nothing is collected beyond what is shown."""

from __future__ import annotations

import platform
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psutil

from fjernhjelp import __version__


@dataclass(frozen=True)
class SystemInfo:
    hostname: str
    os_name: str
    kernel: str
    architecture: str
    users: tuple[str, ...]
    agent_version: str
    python_version: str
    cpu_count: int | None
    memory_bytes: int
    boot_time: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["users"] = list(self.users)
        return data


def os_name() -> str:
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return f"{platform.system()} {platform.release()}".strip()
    return release.get("PRETTY_NAME") or release.get("NAME") or platform.system()


def logged_in_users() -> tuple[str, ...]:
    """Distinct names of users with a login session (local or remote), sorted."""
    return tuple(sorted({u.name for u in psutil.users() if u.name}))


def collect() -> SystemInfo:
    """A snapshot of the machine. Cheap (no subprocess): fine on the event loop."""
    return SystemInfo(
        hostname=socket.gethostname(),
        os_name=os_name(),
        kernel=platform.release(),
        architecture=platform.machine(),
        users=logged_in_users(),
        agent_version=__version__,
        python_version=platform.python_version(),
        cpu_count=psutil.cpu_count(),
        memory_bytes=psutil.virtual_memory().total,
        boot_time=datetime.fromtimestamp(psutil.boot_time(), UTC).isoformat(),
    )
