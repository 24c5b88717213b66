"""The one-file installer's agent role in-process: a stand-in executable with a package
appended (control.agent_file), installed into a folder as the root with system commands
recorded (as tests/agent/test_install.py). The real build runs in
tests/e2e/test_onefile_agent_story.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.agent import onefile
from fjernhjelp.agent.config import load_config
from fjernhjelp.agent.install import Layout
from fjernhjelp.control import agent_file
from fjernhjelp.control.agent_file import AgentFileRefused, attach, read_agent_file
from fjernhjelp.control.package import fingerprint
from tests.agent.test_install import PACKAGE, SERVER_KEY, RecordingSystem, tree

EXECUTABLE = b"\x7fELF stand-in for the one-file build\n" * 1000
FINGERPRINT = fingerprint(SERVER_KEY.public_key())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    (path / "etc").mkdir(parents=True)
    (path / "opt").mkdir()
    return path


def _file(tmp_path: Path, data: bytes, name: str = "fjernhjelp-agent-tannlege-sor.run") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(0o755)
    return path


def _run(argv: list[str], program: Path, root: Path, answer: str = "") -> tuple[int, list[str]]:
    system = RecordingSystem()
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return answer

    code = onefile.main(
        ["--language", "en", *argv], executable=program, layout=Layout(root), ops=system, ask=ask
    )
    return code, asked


def test_install_confirmed_copies_the_program_without_its_package_and_uninstall_leaves_nothing(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = _file(tmp_path, attach(EXECUTABLE, PACKAGE, SERVER_KEY))
    assert onefile.wanted([], program) and onefile.wanted(["install"], None)
    assert not onefile.wanted(["482193775"], _file(tmp_path, EXECUTABLE, "bare"))
    before = tree(root)
    code, asked = _run(["install"], program, root, answer="y")
    out = capsys.readouterr().out
    assert code == 0, out
    assert asked == ["Install and trust this server? [y/N] "]
    assert f"Server key:    {FINGERPRINT}" in out and "Tannlege Sør" in out
    layout = Layout(root)
    # The unit runs a copy of the build less the package: the token stays in the config.
    assert layout.program_file.read_bytes() == EXECUTABLE
    assert layout.program_file.stat().st_mode & 0o777 == 0o755
    assert (
        "ExecStart=/opt/fjernhjelp-agent/fjernhjelp-agent run "
        "--config /etc/fjernhjelp-agent/agent.toml" in layout.unit_file.read_text()
    )
    assert load_config(layout.config_file).enrolment_token == "tok-install"
    assert layout.config_dir.stat().st_mode & 0o777 == 0o700
    assert layout.data_dir.stat().st_mode & 0o777 == 0o700
    assert "opt/fjernhjelp-agent" in json.loads(layout.manifest.read_text())["folders"]

    code, asked = _run(["uninstall"], program, root, answer="y")
    assert code == 0 and asked
    assert tree(root) == before


def test_a_declined_confirmation_or_another_fingerprint_installs_nothing(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = _file(tmp_path, attach(EXECUTABLE, PACKAGE, SERVER_KEY))
    before = tree(root)
    assert _run(["install"], program, root, answer="n")[0] == 1
    assert "Nothing was installed" in capsys.readouterr().err
    other = fingerprint(Ed25519PrivateKey.generate().public_key())
    code, asked = _run(["install", "--expect-fingerprint", other], program, root)
    assert code == 2 and not asked
    assert "nothing was installed" in capsys.readouterr().err
    assert tree(root) == before
    code, asked = _run(["install", "--expect-fingerprint", FINGERPRINT], program, root)
    assert code == 0 and not asked
    assert "matches the expected fingerprint" in capsys.readouterr().out


def _altered_package(data: bytearray) -> bytearray:
    # The group's name inside the signed payload, changed (the payload is base64url).
    envelope = json.loads(PACKAGE)
    start = data.index(envelope["payload"].encode())
    data[start + 40] ^= 0x01
    return data


CASES = {
    "package_altered": (lambda d: _altered_package(d), "altered"),
    "executable_altered": (lambda d: d.__setitem__(100, d[100] ^ 1) or d, "altered"),
    "no_package": (lambda d: d[: len(EXECUTABLE)], "missing"),
    "truncated": (lambda d: d[:-10], "missing"),
    "cut_inside": (lambda d: d[: len(EXECUTABLE) + 50] + d[-agent_file.TRAILER.size :], "altered"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_whose_package_is_altered_missing_or_cut_refuses_and_installs_nothing(
    case: str, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alter, reason = CASES[case]
    data = alter(bytearray(attach(EXECUTABLE, PACKAGE, SERVER_KEY)))
    program = _file(tmp_path, bytes(data))
    with pytest.raises(AgentFileRefused) as refused:
        read_agent_file(program)
    assert refused.value.reason == reason
    before = tree(root)
    code, asked = _run(["install", "--yes"], program, root)
    err = capsys.readouterr().err
    assert code == 2 and not asked
    assert "This file cannot be used, nothing was installed" in err
    assert refused.value.message in err
    assert tree(root) == before


def test_a_package_moved_onto_another_build_is_refused(tmp_path: Path) -> None:
    downloaded = attach(EXECUTABLE, PACKAGE, SERVER_KEY)
    other_build = EXECUTABLE.replace(b"stand-in", b"old-bild")
    moved = other_build + downloaded[len(EXECUTABLE) :]
    with pytest.raises(AgentFileRefused, match="does not match this program file"):
        read_agent_file(_file(tmp_path, moved))
