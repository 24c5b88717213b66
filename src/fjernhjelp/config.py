"""Server configuration: environment (``FJERNHJELP_*``), then an optional TOML file.

The file is named by ``FJERNHJELP_CONFIG``; environment variables win over it, so a
deployment can keep its defaults in the file and override one value at a time.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FJERNHJELP_", extra="forbid")

    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is SQLite in the data directory"
    )
    redis_url: str | None = None
    bind: str = "127.0.0.1:8080"
    agent_bind: str | None = Field(
        default=None,
        description=(
            "host:port of a lean listener for agents' control links only (the load balancer "
            "sends /agent/control there); default: agents use the main port"
        ),
    )
    relay_bind: str | None = Field(
        default=None,
        description=(
            "host:port of a lean listener for relay sockets only (/relay/<session>), which "
            "passes frames between the two ends without the ASGI stack; the load balancer "
            "sends the relay path there, or FJERNHJELP_NODE_URL names it; default: the main port"
        ),
    )
    public_url: str | None = Field(
        default=None, description="URL users reach the server on; default http://<bind>"
    )
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses whose X-Forwarded-For is believed (a reverse proxy)",
    )

    log_level: str = "INFO"
    log_destination: Literal["stderr", "file", "syslog"] = "stderr"
    log_file: Path | None = None
    audit_syslog: str | None = Field(
        default=None, description="host:port (UDP) to forward audit events to as syslog"
    )

    default_language: Literal["nb", "en"] = "nb"
    browser_libs_dir: Path | None = Field(
        default=None,
        description="node_modules folder holding noVNC and xterm.js; default: the checkout's",
    )

    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    login_pending_minutes: int = 5
    enrolment_link_hours: int = 72

    # Throttling: after this many failures the account (or address) waits, with the
    # wait doubling for each further failure, up to lockout_max_seconds.
    account_failures_before_lockout: int = 5
    address_failures_before_lockout: int = 20
    lockout_base_seconds: int = 30
    lockout_max_seconds: int = 3600

    # argon2id cost. The defaults follow RFC 9106's second recommendation; tests lower
    # memory to keep the suite quick but never change the algorithm.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4

    password_min_length: int = 12

    # Access: this node's name in the cluster (must stay the same across restarts, so
    # sessions it was relaying when it stopped can be closed when it starts again) and
    # the URL agents and browsers reach *this* node's relay on (behind a load balancer
    # that does not hash the relay path, each node needs its own).
    node_id: str = Field(default_factory=lambda: socket.gethostname()[:64])
    node_url: str | None = None
    relay_pair_seconds: float = 30.0
    # With Redis: how often this node says it is alive. A node silent for three beats
    # is taken for dead, and the others end the sessions it was relaying ("node_lost");
    # a Redis restarted empty is noticed at the next beat and presence written again.
    node_heartbeat_seconds: float = Field(default=10.0, gt=0, le=60)

    # Prometheus text at /metrics (docs/metrics.md), answered only to callers whose
    # address (X-Forwarded-For through trusted_proxies, as everywhere) is in one of these
    # networks; everyone else gets 404. Empty, the default: nobody (`fjernhjelp demo`
    # allows loopback when this is not set). A scraper on another host is named here,
    # e.g. ["10.0.5.7/32"]; keep the proxy from forwarding /metrics at all if it can.
    metrics_allow: list[str] = Field(
        default_factory=list,
        description="networks whose callers may read /metrics (CIDR); empty: nobody",
    )

    # Unauthenticated traffic (README, "Security"). Sockets that have not authenticated
    # yet, per source address (agents behind one NAT reconnecting together share it;
    # a refused one retries with its backoff). Probes (unknown endpoints, oversized
    # bodies, refused sockets, anonymous forms without a CSRF token) are audited as one
    # event per address per probe_audit_seconds, for at most probe_audit_max_addresses
    # addresses at once (the rest are counted together). ws_unauthenticated_total bounds
    # the node's sockets that have not authenticated, all addresses together (agent logins
    # in progress on both listeners, relay joins): a fleet coming back after a restart
    # holds a few hundred at once (each login takes milliseconds; agents back off), a flood
    # from many addresses no more than this (~50 KiB each on the main port).
    ws_unauthenticated_per_address: int = Field(default=32, ge=1)
    ws_unauthenticated_total: int = Field(default=2048, ge=1)
    # A socket let in that has not said its hello (an agent) or its join (the relay) this
    # many seconds later is silent: it no longer counts as a login in progress, and it
    # is a strike against its source. ws_silent_strikes strikes within
    # ws_silent_window_seconds cut the source to ws_silent_allowance sockets until they
    # are that old (server/ws_guard.py says why).
    ws_silent_seconds: float = Field(default=5.0, gt=0)
    ws_silent_strikes: int = Field(default=32, ge=1)
    ws_silent_window_seconds: float = Field(default=60.0, gt=0)
    ws_silent_allowance: int = Field(default=2, ge=1)
    probe_audit_seconds: int = Field(default=60, ge=1)
    probe_audit_max_addresses: int = Field(default=10_000, ge=1)

    # The portal. Accounts not used for this many days are deactivated by the sweep,
    # which also ends grants and agreements that ran out; the server runs it every
    # sweep_interval_seconds (0: only `fjernhjelp admin sweep`). Dates typed into forms
    # (an agreement's last day) are days in this time zone.
    inactive_user_days: int = Field(default=90, ge=1)
    sweep_interval_seconds: int = Field(default=60, ge=0)
    time_zone: str = "Europe/Oslo"
    # How often the server signs the audit chain's head (audit/checkpoint.py); 0: only
    # `fjernhjelp audit checkpoint` and downloads make checkpoints.
    audit_checkpoint_interval_seconds: int = Field(default=3600, ge=0)

    # Support: the one-time code the technician reads to the end user. Digits only, at
    # least 9 (10^9 codes against throttled guessing); it expires if nobody joins within
    # support_code_minutes. Wrong codes are throttled per source address (an IPv6
    # address counts by its /64) and overall, per hour, with the lockout back-off above.
    support_code_digits: int = Field(default=9, ge=9, le=18)
    support_code_minutes: int = Field(default=20, ge=1, le=24 * 60)
    support_code_address_failures: int = Field(default=10, ge=1)
    support_code_overall_failures_per_hour: int = Field(default=1000, ge=1)
    # After a Support session ends, its client's control link stays open this long for
    # the client's last reports (how it saw the session end); the client closes it
    # itself once they are sent, and the server closes a link still open after it.
    support_link_grace_seconds: float = Field(default=10.0, gt=0, le=300)
    # How often the server ends Support sessions whose code or join ran out (a waiting
    # code past its time; a joined client whose tunnel never came within a code's
    # lifetime of the join) and tells their clients.
    support_sweep_seconds: float = Field(default=30.0, gt=0)
    support_client_dir: Path | None = Field(
        default=None,
        description="folder holding the generic one-time Support clients built by"
        " `make support-client`; default: the checkout's dist/",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("FJERNHJELP_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'fjernhjelp.db').resolve()}"

    @property
    def host(self) -> str:
        host, _, _ = self.bind.rpartition(":")
        return host.strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.bind.rpartition(":")[2])

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def relay_base_url(self) -> str:
        base = (self.node_url or self.effective_public_url).rstrip("/")
        return "ws" + base[4:] if base.startswith("http") else base

    @property
    def secure_cookies(self) -> bool:
        """Secure cookies unless the service is plain http on a loopback address.

        Browsers treat http://127.0.0.1 as a secure context, but only a TLS origin may
        set a ``__Host-`` cookie, so the local development server uses plain names.
        """
        return self.effective_public_url.startswith("https://")

    @cached_property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies]

    @cached_property
    def metrics_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(p, strict=False) for p in self.metrics_allow]

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"


def load_settings(**overrides: Any) -> Settings:
    # Any: fields by name, each validated (and coerced) by pydantic as from the environment.
    return Settings(**overrides)
