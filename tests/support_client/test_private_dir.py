"""The client's one private folder: 0700, ours, and gone on every exit path it can see."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fjernhjelp.support.platform import PrivateTempDir, TempDirRefused, guard_extraction


def test_the_folder_is_private_and_removed_on_leaving(tmp_path: Path) -> None:
    with PrivateTempDir(tmp_path, handle_signals=False) as private:
        info = private.path.lstat()
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
        made = private.create("key", b"secret")
        assert stat.S_IMODE(made.stat().st_mode) == 0o600
        (private.path / "sub").mkdir()
        (private.path / "sub" / "f").write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []
    private.remove()  # a second time is harmless


def test_the_folder_is_removed_when_an_error_leaves_the_block(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), PrivateTempDir(tmp_path, handle_signals=False) as private:
        private.create("partial")
        raise RuntimeError("the session broke")
    assert list(tmp_path.iterdir()) == []


def test_a_symlinked_base_and_names_that_leave_the_folder_are_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(TempDirRefused):
        PrivateTempDir(link, handle_signals=False).make()
    assert list(real.iterdir()) == []
    with PrivateTempDir(real, handle_signals=False) as private:
        for name in ("../escape", "a/b", "..", ""):
            with pytest.raises(ValueError):
                private.create(name)
        # A link planted under a name we are about to use is not followed.
        outside = tmp_path / "outside"
        (private.path / "planted").symlink_to(outside)
        with pytest.raises(OSError):
            private.create("planted", b"secret")
        assert not outside.exists()


def test_removal_does_not_follow_links(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious").write_bytes(b"x")
    base = tmp_path / "base"
    base.mkdir()
    private = PrivateTempDir(base, handle_signals=False)
    private.make()
    (private.path / "to-keep").symlink_to(keep)
    private.remove()
    assert (keep / "precious").exists() and list(base.iterdir()) == []
    # The folder itself swapped for a link: the link goes, its target stays.
    private = PrivateTempDir(base, handle_signals=False)
    path = private.make()
    path.rmdir()
    path.symlink_to(keep)
    private.remove()
    assert (keep / "precious").exists() and list(base.iterdir()) == []


# A child that makes the folder, says where, and waits: the test ends it in various ways.
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from fjernhjelp.support.platform import PrivateTempDir
    # Started as from a terminal, whatever the test runner's own dispositions are (a
    # runner started with nohup, or in the background, ignores SIGHUP or SIGINT, and
    # its children inherit that) ...
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    # ... or, when told, ignoring one signal as nohup does.
    if len(sys.argv) > 3:
        signal.signal(int(sys.argv[3]), signal.SIG_IGN)
    private = PrivateTempDir(sys.argv[1])
    private.make()
    private.create("session.key", b"k")
    print(private.path, flush=True)
    how = sys.argv[2]
    if how == "exit":
        sys.exit(0)          # atexit, no context manager
    if how == "error":
        raise RuntimeError("unhandled")
    if how == "ask":
        sys.stdin.readline()  # after the test's signal: is the folder still there?
        print(private.path.is_dir(), flush=True)
    time.sleep(120)
    """
)


def run_child(base: Path, how: str, *ignoring: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(base), how, *map(str, ignoring)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


@pytest.mark.parametrize("how", ["exit", "error"])
def test_the_folder_goes_at_exit(tmp_path: Path, how: str) -> None:
    child = run_child(tmp_path, how)
    assert child.stdout is not None
    made = Path(child.stdout.readline().strip())
    assert made.parent == tmp_path
    child.wait(60)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_the_folder_goes_on_a_signal_and_the_signal_still_ends_the_process(
    tmp_path: Path, signum: int
) -> None:
    child = run_child(tmp_path, "wait")
    assert child.stdout is not None
    made = Path(child.stdout.readline().strip())
    assert made.is_dir()
    child.send_signal(signum)
    code = child.wait(60)
    assert list(tmp_path.iterdir()) == []
    # SIGINT too: Python ends an unhandled KeyboardInterrupt by the signal itself.
    assert code == -signum


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_a_signal_the_process_ignores_leaves_it_running_with_its_folder(
    tmp_path: Path, signum: int
) -> None:
    # Started under nohup (SIGHUP) or as a background job (SIGINT): the signal does not
    # end the client, so its folder stays while it runs, and goes when it does end.
    child = run_child(tmp_path, "ask", signum)
    assert child.stdout is not None and child.stdin is not None
    made = Path(child.stdout.readline().strip())
    child.send_signal(signum)
    child.stdin.write("after the signal\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "True"
    assert child.poll() is None and made.is_dir()
    child.send_signal(signal.SIGTERM)
    assert child.wait(60) == -signal.SIGTERM
    assert not made.exists() and list(tmp_path.iterdir()) == []


# The one-file build's unpacked folder: removed by the child at exit only when the
# unpacker (its parent) is gone. The orphan holds the only write end of a pipe the test
# reads, so the test learns that it has exited (atexit included) without polling.
GRANDCHILD = """
import sys
from fjernhjelp.support.platform import guard_extraction
assert guard_extraction(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
"""
RUNNER = """
import os, subprocess, sys
done = int(sys.argv[3])
child = subprocess.Popen(
    [sys.executable, "-c", sys.argv[1], sys.argv[2]], pass_fds=(done,), stdout=subprocess.PIPE
)
os.close(done)
child.stdout.readline()  # the guard is set while its parent is still this process
print(child.pid, flush=True)
if sys.argv[4] == "die":
    os._exit(0)  # as a SIGKILLed bootloader: the grandchild is orphaned
child.wait()
"""


@pytest.mark.parametrize("parent", ["die", "stay"])
def test_an_orphaned_one_file_child_removes_the_unpacked_folder(
    tmp_path: Path, parent: str
) -> None:
    unpacked = tmp_path / "_MEI12345abc"
    unpacked.mkdir()
    (unpacked / "lib.so").write_bytes(b"x")
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, GRANDCHILD, str(unpacked), str(done_write), parent],
        stdin=go_read,
        stdout=subprocess.PIPE,
        pass_fds=(done_write,),
        text=True,
    )
    os.close(go_read)
    os.close(done_write)
    assert runner.stdout is not None
    assert int(runner.stdout.readline()) > 0
    if parent == "die":
        runner.wait(60)
    os.close(go_write)  # the grandchild's stdin ends: it exits
    assert os.read(done_read, 1) == b""  # ...and has: its end of the pipe is closed
    os.close(done_read)
    runner.wait(60)
    assert unpacked.exists() is (parent == "stay")


def test_the_guard_is_off_outside_the_one_file_build() -> None:
    assert guard_extraction() is False
    assert guard_extraction("/tmp/not-an-unpacked-folder") is False
