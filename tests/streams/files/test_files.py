"""File transfer over an in-memory channel: large files, resume, corruption, confinement."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fjernhjelp.streams.files import wire
from fjernhjelp.streams.files.place import partial_prefix
from fjernhjelp.streams.files.roots import FilePolicy
from fjernhjelp.streams.files.service import FileRefusal, FileTransferRecord, serve_files
from fjernhjelp.streams.files.technician import get_file, put_file
from fjernhjelp.streams.files.wire import (
    CHUNK,
    DATA,
    END,
    ChecksumMismatch,
    FileExists,
    FileProtocolError,
    TransferInterrupted,
    TransferRefused,
)
from fjernhjelp.tunnel.channel import ChannelClosed, MemoryChannel, memory_pair
from tests.asyncrun import run_async

WAIT = 120.0


def sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def partials(folder: Path, digest: str) -> list[Path]:
    return sorted(folder.glob(partial_prefix(digest) + "*.part"))


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 1 << 20))
            fh.write(block)
            remaining -= len(block)
    return path


@dataclass
class Machine:
    """The agent's side: a root to serve, a folder outside it, what it reported."""

    root: Path
    outside: Path
    records: list[FileTransferRecord] = field(default_factory=list)
    refusals: list[FileRefusal] = field(default_factory=list)

    def policy(self, **kw: Any) -> FilePolicy:
        return FilePolicy.create([self.root], **kw)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    root = tmp_path / "agent" / "home"
    outside = tmp_path / "agent" / "secret"
    root.mkdir(parents=True)
    outside.mkdir()
    (outside / "shadow").write_text("the secret\n")
    return Machine(root, outside)


@pytest.fixture
def local(tmp_path: Path) -> Path:
    path = tmp_path / "technician"
    path.mkdir()
    return path


class Cut(MemoryChannel):
    """A channel end that drops the tunnel after sending ``after`` DATA messages."""

    def __init__(self, inner: MemoryChannel, after: int) -> None:
        super().__init__(inner._inbox, inner._peer_inbox)
        self.after = after

    async def send(self, message: bytes) -> None:
        if message[:1] == bytes([DATA]):
            if self.after == 0:
                await self.close("tunnel dropped")
                raise ChannelClosed("tunnel dropped")
            self.after -= 1
        await super().send(message)


class Flip(MemoryChannel):
    """A channel end that flips one bit in the ``nth`` DATA message it sends."""

    def __init__(self, inner: MemoryChannel, nth: int) -> None:
        super().__init__(inner._inbox, inner._peer_inbox)
        self.nth = nth

    async def send(self, message: bytes) -> None:
        if message[:1] == bytes([DATA]):
            if self.nth == 0:
                message = message[:10] + bytes([message[10] ^ 0x01]) + message[11:]
            self.nth -= 1
        await super().send(message)


Wrap = Callable[[MemoryChannel], MemoryChannel]


def run(
    machine: Machine,
    client: Callable[[MemoryChannel], Awaitable[Any]],
    *,
    policy: FilePolicy | None = None,
    wrap_agent: Wrap | None = None,
    wrap_client: Wrap | None = None,
) -> Any:
    async def main() -> Any:
        agent_end, tech_end = memory_pair()
        if wrap_agent:
            agent_end = wrap_agent(agent_end)
        if wrap_client:
            tech_end = wrap_client(tech_end)
        service = asyncio.create_task(
            serve_files(
                agent_end,
                policy or machine.policy(),
                on_transfer=machine.records.append,
                on_refusal=machine.refusals.append,
            )
        )
        try:
            return await asyncio.wait_for(client(tech_end), WAIT)
        finally:
            await tech_end.close()
            await asyncio.wait_for(service, WAIT)

    return run_async(main())


