"""The agent's identity key, installer package and config file, from the attacker's side too."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.agent.config import AgentConfig, ConfigError, load_config, save_config
from fjernhjelp.agent.identity import (
    InsecureKeyFile,
    fingerprint,
    load_identity,
    load_or_create_identity,
)
from fjernhjelp.control.package import (
    PackageRejected,
    b64d,
    b64e,
    build_package,
    read_package,
)

SERVER_KEY = Ed25519PrivateKey.generate()
FUTURE = datetime.now(UTC) + timedelta(days=7)


def package(**kw: object) -> bytes:
    args: dict[str, object] = {
        "server_url": "https://fjernhjelp.example.no",
        "enrolment_token": "tok-123",
        "group": "Legekontor Nord",
        "organisation": "Nord legesenter",
        "expires_at": FUTURE,
        "package_id": "pkg1",
        **kw,
    }
    return build_package(SERVER_KEY, **args)  # type: ignore[arg-type]


# --- identity ------------------------------------------------------------------------------


def test_the_identity_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "identity.key"
    old = os.umask(0)  # even a careless umask must not make it readable
    try:
        first = load_or_create_identity(path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    again = load_or_create_identity(path)
    assert again.public_bytes == first.public_bytes and len(first.public_bytes) == 32
    first.private_key.public_key().verify(again.sign(b"challenge"), b"challenge")
    assert first.fingerprint.startswith("SHA256:")


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640, 0o660, 0o606])
def test_a_key_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "identity.key"
    load_or_create_identity(path)
    path.chmod(mode)
    with pytest.raises(InsecureKeyFile, match="lets others read"):
        load_or_create_identity(path)
    assert path.stat().st_mode & 0o777 == mode  # refused, not silently "fixed" or replaced


def test_a_symlinked_or_truncated_or_foreign_key_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    load_or_create_identity(real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(InsecureKeyFile, match="safely"):
        load_identity(link)
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 16)
    short.chmod(0o600)
    with pytest.raises(InsecureKeyFile, match="16 bytes"):
        load_identity(short)
    if os.geteuid() == 0:
        os.chown(real, 65534, 65534)
        with pytest.raises(InsecureKeyFile, match="uid 65534"):
            load_identity(real)


# --- installer package ---------------------------------------------------------------------


def test_a_package_round_trips_and_pins_the_key() -> None:
    pkg = read_package(package(), expected_fingerprint=fingerprint(SERVER_KEY.public_key()))
    assert pkg.server_url == "https://fjernhjelp.example.no"
    assert pkg.server_public_key == SERVER_KEY.public_key().public_bytes_raw()
    assert (pkg.enrolment_token, pkg.group, pkg.organisation) == (
        "tok-123",
        "Legekontor Nord",
        "Nord legesenter",
    )
    assert pkg.fingerprint == fingerprint(SERVER_KEY.public_key())


def _tamper(data: bytes, **changes: object) -> bytes:
    envelope = json.loads(data)
    body = json.loads(b64d(envelope["payload"]))
    body.update(changes)
    envelope["payload"] = b64e(json.dumps(body).encode())
    return json.dumps(envelope).encode()


def test_an_edited_package_fails_its_signature() -> None:
    for change in (
        {"server_url": "https://evil.example"},
        {"enrolment_token": "other"},
        {"group": "Everyone"},
    ):
        with pytest.raises(PackageRejected) as rejected:
            read_package(_tamper(package(), **change))
        assert rejected.value.reason == "signature"


def test_a_package_for_another_key_is_refused_before_anything_else() -> None:
    attacker = Ed25519PrivateKey.generate()
    forged = build_package(
        attacker,
        server_url="https://fjernhjelp.example.no",
        enrolment_token="t",
        group="g",
        expires_at=FUTURE,
    )
    read_package(forged)  # self-consistent: on its own it proves nothing (see package.py)
    with pytest.raises(PackageRejected) as rejected:
        read_package(forged, expected_fingerprint=fingerprint(SERVER_KEY.public_key()))
    assert rejected.value.reason == "fingerprint"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "malformed"),
        (b"[]", "malformed"),
        (json.dumps({"format": "other"}).encode(), "malformed"),
        (json.dumps({"format": "fjernhjelp-agent-package", "version": 2}).encode(), "version"),
        (json.dumps({"format": "fjernhjelp-agent-package", "version": 1}).encode(), "malformed"),
        (b" " * 70000, "malformed"),
        # Found by fuzzing: nesting past the recursion limit escaped as RecursionError.
        (b"[" * 60000, "malformed"),
    ],
)
def test_malformed_packages_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(PackageRejected) as rejected:
        read_package(data)
    assert rejected.value.reason == reason


def test_a_wrong_length_key_or_plain_http_or_expired_package_is_refused() -> None:
    envelope = json.loads(package())
    body = json.loads(b64d(envelope["payload"]))
    body["server_public_key"] = b64e(b"\x01" * 31)
    envelope["payload"] = b64e(json.dumps(body).encode())
    with pytest.raises(PackageRejected, match="32-byte"):
        read_package(json.dumps(envelope).encode())
    with pytest.raises(ValueError, match="https"):
        package(server_url="http://fjernhjelp.example.no")
    assert read_package(package(server_url="http://127.0.0.1:8080")).server_url.startswith("http:")
    past = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(PackageRejected) as rejected:
        read_package(package(expires_at=past))
    assert rejected.value.reason == "expired"


# --- config --------------------------------------------------------------------------------


def config(tmp_path: Path) -> AgentConfig:
    return AgentConfig.from_package(
        read_package(package()), data_dir=tmp_path / "data", file_roots=[tmp_path]
    )


def test_config_round_trips_and_forgets_the_token_after_enrolment(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    original = config(tmp_path)
    save_config(original, path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_config(path)
    assert loaded == original and loaded.enrolment_token == "tok-123" and not loaded.enrolled
    assert loaded.server_key.public_bytes_raw() == SERVER_KEY.public_key().public_bytes_raw()
    save_config(loaded.after_enrolment("m-42"), path)
    text = path.read_text()
    assert "tok-123" not in text and 'machine_id = "m-42"' in text
    assert load_config(path).enrolled
    assert loaded.identity_key_path == tmp_path / "data" / "identity.key"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.toml"]  # no temp file left


def test_a_config_others_can_change_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    save_config(config(tmp_path), path)
    path.chmod(0o666)
    with pytest.raises(ConfigError, match="lets others change it"):
        load_config(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="enrolment token"):
        load_config(path)
    save_config(config(tmp_path).after_enrolment("m"), path)
    path.chmod(0o644)
    assert load_config(path).machine_id == "m"  # nothing secret left in it


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("server_url = ", "TOML"),
        ('server_url = "https://x"\n', "server_public_key"),
        (
            f'server_url = "ftp://x"\nserver_public_key = "{b64e(bytes(32))}"\n'
            'group = "g"\ndata_dir = "/d"\n',
            "https",
        ),
        (
            f'server_url = "https://x"\nserver_public_key = "{b64e(bytes(31))}"\n'
            'group = "g"\ndata_dir = "/d"\n',
            "32-byte",
        ),
        (
            f'server_url = "https://x"\nserver_public_key = "{b64e(bytes(32))}"\n'
            'group = "g"\ndata_dir = "/d"\nalways_ask = true\n',
            "always_ask",
        ),
        (
            f'server_url = "https://x"\nserver_public_key = "{b64e(bytes(32))}"\n'
            'group = "g"\ndata_dir = "/d"\nconsent_timeout = 1\n',
            "consent_timeout",
        ),
    ],
)
def test_a_malformed_config_says_what_is_wrong(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=problem):
        load_config(path)


def test_base64url_helpers_agree_with_the_standard_library() -> None:
    raw = bytes(range(32))
    assert b64d(b64e(raw)) == raw
    assert b64e(raw) == base64.urlsafe_b64encode(raw).decode().rstrip("=")
