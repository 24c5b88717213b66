"""Where the CLI keeps its session: one JSON file, readable by its owner only."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path


class CredentialsError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    server: str
    username: str
    token: str
    expires_at: str  # ISO 8601, from the server

    def expired(self, now: datetime) -> bool:
        return datetime.fromisoformat(self.expires_at) <= now


def default_path() -> Path:
    base = os.environ.get("FJERNHJELP_CLI_HOME")
    if base:
        return Path(base) / "session.json"
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "fjernhjelp" / "session.json"


def save(credentials: Credentials, path: Path | None = None) -> Path:
    path = path or default_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(credentials), fh)
    os.replace(tmp, path)
    return path


def load(path: Path | None = None) -> Credentials:
    path = path or default_path()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise CredentialsError("not logged in: run `fjernhjelp login`") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # A token others can read is a token others can use.
        raise CredentialsError(f"{path} is readable by others; log in again")
    try:
        return Credentials(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise CredentialsError(f"{path} is damaged; log in again") from exc


def forget(path: Path | None = None) -> None:
    (path or default_path()).unlink(missing_ok=True)