def test_a_100_mb_file_goes_both_ways_checked_and_audited(machine: Machine, local: Path) -> None:
    size = 100 * 1024 * 1024 + 12345  # not a multiple of the chunk size
    source = random_file(local / "big.bin", size)
    expected = sha(source)
    seen: list[tuple[int, int]] = []

    async def client(channel: MemoryChannel) -> tuple[Any, Any]:
        up = await put_file(channel, source, str(machine.root / "big.bin"))
        down = await get_file(
            channel, "big.bin", local / "back.bin", progress=lambda d, t: seen.append((d, t))
        )
        return up, down

    up, down = run(machine, client)
    assert sha(machine.root / "big.bin") == expected == sha(local / "back.bin")
    assert up.sha256 == down.sha256 == expected and up.size == down.size == size
    assert [r.direction for r in machine.records] == ["put", "get"]
    for record in machine.records:
        assert (record.name, record.size, record.sha256) == ("big.bin", size, expected)
        assert record.path == str(machine.root / "big.bin") and record.resumed_from == 0
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))
    assert not list(machine.root.glob(".fjernhjelp-*")) and not list(local.glob(".fjernhjelp-*"))
    assert (local / "back.bin").stat().st_mode & 0o777 == 0o600
    assert machine.refusals == []


def test_an_interrupted_get_resumes_from_the_kept_part(machine: Machine, local: Path) -> None:
    size = 3 * 1024 * 1024 + 7
    source = random_file(machine.root / "report.pdf", size)
    target = local / "report.pdf"

    async def first(channel: MemoryChannel) -> None:
        await get_file(channel, "report.pdf", target)

    with pytest.raises(TransferInterrupted) as cut:
        run(machine, first, wrap_agent=lambda c: Cut(c, after=20))
    assert cut.value.kept == 20 * CHUNK
    [kept] = partials(local, sha(source))
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.stat().st_size == 20 * CHUNK and not target.exists()
    assert machine.records == []

    progress: list[tuple[int, int]] = []

    async def second(channel: MemoryChannel) -> Any:
        return await get_file(
            channel, "report.pdf", target, progress=lambda d, t: progress.append((d, t))
        )

    result = run(machine, second)
    assert result.resumed_from == 20 * CHUNK and progress[0] == (20 * CHUNK, size)
    assert sha(target) == sha(source) and not kept.exists()
    assert machine.records[-1].resumed_from == 20 * CHUNK


def test_an_interrupted_put_resumes_on_the_agent(machine: Machine, local: Path) -> None:
    source = random_file(local / "setup.msi", 2 * 1024 * 1024 + 1)

    async def upload(channel: MemoryChannel) -> Any:
        return await put_file(channel, source, "setup.msi")

    with pytest.raises(TransferInterrupted):
        run(machine, upload, wrap_client=lambda c: Cut(c, after=9))
    [kept] = partials(machine.root, sha(source))
    assert kept.stat().st_size == 9 * CHUNK
    assert not (machine.root / "setup.msi").exists() and machine.records == []

    result = run(machine, upload)
    assert result.resumed_from == 9 * CHUNK
    assert sha(machine.root / "setup.msi") == sha(source)
    assert machine.records[-1].resumed_from == 9 * CHUNK
    assert not list(machine.root.glob(".fjernhjelp-*"))


def test_corruption_on_the_way_down_is_detected_and_nothing_is_kept(
    machine: Machine, local: Path
) -> None:
    random_file(machine.root / "journal.db", 1024 * 1024)

    async def client(channel: MemoryChannel) -> None:
        await get_file(channel, "journal.db", local / "journal.db")

    with pytest.raises(ChecksumMismatch):
        run(machine, client, wrap_agent=lambda c: Flip(c, nth=5))
    assert list(local.iterdir()) == []
    assert machine.records == []
    assert [r.code for r in machine.refusals] == ["checksum_mismatch"]


def test_corruption_on_the_way_up_is_detected_and_nothing_is_kept(
    machine: Machine, local: Path
) -> None:
    source = random_file(local / "driver.deb", 1024 * 1024)

    async def client(channel: MemoryChannel) -> None:
        await put_file(channel, source, "driver.deb")

    with pytest.raises(ChecksumMismatch):
        run(machine, client, wrap_client=lambda c: Flip(c, nth=3))
    assert list(machine.root.iterdir()) == []
    assert machine.records == [] and [r.code for r in machine.refusals] == ["checksum_mismatch"]


