"""The agent's local configuration file (TOML), written at install and after enrolment.

It names the server and pins its key (from the installer package), holds the enrolment
token until it is used and the machine id after, and the local policy: the machine's own
owner may be stricter than any grant (always ask consent, which folders files may move in),
never looser. The file may hold a token and decides which server the agent trusts, so it
must be writable by nobody but the agent's account (checked on load) and is written 0600.
"""

from __future__ import annotations

import os
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Literal

import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fjernhjelp.control.package import InstallerPackage, b64d, b64e, check_server_url


class ConfigError(Exception):
    """The configuration file is missing, malformed or unsafe."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server_url: str
    server_public_key: str = Field(description="base64url of the raw Ed25519 key, pinned")
    group: str
    organisation: str | None = None
    data_dir: Path
    enrolment_token: str | None = None
    machine_id: str | None = None
    always_ask_consent: bool = False
    consent_timeout: float = Field(default=60.0, ge=5.0, le=600.0)
    file_roots: list[Path] = Field(default_factory=list)
    language: Literal["nb", "en"] | None = None
    # Where to show consent dialogs and the session indicator: "auto" finds the screen
    # of the user at the machine; "none" declares a machine nobody sits at (consent-
    # required sessions are then refused); ":N" names an X display (kiosks, tests).
    display: str = Field(default="auto", pattern=r"^(auto|none|:\d{1,4})$")
    # A PEM file of the CA that signed the server's (and its nodes') certificates, when it
    # is a private one; the system's trust store otherwise (agent.tls).
    tls_ca_file: Path | None = None

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_server_url(value)

    @field_validator("server_public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            raw = b64d(value)
        except ValueError as exc:
            raise ValueError("server_public_key is not base64url") from exc
        if len(raw) != 32:
            raise ValueError("server_public_key must be a 32-byte Ed25519 key")
        return value

    @property
    def server_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(b64d(self.server_public_key))

    @property
    def identity_key_path(self) -> Path:
        return self.data_dir / "identity.key"

    @property
    def enrolled(self) -> bool:
        return self.machine_id is not None

    def after_enrolment(self, machine_id: str) -> AgentConfig:
        """The config once enrolled: the machine id kept, the used token forgotten."""
        return self.model_copy(update={"machine_id": machine_id, "enrolment_token": None})

    @classmethod
    def from_package(
        cls, package: InstallerPackage, *, data_dir: Path, file_roots: list[Path] | None = None
    ) -> AgentConfig:
        return cls(
            server_url=package.server_url,
            server_public_key=b64e(package.server_public_key),
            group=package.group,
            organisation=package.organisation,
            data_dir=data_dir,
            enrolment_token=package.enrolment_token,
            file_roots=file_roots or [],
        )


def load_config(path: Path) -> AgentConfig:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ConfigError(path, "does not exist") from exc
    except OSError as exc:
        raise ConfigError(path, f"cannot be opened safely ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if st.st_mode & 0o022:
            # Whoever can write it can point the agent at another server and key.
            raise ConfigError(path, f"mode {stat.S_IMODE(st.st_mode):04o} lets others change it")
        try:
            raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(path, f"is not valid TOML ({exc})") from exc
    try:
        config = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(path, problems) from exc
    if config.enrolment_token and st.st_mode & 0o004:
        raise ConfigError(path, "holds an enrolment token and is readable by everyone")
    return config


def save_config(config: AgentConfig, path: Path) -> None:
    """Write atomically with mode 0600 (a crash leaves the old file or the new one)."""
    text = tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))
    fd, temporary = tempfile.mkstemp(prefix=".agent-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fd, 0o600)
            fh.write(text)
            fh.flush()
            os.fsync(fd)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
