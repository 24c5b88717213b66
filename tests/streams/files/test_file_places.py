"""Where an upload lands and what may stand in its way: a folder means "in there, under
the file's own name"; an existing file is replaced only when the client says so; and a
local user who can write to the shared folder cannot make the agent follow a planted
link, write into a planted file, or put in place a file swapped in after the check."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fjernhjelp.streams.files import service, wire
from fjernhjelp.streams.files.place import partial_prefix
from fjernhjelp.streams.files.technician import put_file
from fjernhjelp.streams.files.wire import FileExists, TransferRefused
from fjernhjelp.tunnel.channel import ChannelClosed, MemoryChannel
from tests.streams.files.test_files import Machine, msg, partials, run, sha

EVIL = "planted by another user\n"


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    """A root to serve (the shared folder) and a folder outside it with a secret."""
    root, outside = tmp_path / "agent" / "shared", tmp_path / "agent" / "secret"
    root.mkdir(parents=True)
    outside.mkdir()
    (outside / "shadow").write_text("the secret\n")
    return Machine(root, outside)


@pytest.fixture
def local(tmp_path: Path) -> Path:
    (tmp_path / "technician").mkdir()
    return tmp_path / "technician"


def _upload(source: Path, remote: str, **kw: Any):  # type: ignore[no-untyped-def]
    async def client(channel: MemoryChannel) -> Any:
        return await put_file(channel, source, remote, **kw)

    return client


# --- a folder as the destination ----------------------------------------------------------


@pytest.mark.parametrize("remote", ["docs", "docs/", "ROOT"])
def test_a_folder_takes_the_file_under_its_own_name(
    machine: Machine, local: Path, remote: str
) -> None:
    folder = machine.root if remote == "ROOT" else machine.root / "docs"
    folder.mkdir(exist_ok=True)
    source = local / "rapport æøå.pdf"
    source.write_bytes(b"%PDF-1.7 " * 1000)
    path = str(machine.root) if remote == "ROOT" else remote

    result = run(machine, _upload(source, path))
    placed = folder / "rapport æøå.pdf"
    assert placed.read_bytes() == source.read_bytes()
    assert result.path == str(placed)
    [record] = machine.records
    assert (record.path, record.name) == (str(placed), "rapport æøå.pdf")
    assert not list(folder.glob(".fjernhjelp-*")) and machine.refusals == []


def test_a_file_of_the_same_name_in_the_folder_is_asked_about(
    machine: Machine, local: Path
) -> None:
    (machine.root / "docs").mkdir()
    existing = machine.root / "docs" / "a.txt"
    existing.write_text("old\n")
    source = local / "a.txt"
    source.write_text("new\n")
    with pytest.raises(FileExists) as exists:
        run(machine, _upload(source, "docs"))
    assert exists.value.path == str(existing) and existing.read_text() == "old\n"
    run(machine, _upload(source, "docs", overwrite=True))
    assert existing.read_text() == "new\n"


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../escape", "x" * 256, 7, None])
def test_a_folder_upload_needs_one_plain_name(machine: Machine, name: object) -> None:
    (machine.root / "docs").mkdir()
    body = {"op": "put", "path": "docs", "size": 1, "sha256": "0" * 64}
    if name is not None:
        body["name"] = name

    async def attacker(channel: MemoryChannel) -> dict[str, Any]:
        await channel.send(msg(wire.REQUEST, body))
        reply = await channel.recv()
        with pytest.raises(ChannelClosed):
            await channel.recv()
        return json.loads(reply[1:])

    reply = run(machine, attacker)
    assert reply["code"] == ("not_a_file" if name is None else "bad_path")
    assert sorted(p.name for p in machine.root.iterdir()) == ["docs"]
    assert list((machine.root / "docs").iterdir()) == []
    assert sorted(p.name for p in machine.outside.iterdir()) == ["shadow"]


def test_a_link_to_a_folder_is_not_a_folder(machine: Machine, local: Path) -> None:
    (machine.root / "out").symlink_to(machine.outside)
    source = local / "payload"
    source.write_text(EVIL)
    with pytest.raises(TransferRefused) as refused:
        run(machine, _upload(source, "out"))
    assert refused.value.code == "symlink"
    assert sorted(p.name for p in machine.outside.iterdir()) == ["shadow"]


# --- a local attacker in the shared folder -------------------------------------------------


@pytest.mark.parametrize("plant", ["symlink", "hard link", "writable by others", "fifo"])
def test_nothing_planted_at_a_partial_name_is_opened_or_resumed(
    machine: Machine, local: Path, plant: str
) -> None:
    source = local / "update.sh"
    source.write_text("echo hello\n" * 100)
    planted = machine.root / f"{partial_prefix(sha(source))}{'a' * 16}.part"
    if plant == "symlink":
        planted.symlink_to(machine.outside / "shadow")
    elif plant == "hard link":
        os.link(machine.outside / "shadow", planted)
    elif plant == "fifo":
        os.mkfifo(planted)
    else:
        planted.write_text("echo hello\n")  # a prefix of the content, to be "resumed"
        planted.chmod(0o666)

    result = run(machine, _upload(source, "update.sh"))
    assert result.resumed_from == 0
    assert (machine.root / "update.sh").read_text() == source.read_text()
    assert (machine.outside / "shadow").read_text() == "the secret\n"
    assert os.path.lexists(planted)  # someone else's entry: left alone, never used
    assert [p.name for p in partials(machine.root, sha(source))] == [planted.name]


def _swap_partial_for_link(machine: Machine) -> None:
    """The attacker renames a link to a file outside over the agent's partial file."""
    [partial] = list(machine.root.glob(".fjernhjelp-*.part"))
    evil = machine.root / "evil-link"
    evil.symlink_to(machine.outside / "shadow")
    os.replace(evil, partial)