def test_a_tampered_partial_file_fails_the_check_and_a_retry_starts_afresh(
    machine: Machine, local: Path
) -> None:
    source = random_file(machine.root / "data.bin", 1024 * 1024)
    partial = local / f"{partial_prefix(sha(source))}{'0' * 16}.part"
    partial.write_bytes(b"not what the agent has" * 100)

    async def client(channel: MemoryChannel) -> Any:
        return await get_file(channel, "data.bin", local / "data.bin")

    with pytest.raises(ChecksumMismatch):
        run(machine, client)
    assert not partial.exists()
    assert run(machine, client).resumed_from == 0
    assert sha(local / "data.bin") == sha(source)


def test_a_put_replaces_an_existing_file_only_when_told_keeping_its_mode(
    machine: Machine, local: Path
) -> None:
    existing = machine.root / "hosts.txt"
    existing.write_text("old\n")
    existing.chmod(0o640)
    source = local / "hosts.txt"
    source.write_text("new\n")

    async def asked(channel: MemoryChannel) -> Any:
        return await put_file(channel, source, "hosts.txt")

    with pytest.raises(FileExists) as exists:
        run(machine, asked)
    assert exists.value.path == str(existing) and exists.value.code == "exists"
    assert existing.read_text() == "old\n" and machine.records == []
    assert machine.refusals[-1].code == "exists"
    assert not list(machine.root.glob(".fjernhjelp-*"))  # refused before any data moved

    async def confirmed(channel: MemoryChannel) -> Any:
        return await put_file(channel, source, "hosts.txt", overwrite=True)

    assert run(machine, confirmed).path == str(existing)
    assert existing.read_text() == "new\n" and existing.stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files away")
def test_a_root_agent_gives_an_uploaded_file_to_the_folders_owner(
    machine: Machine, local: Path
) -> None:
    folder = machine.root / "anna"
    folder.mkdir()
    os.chown(folder, 65534, 65534)
    source = local / "note.txt"
    source.write_text("hello\n")

    async def client(channel: MemoryChannel) -> Any:
        return await put_file(channel, source, "anna/note.txt")

    run(machine, client)
    st = (folder / "note.txt").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o644)


def test_an_empty_file_transfers(machine: Machine, local: Path) -> None:
    (machine.root / "empty").write_bytes(b"")

    async def client(channel: MemoryChannel) -> Any:
        return await get_file(channel, "empty", local / "empty")

    assert run(machine, client).size == 0 and (local / "empty").read_bytes() == b""


# --- confinement, from the attacker's side -----------------------------------------------


def _attack_layout(machine: Machine) -> None:
    root, outside = machine.root, machine.outside
    (root / "docs").mkdir()
    (root / "docs" / "ok.txt").write_text("fine\n")
    (root / "link-out").symlink_to(outside / "shadow")
    (root / "dir-out").symlink_to(outside)
    (root / "link-in").symlink_to(root / "docs" / "ok.txt")
    os.mkfifo(root / "pipe")
    os.link(outside / "shadow", root / "hardlink")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock"))
    server.close()


GET_ATTACKS = {
    "../secret/shadow": "traversal",
    "docs/../../secret/shadow": "traversal",
    "SECRET_ABS": "outside_roots",
    "/etc/passwd": "outside_roots",
    "ROOT_PREFIX_TWIN": "outside_roots",
    "link-out": "symlink",
    "dir-out/shadow": "symlink",
    "link-in": "symlink",
    "pipe": "not_a_file",
    "sock": "not_a_file",
    "docs": "not_a_file",
    "hardlink": "hard_link",
    "docs/ok.txt\x00.jpg": "bad_path",
    "": "bad_path",
    "missing.txt": "not_found",
    "docs/ok.txt/more": "not_a_directory",
    "ROOT_ITSELF": "not_a_file",
}


@pytest.mark.parametrize("key", list(GET_ATTACKS))
def test_get_outside_what_the_session_allows_is_refused(
    machine: Machine, local: Path, key: str
) -> None:
    _attack_layout(machine)
    twin = Path(str(machine.root) + "-twin")  # shares the root's name as a string prefix
    twin.mkdir()
    (twin / "x").write_text("twin")
    path = {
        "SECRET_ABS": str(machine.outside / "shadow"),
        "ROOT_PREFIX_TWIN": str(twin / "x"),
        "ROOT_ITSELF": str(machine.root),
    }.get(key, key)

    async def client(channel: MemoryChannel) -> None:
        await get_file(channel, path, local / "loot")

    with pytest.raises(TransferRefused) as refused:
        run(machine, client)
    assert refused.value.code == GET_ATTACKS[key]
    assert list(local.iterdir()) == []
    assert machine.records == [] and machine.refusals[0].code == GET_ATTACKS[key]
    assert machine.refusals[0].op == "get"


