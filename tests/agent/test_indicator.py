"""The session indicator on a real Xvfb, and finding the user's display."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from fjernhjelp.agent.display import DisplayTarget, find_active_display
from fjernhjelp.agent.indicator import IndicatorUnavailable, SessionIndicator, indicator_texts
from fjernhjelp.i18n import Translator, language_of
from tests.asyncrun import run_async
from tests.x11 import click, screenshot, window_states

pytestmark = pytest.mark.desktop


def indicator(display: DisplayTarget, **kw: object) -> SessionIndicator:
    return SessionIndicator(
        technician="Kari Nordmann", organisation="Journalsystemer AS", display=display, **kw
    )


def test_end_session_button_ends_the_session(xvfb: DisplayTarget, tmp_path: Path) -> None:
    async def main() -> tuple[str, bool, int | None]:
        shown = indicator(xvfb)
        await shown.start()
        assert not shown.ended.is_set()
        await asyncio.to_thread(screenshot, xvfb, tmp_path / "indicator-nb.png")
        states = await asyncio.to_thread(window_states, xvfb, "Fjernhjelp")
        assert states == ["_NET_WM_STATE(ATOM) = _NET_WM_STATE_ABOVE"]  # always on top
        assert shown.shown is not None
        await asyncio.to_thread(click, xvfb, *shown.shown.buttons["end_session"])
        reason = await asyncio.wait_for(shown.wait(), 30)
        await shown.close()
        return reason, shown.ended_by_user, shown._dialog.process.returncode  # type: ignore[union-attr]

    reason, by_user, returncode = run_async(main())
    assert reason == "end_button" and by_user
    assert returncode is not None  # the window is gone


def test_closing_takes_the_indicator_down(xvfb: DisplayTarget, tmp_path: Path) -> None:
    async def main() -> SessionIndicator:
        shown = indicator(xvfb, language="en")
        await shown.start()
        await asyncio.to_thread(screenshot, xvfb, tmp_path / "indicator-en.png")
        await shown.close()
        return shown

    shown = run_async(main())
    assert shown.end_reason == "closed" and not shown.ended_by_user
    assert shown._dialog.process.returncode is not None  # type: ignore[union-attr]


def test_killing_the_indicator_ends_the_session(xvfb: DisplayTarget) -> None:
    # Whoever removes the indicator (a crash, a local process) must not leave an unseen session.
    async def main() -> str:
        shown = indicator(xvfb)
        await shown.start()
        os.kill(shown._dialog.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
        reason = await asyncio.wait_for(shown.wait(), 30)
        await shown.close()
        return reason

    assert run_async(main()) == "indicator_exited"


def test_no_display_is_reported() -> None:
    async def main() -> None:
        await indicator(DisplayTarget(display=":32124")).start()

    with pytest.raises(IndicatorUnavailable) as unavailable:
        run_async(main())
    assert unavailable.value.reason == "no_display"


def test_an_indicator_that_never_appears_fails() -> None:
    async def main() -> None:
        await indicator(DisplayTarget(":0"), _argv=[sys.executable, "-c", "print('{}')"]).start()

    with pytest.raises(IndicatorUnavailable) as unavailable:
        run_async(main())
    assert unavailable.value.reason == "failed"


def test_a_forged_end_reason_is_still_an_end(xvfb: DisplayTarget) -> None:
    fake = (
        "import json,sys;print(json.dumps({'event':'shown','window':1,'buttons':{}}),flush=True);"
        "print(json.dumps({'event':'end','by':'agent'}),flush=True);sys.stdin.read()"
    )

    async def main() -> str:
        shown = indicator(xvfb, _argv=[sys.executable, "-c", fake])
        await shown.start()
        reason = await asyncio.wait_for(shown.wait(), 30)
        await shown.close()
        return reason

    assert run_async(main()) == "end_button"


# --- finding the display ------------------------------------------------------------------


def fake_process(proc: Path, pid: int, uid: int, **env: str) -> None:
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "environ").write_bytes(b"".join(f"{k}={v}\0".encode() for k, v in env.items()))
    os.chown(entry, uid, uid)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give fake /proc entries owners")
def test_the_active_users_local_display_is_found(tmp_path: Path) -> None:
    proc, x11 = tmp_path / "proc", tmp_path / "X11"
    proc.mkdir()
    x11.mkdir()
    (x11 / "X0").touch()
    (x11 / "X5").touch()
    (proc / "self").mkdir()
    fake_process(proc, 10, 0, DISPLAY=":0", XAUTHORITY="/root/.Xauthority")
    fake_process(
        proc, 20, 1000, DISPLAY=":5.0", XAUTHORITY="/run/user/1000/xauth", LANG="nb_NO.UTF-8"
    )
    fake_process(proc, 30, 1001, DISPLAY="localhost:10.0", LANG="en_GB.UTF-8")  # ssh -X
    fake_process(proc, 40, 1002, DISPLAY=":7")  # no such X server
    fake_process(proc, 50, 1003, PATH="/bin")  # no display at all

    found = find_active_display(proc=proc, x11_dir=x11, active_uids={1000})
    assert found == DisplayTarget(":5", "/run/user/1000/xauth", 1000, found.gid, "nb")  # type: ignore[union-attr]
    # Without logind's word, a user's display still comes before root's.
    assert find_active_display(proc=proc, x11_dir=x11, active_uids=set()).uid == 1000  # type: ignore[union-attr]
    (x11 / "X5").unlink()
    assert find_active_display(proc=proc, x11_dir=x11, active_uids={1000}).display == ":0"  # type: ignore[union-attr]
    (x11 / "X0").unlink()
    assert find_active_display(proc=proc, x11_dir=x11, active_uids={1000}) is None


def test_language_of_locale() -> None:
    assert [language_of(x) for x in ("nb_NO.UTF-8", "nn_NO", "no", "en_GB.UTF-8", "de_DE", "")] == [
        "nb",
        "nb",
        "nb",
        "en",
        None,
        None,
    ]


def test_the_indicator_says_when_the_clipboard_is_shared_in_both_languages() -> None:
    def may(permissions: tuple[str, ...], language: str) -> str:
        texts = indicator_texts("Kari", "Org", permissions, Translator(language))
        return texts["may"]

    shared = ("view", "control", "clipboard")
    assert may(shared, "en") == (
        "The technician may see your screen, control the mouse and keyboard, "
        "see what you copy, and put text on your clipboard."
    )
    assert "se det du kopierer, og legge tekst på utklippstavlen din" in may(shared, "nb")
    assert "kopierer" not in may(("view", "control"), "nb")
    assert "copy" not in may(("view", "control"), "en")


def test_the_indicator_shows_what_the_session_may_do(xvfb: DisplayTarget, tmp_path: Path) -> None:
    async def main() -> None:
        shown = indicator(xvfb, permissions=("view", "control", "clipboard"), language="en")
        await shown.start()
        await asyncio.to_thread(screenshot, xvfb, tmp_path / "indicator-clipboard.png")
        assert shown.shown is not None and "end_session" in shown.shown.buttons
        await shown.close()

    run_async(main())


def _titles(display: DisplayTarget, name: str) -> list[tuple[str, str]]:
    """(WM_NAME read as ICCCM's Latin-1 STRING, _NET_WM_NAME as UTF-8) of each window whose
    title contains ``name``: what task bars and window managers show."""
    from Xlib import X, Xatom
    from Xlib import display as xdisplay

    conn = xdisplay.Display(display.display)
    try:
        utf8 = conn.intern_atom("UTF8_STRING")
        net_name = conn.intern_atom("_NET_WM_NAME")
        found = []
        for window in conn.screen().root.query_tree().children:
            legacy = window.get_full_property(Xatom.WM_NAME, X.AnyPropertyType)
            modern = window.get_full_property(net_name, utf8)
            if legacy is None or modern is None:
                continue
            pair = (bytes(legacy.value).decode("latin-1"), bytes(modern.value).decode("utf-8"))
            if name in pair[1]:
                found.append(pair)
        return found
    finally:
        conn.close()


def test_the_title_reads_right_in_both_title_properties_after_chat_opens(
    xvfb: DisplayTarget,
) -> None:
    """Under a UTF-8 locale (the dialogs' default) Tk wrote UTF-8 bytes into WM_NAME,
    typed STRING (Latin-1): "Fjernhjelp: Ã¸kt pÃ¥gÃ¥r" wherever it was read, as when the
    window grows for the chat. The ICCCM name must carry the same text as the UTF-8 one."""
    from fjernhjelp.i18n import Translator

    title = Translator("nb")("agent.indicator.window_title")
    assert "ø" in title and "å" in title  # the test is about letters outside ASCII

    async def main() -> list[tuple[str, str]]:
        shown = indicator(xvfb, language="nb")
        await shown.start()
        assert shown.claim_chat()
        assert await shown.show_chat("Hei, ser du meldingen?")
        titles = await asyncio.to_thread(_titles, xvfb, "Fjernhjelp")
        await shown.close()
        return titles

    titles = run_async(main())
    assert titles == [(title, title)]