def test_a_partial_file_swapped_after_the_check_is_not_put_in_place(
    machine: Machine, local: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = machine.root / "journal.cfg"
    existing.write_text("kept\n")
    source = local / "journal.cfg"
    source.write_text("verified\n")
    settle = service._settle

    def swap_then_settle(fd: int, parent: int, replaced: os.stat_result | None) -> None:
        _swap_partial_for_link(machine)  # after the hash check, before the rename
        settle(fd, parent, replaced)

    monkeypatch.setattr(service, "_settle", swap_then_settle)
    with pytest.raises(TransferRefused) as refused:
        run(machine, _upload(source, "journal.cfg", overwrite=True))
    assert refused.value.code == "changed"
    assert existing.read_text() == "kept\n" and not existing.is_symlink()
    assert (machine.outside / "shadow").read_text() == "the secret\n"
    assert machine.records == []
    assert [(r.op, r.code) for r in machine.refusals] == [("put", "changed")]


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_file_swapped_in_during_the_rename_is_taken_out_again(
    machine: Machine, local: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool
) -> None:
    """The narrowest window: between the last check of the partial file's name and the
    rename (or link) that gives it the final name."""
    source = local / "setup.sh"
    source.write_text("echo verified\n")
    target = machine.root / "setup.sh"
    name = "replace" if overwrite else "link"
    real = getattr(os, name)

    def swapping(*args: Any, **kw: Any) -> None:
        if str(args[0]).startswith(".fjernhjelp-"):
            _swap_partial_for_link(machine)
        real(*args, **kw)

    monkeypatch.setattr(os, name, swapping)
    with pytest.raises(TransferRefused) as refused:
        run(machine, _upload(source, "setup.sh", overwrite=overwrite))
    monkeypatch.undo()
    assert refused.value.code == "changed"
    assert not os.path.lexists(target)  # the swapped-in link did not stay
    assert (machine.outside / "shadow").read_text() == "the secret\n"
    assert machine.records == []
    assert [(r.op, r.code) for r in machine.refusals] == [("put", "changed")]


def test_a_file_that_appears_during_the_upload_is_not_overwritten(
    machine: Machine, local: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = local / "notes.txt"
    source.write_text("mine\n")
    settle = service._settle

    def appear_then_settle(fd: int, parent: int, replaced: os.stat_result | None) -> None:
        (machine.root / "notes.txt").write_text(EVIL)
        settle(fd, parent, replaced)

    monkeypatch.setattr(service, "_settle", appear_then_settle)
    with pytest.raises(FileExists) as exists:
        run(machine, _upload(source, "notes.txt"))
    assert exists.value.path == str(machine.root / "notes.txt")
    assert (machine.root / "notes.txt").read_text() == EVIL
    assert machine.records == [] and machine.refusals[-1].code == "exists"
