"""The client's entry point: the code, the pinned server and key, the join."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from fjernhjelp.cli import app
from fjernhjelp.support import client
from fjernhjelp.support.handover import Handover
from fjernhjelp.support.platform import LinuxPlatform
from fjernhjelp.support.session import Outcome
from fjernhjelp.support.stamp import StampRefused, read_stamp, stamp
from tests.asyncrun import in_thread


@pytest.mark.parametrize(
    ("typed", "code"),
    [("482193775", "482193775"), ("482 193 775", "482193775"), ("482-193-775\n", "482193775")],
)
def test_codes_as_people_type_them(typed: str, code: str) -> None:
    assert client.parse_code(typed) == code
    assert client.grouped(code) == "482 193 775"


@pytest.mark.parametrize("typed", ["48219377", "48219377a", "٤٨٢١٩٣٧٧٥", "", "1" * 33])
def test_what_is_not_a_code(typed: str) -> None:
    with pytest.raises(ValueError):
        client.parse_code(typed)


@pytest.fixture
def platform(tmp_path: Path) -> LinuxPlatform:
    (tmp_path / "tmp").mkdir()
    return LinuxPlatform(tmp_path / "tmp")


@pytest.fixture
def stamped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """As if this were the one-file build, stamped for hjelp.example.no."""
    path = tmp_path / "client"
    path.write_bytes(
        stamp(b"generic build", "https://hjelp.example.no", Ed25519PrivateKey.generate())
    )
    found = read_stamp(path)
    monkeypatch.setattr(client, "own_stamp", lambda: found)
    return found.fingerprint


@pytest.fixture(autouse=True)
def no_join(monkeypatch: pytest.MonkeyPatch) -> list[client.Target]:
    """The server answers every code with a refusal (the join itself is tested live)."""
    asked: list[client.Target] = []

    def refuse(target: client.Target) -> client.Joined:
        asked.append(target)
        raise client.JoinRefused("code_refused")

    monkeypatch.setattr(client, "join", refuse)
    return asked


KEY = "A" * 43  # base64url of 32 zero bytes


def test_the_stamped_client_names_its_server_and_key_and_enters_the_code(
    stamped: str,
    platform: LinuxPlatform,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    no_join: list[client.Target],
) -> None:
    code = in_thread(client.main, ["482", "193", "775", "--language", "en"], platform=platform)
    out, err = capsys.readouterr()
    assert code == client.EXIT_REFUSED
    assert out.splitlines() == [
        "Service: https://hjelp.example.no",
        f"The service's key (pinned): {stamped}",
        "Code: 482 193 775",
    ]
    assert "The code is wrong, already used or expired" in err
    [target] = no_join
    assert target.code == "482193775" and target.server_url == "https://hjelp.example.no"
    # The private folder was made and is gone again.
    assert platform.private_dir().removed
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_stamped_client_goes_nowhere_else(
    stamped: str, platform: LinuxPlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["482193775", "--server", "https://evil.example", "--language", "en"]
    assert in_thread(client.main, argv, platform=platform) == client.EXIT_UNTRUSTED
    assert "made for https://hjelp.example.no" in capsys.readouterr().err
    # The same server, spelt with a trailing slash, is the same server.
    argv = ["482193775", "--server", "https://hjelp.example.no/", "--language", "en"]
    assert in_thread(client.main, argv, platform=platform) == client.EXIT_REFUSED


def test_a_damaged_client_file_does_not_run(
    monkeypatch: pytest.MonkeyPatch, platform: LinuxPlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused() -> None:
        raise StampRefused("altered", "the stamp's signature does not match")

    monkeypatch.setattr(client, "own_stamp", refused)
    assert in_thread(client.main, ["482193775", "--language", "en"], platform=platform) == 1
    assert "cannot be used" in capsys.readouterr().err
    assert platform.private_dir().removed is False  # never made


def test_from_the_package_the_server_and_its_key_must_be_given(
    platform: LinuxPlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    assert in_thread(client.main, ["482193775", "--language", "en"], platform=platform) == 2
    assert "--server" in capsys.readouterr().err
    assert (
        in_thread(client.main, ["482193775", "--server", "http://h.example"], platform=platform)
        == 2
    )
    argv = ["482193775", "--server", "https://h.example/", "--language", "en"]
    assert in_thread(client.main, argv, platform=platform) == 2
    assert "--server-key" in capsys.readouterr().err
    assert in_thread(client.main, [*argv, "--server-key", "short"], platform=platform) == 2
    assert "32 bytes" in capsys.readouterr().err
    assert (
        in_thread(client.main, [*argv, "--server-key", KEY], platform=platform)
        == client.EXIT_REFUSED
    )


def test_a_bad_code_stops_before_anything_is_made(
    platform: LinuxPlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        in_thread(client.main, ["12345", "--server", "https://h.example"], platform=platform) == 2
    )
    assert "minst 9" in capsys.readouterr().err


def test_fjernhjelp_support_runs_the_same_client() -> None:
    result = in_thread(
        CliRunner().invoke,
        app,
        [
            "support",
            "482",
            "193",
            "775",
            "--server",
            "https://h.example",
            "--server-key",
            KEY,
            "--language",
            "en",
        ],
    )
    assert result.exit_code == client.EXIT_REFUSED, result.output
    assert "Code: 482 193 775" in result.output


# Keys whose base64url spelling begins with "-": 0xf8 and up in the first byte.
DASH_KEYS = [
    "-" + "A" * 42,
    "--" + "A" * 41,
    "-" + "w" * 42,
    "-" + "_" * 41 + "8",
]


@pytest.mark.parametrize("key", DASH_KEYS)
def test_a_key_that_begins_with_a_dash_is_taken_as_the_key(
    key: str,
    platform: LinuxPlatform,
    capsys: pytest.CaptureFixture[str],
    no_join: list[client.Target],
) -> None:
    from fjernhjelp.control.package import b64d

    assert len(b64d(key)) == 32
    argv = ["482193775", "--server", "https://h.example", "--server-key", key, "--language", "en"]
    assert in_thread(client.main, argv, platform=platform) == client.EXIT_REFUSED
    assert no_join[-1].server_key == b64d(key)
    # The old spelling in one word goes on working.
    argv = ["482193775", "--server", "https://h.example", f"--server-key={key}"]
    assert in_thread(client.main, argv, platform=platform) == client.EXIT_REFUSED
    assert no_join[-1].server_key == b64d(key)


@pytest.mark.parametrize("key", DASH_KEYS)
def test_fjernhjelp_support_takes_a_key_that_begins_with_a_dash(
    key: str, no_join: list[client.Target]
) -> None:
    from fjernhjelp.control.package import b64d

    result = in_thread(
        CliRunner().invoke,
        app,
        ["support", "482193775", "--server", "https://h.example", "--server-key", key],
    )
    assert result.exit_code == client.EXIT_REFUSED, result.output
    assert no_join[-1].server_key == b64d(key)


def test_a_missing_key_after_the_option_is_still_a_usage_error(
    platform: LinuxPlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["482193775", "--server", "https://h.example", "--server-key"]
    with pytest.raises(SystemExit) as exited:
        in_thread(client.main, argv, platform=platform)
    assert exited.value.code == 2


def test_a_downloaded_client_joins_the_session_its_page_joined_without_a_code(
    stamped: str,
    platform: LinuxPlatform,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_join: list[client.Target],
) -> None:
    """The start page spent the code; the download carries the session (support.handover)."""
    session_id = uuid.uuid4()
    handover = Handover(session_id, "end-user-token", "Kari Tekniker", "Journal AS", "Legekontoret")
    monkeypatch.setattr(client, "own_handover", lambda: handover)
    opened: list[dict[str, object]] = []

    class Session:
        def __init__(self, **settings: object) -> None:
            opened.append(settings)

        async def run(self) -> Outcome:
            return Outcome("ended")

    monkeypatch.setattr(client, "ClientSession", Session)
    # In a thread: main() runs its own event loop, and this worker's thread may hold one
    # already (Playwright's sync API, from a browser test that ran here before).
    with ThreadPoolExecutor(1) as thread:
        ran = thread.submit(client.main, ["--language", "en"], platform=platform)
        assert ran.result(timeout=60) == client.EXIT_ENDED
    assert no_join == []  # the spent code is not entered again
    [settings] = opened
    assert (settings["session_id"], settings["token"]) == (session_id, "end-user-token")
    out = capsys.readouterr().out
    assert "Kari Tekniker" in out and "Code:" not in out
    # Given a code after all, the client enters it as before.
    assert (
        in_thread(client.main, ["482193775", "--language", "en"], platform=platform)
        == client.EXIT_REFUSED
    )
    assert [t.code for t in no_join] == ["482193775"]


def test_without_a_code_or_a_session_to_join_the_client_says_so(
    stamped: str, platform: LinuxPlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    assert in_thread(client.main, ["--language", "en"], platform=platform) == client.EXIT_USAGE
