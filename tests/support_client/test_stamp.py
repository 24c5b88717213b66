"""The server's stamp on the one-file client: every byte accounted for, any change refused."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fjernhjelp.control.package import fingerprint
from fjernhjelp.support import handover
from fjernhjelp.support.handover import Handover, HandoverRefused, handover_block, read_handover
from fjernhjelp.support.stamp import (
    MAGIC,
    SIGNATURE_SIZE,
    TRAILER,
    StampRefused,
    read_stamp,
    stamp,
)

URL = "https://hjelp.example.no"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_stamp_reads_back_and_names_the_key(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    binary = b"\x7fELF stand-in " * 1000
    found = read_stamp(write(tmp_path / "client", stamp(binary, URL + "/", key)))
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert found.server_url == URL
    assert found.server_public_key == public
    assert found.fingerprint == fingerprint(public)
    assert found.executable_sha256 == hashlib.sha256(binary).digest()


def test_the_layout_is_the_documented_one(key: Ed25519PrivateKey) -> None:
    binary = b"B" * 77
    data = stamp(binary, URL, key)
    size, payload_size, version, zero, magic = TRAILER.unpack(data[-TRAILER.size :])
    assert (size, version, zero, magic) == (77, 1, 0, MAGIC)
    assert data[:77] == binary
    assert len(data) == 77 + payload_size + SIGNATURE_SIZE + TRAILER.size
    assert data[77 : 77 + payload_size].startswith(b'{"server_url":"https://hjelp.example.no"')


def test_a_stamped_elf_file_still_runs(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # The loader ignores bytes after the file's sections: a real executable, stamped.
    true = shutil.which("true")
    assert true is not None
    client = write(tmp_path / "true", stamp(Path(true).read_bytes(), URL, key))
    client.chmod(0o755)
    assert subprocess.run([str(client)], check=False).returncode == 0
    assert read_stamp(client).server_url == URL


def test_a_file_without_a_stamp_is_refused(tmp_path: Path) -> None:
    for data in (b"", b"short", b"\x7fELF" * 100):
        with pytest.raises(StampRefused) as caught:
            read_stamp(write(tmp_path / "plain", data))
        assert caught.value.reason == "missing"


@pytest.mark.parametrize("where", ["executable", "payload", "signature"])
def test_any_changed_byte_is_refused(tmp_path: Path, key: Ed25519PrivateKey, where: str) -> None:
    binary = b"generic build" * 50
    data = bytearray(stamp(binary, URL, key))
    payload_size = TRAILER.unpack(data[-TRAILER.size :])[1]
    offset = {
        "executable": 10,
        "payload": len(binary) + payload_size - 3,  # inside the base64 key
        "signature": len(binary) + payload_size + 5,
    }[where]
    data[offset] ^= 0x01
    with pytest.raises(StampRefused) as caught:
        read_stamp(write(tmp_path / "client", bytes(data)))
    assert caught.value.reason == "altered"


def test_bytes_added_or_cut_are_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    data = stamp(b"generic build" * 50, URL, key)
    for changed in (b"x" + data, data[1:]):
        with pytest.raises(StampRefused) as caught:
            read_stamp(write(tmp_path / "client", changed))
        assert caught.value.reason == "altered"
    # After the trailer nothing may follow: the magic is then no longer last.
    with pytest.raises(StampRefused):
        read_stamp(write(tmp_path / "client", data + b"\n"))


def test_a_block_moved_to_another_build_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    old, new = b"old build" * 40, b"new build" * 40
    block = stamp(new, URL, key)[len(new) :]
    with pytest.raises(StampRefused) as caught:
        read_stamp(write(tmp_path / "client", old + block))
    assert caught.value.reason == "altered"


def test_a_stamp_signed_by_another_key_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # Swap the carried key for another one, keeping the signature: it no longer verifies.
    binary = b"generic build" * 50
    data = stamp(binary, URL, key)
    other = stamp(binary, URL, Ed25519PrivateKey.generate())
    payload_size = TRAILER.unpack(data[-TRAILER.size :])[1]
    forged = other[: len(binary) + payload_size] + data[len(binary) + payload_size :]
    with pytest.raises(StampRefused) as caught:
        read_stamp(write(tmp_path / "client", forged))
    assert caught.value.reason == "altered"


def test_stamping_twice_and_plain_http_are_refused(key: Ed25519PrivateKey) -> None:
    once = stamp(b"generic", URL, key)
    with pytest.raises(StampRefused) as caught:
        stamp(once, URL, key)
    assert caught.value.reason == "stamped"
    with pytest.raises(ValueError):
        stamp(b"generic", "http://hjelp.example.no", key)
    # Plain http is allowed to a loopback address only (tests and development).
    assert stamp(b"generic", "http://127.0.0.1:8000", key).endswith(MAGIC)


def test_another_version_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    data = bytearray(stamp(b"generic", URL, key))
    data[-TRAILER.size + 12 : -TRAILER.size + 14] = (2).to_bytes(2, "big")
    with pytest.raises(StampRefused) as caught:
        read_stamp(write(tmp_path / "client", bytes(data)))
    assert caught.value.reason == "version"


def test_a_deeply_nested_payload_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # Found by fuzzing: the payload is read before the signature is checked, and JSON
    # nested past the recursion limit escaped as RecursionError instead of a refusal.
    binary = b"generic build"
    payload = b"[" * 4096
    trailer = TRAILER.pack(len(binary), len(payload), 1, 0, MAGIC)
    data = binary + payload + bytes(SIGNATURE_SIZE) + trailer
    with pytest.raises(StampRefused) as caught:
        read_stamp(write(tmp_path / "client", data))
    assert caught.value.reason == "altered"


def test_a_download_carries_its_session_after_the_stamp(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    """support.handover: the block after the stamp; the stamp still reads, and a block cut
    or garbled is refused, not ignored."""
    stamped = stamp(b"\x7fELF stand-in " * 100, URL, key)
    session = Handover(uuid.uuid4(), "token", "Kari", "Journal AS", "Legekontoret")
    path = write(tmp_path / "client", stamped + handover_block(session))
    assert read_stamp(path).server_url == URL
    with path.open("rb") as fh:
        assert read_handover(fh) == (len(stamped), session)
    with write(tmp_path / "plain", stamped).open("rb") as fh:
        assert read_handover(fh) == (len(stamped), None)
    block = handover_block(session)
    garbled = stamped + block[:5] + b"X" + block[6:]
    with pytest.raises(StampRefused):
        read_stamp(write(tmp_path / "garbled", garbled))
    with write(tmp_path / "garbled", garbled).open("rb") as fh, pytest.raises(HandoverRefused):
        read_handover(fh)


def test_a_deeply_nested_session_block_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Found by the `handover` fuzz target: a block of `[` x 2000 (it fits the 2048 bytes a
    block may have) raised RecursionError, which read_stamp does not turn into a refusal:
    the client crashed at start instead of saying the file was altered."""
    stamped = stamp(b"\x7fELF stand-in " * 100, URL, key)
    nested = b"[" * 2000
    data = stamped + nested + handover.TRAILER.pack(len(nested), handover.MAGIC)
    with write(tmp_path / "nested", data).open("rb") as fh, pytest.raises(HandoverRefused):
        read_handover(fh)
    with pytest.raises(StampRefused) as caught:
        read_stamp(write(tmp_path / "nested", data))
    assert caught.value.reason == "altered"


def test_every_way_the_shared_layout_fails_has_words_in_both_kinds() -> None:
    """control.appended reads the stamp and the one-file agent's package alike; each kind
    words its faults for its own users, and none may be left without words."""
    from fjernhjelp.control import agent_file, appended
    from fjernhjelp.support import stamp as stamps

    for table in (stamps._UNREADABLE, agent_file._UNREADABLE):
        assert set(table) == set(appended.Fault)
        assert table[appended.Fault.VERSION][1].format(version=2).endswith("version 2 is not 1")