PUT_ATTACKS = {
    "../secret/planted": "traversal",
    "dir-out/planted": "symlink",
    "link-out": "symlink",
    "pipe": "not_a_file",
    "docs/ok.txt": "exists",  # not overwritten without being told
    "/tmp/planted": "outside_roots",
    "nowhere/planted": "not_found",
}


@pytest.mark.parametrize("path", list(PUT_ATTACKS))
def test_put_outside_what_the_session_allows_is_refused_and_changes_nothing(
    machine: Machine, local: Path, path: str
) -> None:
    _attack_layout(machine)
    source = local / "payload"
    source.write_text("evil\n")

    async def client(channel: MemoryChannel) -> None:
        await put_file(channel, source, path)

    with pytest.raises(TransferRefused) as refused:
        run(machine, client)
    assert refused.value.code == PUT_ATTACKS[path]
    assert (machine.outside / "shadow").read_text() == "the secret\n"
    assert (machine.root / "docs" / "ok.txt").read_text() == "fine\n"
    assert sorted(p.name for p in machine.outside.iterdir()) == ["shadow"]
    assert not list(machine.root.glob(".fjernhjelp-*"))
    assert machine.refusals[0].code == PUT_ATTACKS[path] and machine.refusals[0].op == "put"


def test_a_planted_symlink_in_place_of_the_partial_file_is_not_followed(
    machine: Machine, local: Path
) -> None:
    source = local / "update.sh"
    source.write_text("echo hi\n")
    (machine.root / f"{partial_prefix(sha(source))}{'0' * 16}.part").symlink_to(
        machine.outside / "shadow"
    )

    async def client(channel: MemoryChannel) -> Any:
        return await put_file(channel, source, "update.sh")

    run(machine, client)
    assert (machine.outside / "shadow").read_text() == "the secret\n"
    assert (machine.root / "update.sh").read_text() == "echo hi\n"


@pytest.mark.parametrize(
    ("policy_kw", "code"),
    [({"allow_put": False}, "not_allowed"), ({"max_size": 3}, "too_large")],
)
def test_policy_limits_are_enforced(
    machine: Machine, local: Path, policy_kw: dict[str, Any], code: str
) -> None:
    source = local / "f"
    source.write_text("four")

    async def client(channel: MemoryChannel) -> None:
        await put_file(channel, source, "f")

    with pytest.raises(TransferRefused) as refused:
        run(machine, client, policy=machine.policy(**policy_kw))
    assert refused.value.code == code and not (machine.root / "f").exists()


def test_no_roots_means_no_file_transfer(machine: Machine, local: Path) -> None:
    (machine.root / "f").write_text("x")

    async def client(channel: MemoryChannel) -> None:
        await get_file(channel, str(machine.root / "f"), local / "f")

    with pytest.raises(TransferRefused) as refused:
        run(machine, client, policy=FilePolicy.create([]))
    assert refused.value.code == "no_roots"


def test_a_root_that_does_not_exist_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an existing directory"):
        FilePolicy.create([tmp_path / "nope"])


# --- malformed messages ------------------------------------------------------------------

GOOD_SHA = "0" * 64


def msg(kind: int, body: Any = None, raw: bytes | None = None) -> bytes:
    if raw is not None:
        return bytes([kind]) + raw
    return bytes([kind]) + (b"" if body is None else json.dumps(body).encode())


def put_request(**kw: Any) -> bytes:
    body = {"op": "put", "path": "x.bin", "size": 10, "sha256": GOOD_SHA, **kw}
    return msg(wire.REQUEST, {k: v for k, v in body.items() if v is not ...})


