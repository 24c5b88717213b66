"""Asking the person at the machine whether a technician may connect.

:func:`ask_consent` shows a dialog on the logged-in user's display (see ``display``): which
technician, from which organisation, asks for what, and why; Allow or Deny. It runs as a
separate process, so the agent's event loop never waits on the window system. Only an
explicit click on Allow is consent: Deny, closing the window, Escape, no answer before the
timeout, a dialog that crashes or says something unexpected are all refusals, each told
apart in the answer so the audit log can say which.

While the dialog is open, remote input from every session of this agent is held back
(``inputhold``): a technician in control of the screen cannot answer for the user.

The dialog program itself is ``agent.windows.consent``; this module only starts it, in
its own process, and reads its answer.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fjernhjelp.agent.display import (
    DialogProcess,
    DisplayTarget,
    ShownWindow,
    clean_text,
    start_dialog,
)
from fjernhjelp.agent.inputhold import HOLD, InputHold
from fjernhjelp.i18n import Translator

PERMISSIONS = ("view", "control", "terminal", "terminal_admin", "files", "chat", "clipboard")
DIALOG_PROGRAM = "fjernhjelp.agent.windows.consent"  # run as ``python -m``
STARTUP_TIMEOUT = 20.0  # for the dialog to appear; separate from the user's time to answer


class ConsentAnswer(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    TIMED_OUT = "timed_out"
    NO_DISPLAY = "no_display"
    FAILED = "failed"  # the dialog could not be shown or broke: a refusal too

    @property
    def allowed(self) -> bool:
        return self is ConsentAnswer.ALLOWED


@dataclass(frozen=True)
class ConsentRequest:
    """What the end user is asked to allow."""

    technician: str
    organisation: str
    permissions: Sequence[str]
    reason: str | None = None
    # Support (docs/tunnel.md §18): the words to compare with what the technician reads,
    # and the same 24 bits as digits.
    sas: str | None = None
    sas_digits: str | None = None
    # Permissions offered as tick boxes, off unless the user ticks them (Support's shell).
    optional: Sequence[str] = ()

    def __post_init__(self) -> None:
        unknown = [p for p in (*self.permissions, *self.optional) if p not in PERMISSIONS]
        if unknown or not self.permissions:
            # Showing a partial list would ask for less than the session would get.
            raise ValueError(f"permissions must be a non-empty subset of {PERMISSIONS}")


def consent_texts(request: ConsentRequest, t: Translator, timeout: float) -> dict[str, Any]:
    """Everything the dialog shows, translated; the dialog program itself has no logic."""
    texts: dict[str, Any] = {
        "title": t("agent.consent.window_title"),
        "heading": t(
            "agent.consent.heading",
            technician=clean_text(request.technician),
            organisation=clean_text(request.organisation),
        ),
        "asks": t("agent.consent.asks"),
        "permissions": [
            t(f"agent.permission.{p}") for p in PERMISSIONS if p in request.permissions
        ],
        "note": t("agent.consent.note"),
        "paused": t("agent.consent.paused"),
        "allow": t("agent.consent.allow"),
        "deny": t("agent.consent.deny"),
        "countdown": t("agent.consent.countdown", seconds="{seconds}"),
        "seconds": max(1, round(timeout)),
    }
    if request.reason:
        texts["reason"] = t("agent.consent.reason", reason=clean_text(request.reason, 400))
    if request.sas:
        texts["sas"] = t("support.sas.compare", words=clean_text(request.sas))
        texts["sas_note"] = t("agent.consent.sas_note")
        if request.sas_digits:
            texts["sas_digits"] = t("support.sas.digits", digits=request.sas_digits)
    if request.optional:
        texts["optional_heading"] = t("agent.consent.optional")
        texts["optional"] = [
            {"name": p, "text": t(f"agent.permission.{p}")}
            for p in PERMISSIONS
            if p in request.optional
        ]
    return texts


@dataclass(frozen=True)
class ConsentOutcome:
    """The answer, and which of the request's optional permissions the user ticked (none
    unless the answer is ALLOWED)."""

    answer: ConsentAnswer
    ticked: frozenset[str] = frozenset()


OnShown = Callable[[ShownWindow], Awaitable[None] | None]


async def ask_consent(
    request: ConsentRequest,
    *,
    display: DisplayTarget | None,
    timeout: float = 60.0,  # noqa: ASYNC109 - the user's time to answer, not a call deadline
    language: str | None = None,
    on_shown: OnShown | None = None,
    hold: InputHold = HOLD,
    _argv: list[str] | None = None,
    _prestarted: DialogProcess | None = None,
) -> ConsentAnswer:
    """Ask the person at ``display``; no answer within ``timeout`` seconds is a denial.

    ``display`` None (nobody logged in) answers NO_DISPLAY at once. ``on_shown`` is
    called when the dialog is on screen (tests click it; the agent may log it).
    """
    outcome = await ask_consent_ticked(
        request,
        display=display,
        timeout=timeout,
        language=language,
        on_shown=on_shown,
        hold=hold,
        _argv=_argv,
        _prestarted=_prestarted,
    )
    return outcome.answer


async def ask_consent_ticked(
    request: ConsentRequest,
    *,
    display: DisplayTarget | None,
    timeout: float = 60.0,  # noqa: ASYNC109 - the user's time to answer, not a call deadline
    language: str | None = None,
    on_shown: OnShown | None = None,
    hold: InputHold = HOLD,
    _argv: list[str] | None = None,
    _prestarted: DialogProcess | None = None,
) -> ConsentOutcome:
    """:func:`ask_consent`, with the optional permissions the user ticked.

    ``_prestarted`` is the dialog program launched ahead (the Support client starts it
    while it waits for the technician, so the dialog shows without Python's start-up)."""
    if display is None:
        return ConsentOutcome(ConsentAnswer.NO_DISPLAY)
    t = Translator(language or display.language or "nb")
    payload = {"texts": consent_texts(request, t, timeout)}
    # Held from before the window exists until it is gone: no moment in which a
    # technician's click could reach it.
    with hold.holding():
        return await _ask(
            payload, display, timeout, on_shown, _argv, set(request.optional), _prestarted
        )


async def _ask(
    payload: dict[str, Any],
    display: DisplayTarget,
    timeout: float,  # noqa: ASYNC109 - the user's time to answer, not a call deadline
    on_shown: OnShown | None,
    argv: list[str] | None,
    optional: set[str],
    prestarted: DialogProcess | None,
) -> ConsentOutcome:
    answer, ticked = await _dialog(payload, display, timeout, on_shown, argv, prestarted)
    # Only what was offered, and only with an Allow: a dialog cannot widen the request.
    kept = frozenset(ticked) & optional if answer.allowed else frozenset()
    return ConsentOutcome(answer, kept)


async def _dialog(
    payload: dict[str, Any],
    display: DisplayTarget,
    timeout: float,  # noqa: ASYNC109 - the user's time to answer, not a call deadline
    on_shown: OnShown | None,
    argv: list[str] | None,
    prestarted: DialogProcess | None,
) -> tuple[ConsentAnswer, list[str]]:
    dialog = await start_dialog(
        DIALOG_PROGRAM, payload, display, argv=argv, prestarted=prestarted
    )
    try:
        first = await dialog.next_event(within=STARTUP_TIMEOUT)
        if first is None:
            return ConsentAnswer.FAILED, []
        if first["event"] == "error":
            no_display = first.get("reason") == "no_display"
            return (ConsentAnswer.NO_DISPLAY if no_display else ConsentAnswer.FAILED), []
        shown = ShownWindow.from_event(first) if first["event"] == "shown" else None
        if shown is None:
            return ConsentAnswer.FAILED, []
        if on_shown is not None:
            result = on_shown(shown)
            if inspect.isawaitable(result):
                await result
        # The dialog counts down and reports the timeout itself; the extra second here
        # only covers a dialog that hangs, and such a dialog gets TIMED_OUT all the same.
        answer = await dialog.next_event(within=timeout + 1.0)
        if answer is None:
            timed_out = dialog.problem == "timeout"
            return (ConsentAnswer.TIMED_OUT if timed_out else ConsentAnswer.FAILED), []
        if answer["event"] == "timeout":
            return ConsentAnswer.TIMED_OUT, []
        if answer["event"] == "answer" and answer.get("allowed") is True:
            ticked = answer.get("ticked", [])
            names = [n for n in ticked if isinstance(n, str)] if isinstance(ticked, list) else []
            return ConsentAnswer.ALLOWED, names
        if answer["event"] == "answer" and answer.get("allowed") is False:
            return ConsentAnswer.DENIED, []
        return ConsentAnswer.FAILED, []
    finally:
        await dialog.stop()
