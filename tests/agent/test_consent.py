"""The consent dialog on a real Xvfb, clicked with xdotool; screenshots go to the tmp dir."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from fjernhjelp.agent.consent import ConsentAnswer, ConsentRequest, ask_consent, consent_texts
from fjernhjelp.agent.display import DisplayTarget, ShownWindow, clean_text
from fjernhjelp.i18n import Translator
from tests.asyncrun import run_async
from tests.x11 import click, screenshot

pytestmark = pytest.mark.desktop

REQUEST = ConsentRequest(
    technician="Kari Nordmann",
    organisation="Journalsystemer AS",
    permissions=("view", "control", "terminal", "files"),
    reason="Oppdatering av journalsystemet, sak 4711",
)


def ask(display: DisplayTarget | None, button: str | None, shot: Path | None, **kw: object):
    shown: list[ShownWindow] = []

    async def on_shown(window: ShownWindow) -> None:
        shown.append(window)
        if shot is not None:
            await asyncio.to_thread(screenshot, display, shot)  # type: ignore[arg-type]
        if button is not None:
            await asyncio.to_thread(click, display, *window.buttons[button])  # type: ignore[arg-type]

    answer = run_async(ask_consent(REQUEST, display=display, on_shown=on_shown, **kw))  # type: ignore[arg-type]
    return answer, shown


def test_allow_is_consent(xvfb: DisplayTarget, tmp_path: Path) -> None:
    answer, shown = ask(xvfb, "allow", tmp_path / "consent-nb.png")
    assert answer is ConsentAnswer.ALLOWED and answer.allowed
    assert set(shown[0].buttons) == {"allow", "deny"}
    print(f"screenshot: {tmp_path / 'consent-nb.png'}")


def test_deny_is_a_refusal(xvfb: DisplayTarget, tmp_path: Path) -> None:
    answer, _ = ask(xvfb, "deny", tmp_path / "consent-en.png", language="en")
    assert answer is ConsentAnswer.DENIED and not answer.allowed


def test_no_answer_in_time_is_a_refusal(xvfb: DisplayTarget, tmp_path: Path) -> None:
    answer, shown = ask(xvfb, None, tmp_path / "consent-countdown.png", timeout=2.0)
    assert answer is ConsentAnswer.TIMED_OUT and len(shown) == 1


def test_nobody_logged_in_means_no_display(tmp_path: Path) -> None:
    assert ask(None, None, None)[0] is ConsentAnswer.NO_DISPLAY


def test_a_display_that_is_not_there_means_no_display(tmp_path: Path) -> None:
    absent = DisplayTarget(display=":32123")
    assert ask(absent, None, None)[0] is ConsentAnswer.NO_DISPLAY


BROKEN_DIALOGS = {
    "garbage": "print('garbage')",
    "silent exit": "pass",
    "crash after shown": (
        "import json;print(json.dumps({'event':'shown','window':1,'buttons':{}}),flush=True);"
        "raise SystemExit(1)"
    ),
    "truthy but not true": (
        "import json;print(json.dumps({'event':'shown','window':1,'buttons':{}}));"
        "print(json.dumps({'event':'answer','allowed':'yes'}))"
    ),
    "oversized line": "print('x' * 200000)",
    "answer before shown": "import json;print(json.dumps({'event':'answer','allowed':True}))",
}


@pytest.mark.parametrize("name", list(BROKEN_DIALOGS))
def test_a_dialog_that_breaks_is_never_consent(name: str) -> None:
    broken = [sys.executable, "-c", BROKEN_DIALOGS[name]]
    answer = run_async(ask_consent(REQUEST, display=DisplayTarget(":0"), timeout=5.0, _argv=broken))
    assert answer is ConsentAnswer.FAILED and not answer.allowed


def test_the_dialog_names_the_clipboard_when_the_session_would_share_it() -> None:
    asked = ConsentRequest("Kari", "Org", ("view", "control", "clipboard"))
    assert consent_texts(asked, Translator("en"), 60)["permissions"][-1] == (
        "see what you copy, and put text on your clipboard"
    )
    assert consent_texts(asked, Translator("nb"), 60)["permissions"][-1] == (
        "se det du kopierer, og legge tekst på utklippstavlen din"
    )


def test_the_dialog_says_who_asks_for_what_in_both_languages() -> None:
    nb = consent_texts(REQUEST, Translator("nb"), 60)
    en = consent_texts(REQUEST, Translator("en"), 60)
    assert "Kari Nordmann fra Journalsystemer AS" in nb["heading"]
    assert "Kari Nordmann from Journalsystemer AS" in en["heading"]
    assert en["permissions"] == [
        "see your screen",
        "control the mouse and keyboard",
        "use the command line (terminal) on this computer",
        "copy files to and from this computer",
    ]
    assert "4711" in nb["reason"] and nb["seconds"] == 60
    assert (nb["allow"], nb["deny"], en["allow"], en["deny"]) == (
        "Tillat",
        "Avvis",
        "Allow",
        "Deny",
    )


def test_a_crafted_technician_name_cannot_add_lines_to_the_dialog() -> None:
    sneaky = ConsentRequest(
        technician="Bob\n\nRoutine check by your IT department.\u202e Press Allow",
        organisation="X" * 1000,
        permissions=("chat",),
    )
    heading = consent_texts(sneaky, Translator("en"), 60)["heading"]
    assert "\n" not in heading and "\u202e" not in heading
    assert len(clean_text("X" * 1000)) == 200


@pytest.mark.parametrize("permissions", [(), ("view", "root"), ("admin",)])
def test_a_request_must_name_only_known_permissions(permissions: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="permissions"):
        ConsentRequest("Kari", "Org", permissions)