TO_AGENT = {
    "empty": [b""],
    "unknown type": [b"\x55{}"],
    "data first": [msg(DATA, raw=b"abc")],
    "not json": [msg(wire.REQUEST, raw=b"{op")],
    "not utf-8": [msg(wire.REQUEST, raw=b"\xff\xfe")],
    "json list": [msg(wire.REQUEST, [1, 2])],
    "unknown op": [msg(wire.REQUEST, {"op": "delete", "path": "x"})],
    "oversized control": [msg(wire.REQUEST, {"op": "get", "path": "a" * 5000})],
    "put without sha": [put_request(sha256=...)],
    "put with upper sha": [put_request(sha256="A" * 64)],
    "put with short sha": [put_request(sha256="ab")],
    "put negative size": [put_request(size=-1)],
    "put bool size": [put_request(size=True)],
    "put extra field": [put_request(mode=0o4755)],
    "put overwrite not a bool": [put_request(overwrite="yes")],
    "put data too long": [put_request(), msg(DATA, raw=b"x" * 11)],
    "put oversized chunk": [put_request(size=CHUNK + 1), msg(DATA, raw=b"x" * (CHUNK + 1))],
    "put empty chunk": [put_request(), msg(DATA, raw=b"")],
    "put end with payload": [put_request(), msg(END, raw=b"x")],
    "put request mid-transfer": [put_request(), msg(wire.REQUEST, {"op": "get", "path": "y"})],
    # Found by fuzzing: nesting past the recursion limit escaped as RecursionError.
    "deeply nested": [msg(wire.REQUEST, raw=b"[" * 4096)],
}


@pytest.mark.parametrize("name", list(TO_AGENT))
def test_malformed_messages_to_the_agent_end_the_channel_and_leave_nothing(
    machine: Machine, name: str
) -> None:
    async def attacker(channel: MemoryChannel) -> list[bytes]:
        replies = []
        for message in TO_AGENT[name]:
            await channel.send(message)
        while True:
            try:
                replies.append(await channel.recv())
            except ChannelClosed:
                return replies

    replies = run(machine, attacker)
    last = replies[-1]
    assert last[0] == wire.ERROR and json.loads(last[1:])["code"] == "protocol"
    assert list(machine.root.iterdir()) == []  # no file, no partial
    assert machine.records == [] and machine.refusals[0].code == "protocol"


def test_a_resume_offset_past_the_end_is_refused(machine: Machine) -> None:
    (machine.root / "f").write_bytes(b"12345")

    async def attacker(channel: MemoryChannel) -> bytes:
        await channel.send(msg(wire.REQUEST, {"op": "get", "path": "f"}))
        assert (await channel.recv())[0] == wire.OFFER
        await channel.send(msg(wire.RESUME, {"offset": 6}))
        return await channel.recv()

    reply = run(machine, attacker)
    assert reply[0] == wire.ERROR and json.loads(reply[1:])["code"] == "protocol"


HOSTILE_AGENT = {
    "bad sha in offer": [msg(wire.OFFER, {"size": 4, "sha256": "zz"})],
    "huge offer": [msg(wire.OFFER, {"size": 1 << 41, "sha256": GOOD_SHA})],
    "more data than offered": [
        msg(wire.OFFER, {"size": 2, "sha256": GOOD_SHA}),
        msg(DATA, raw=b"abc"),
    ],
    "unexpected type": [msg(wire.DONE, {})],
    "deeply nested offer": [msg(wire.OFFER, raw=b"[" * 4096)],  # found by fuzzing
}


@pytest.mark.parametrize("name", list(HOSTILE_AGENT))
def test_the_client_refuses_a_hostile_agent(local: Path, name: str) -> None:
    async def main() -> None:
        agent_end, tech_end = memory_pair()
        client = asyncio.create_task(get_file(tech_end, "x", local / "x"))
        await agent_end.recv()
        for message in HOSTILE_AGENT[name]:
            await agent_end.send(message)
        await client

    with pytest.raises(FileProtocolError):
        run_async(main())
    assert not (local / "x").exists() and not list(local.glob(".fjernhjelp-*"))


def test_the_client_refuses_a_resume_offset_past_its_file(local: Path) -> None:
    source = local / "f"
    source.write_bytes(b"abc")

    async def main() -> None:
        agent_end, tech_end = memory_pair()
        client = asyncio.create_task(put_file(tech_end, source, "f"))
        await agent_end.recv()
        await agent_end.send(msg(wire.RESUME, {"offset": 4}))
        await client

    with pytest.raises(FileProtocolError):
        run_async(main())
