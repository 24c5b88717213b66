"""The process-wide hold on remote input while a consent dialog is open."""

from __future__ import annotations

import pytest

from fjernhjelp.agent.inputhold import InputHold


def test_nested_dialogs_hold_until_the_last_is_answered() -> None:
    hold = InputHold()
    heard: list[bool] = []
    unsubscribe = hold.subscribe(heard.append)
    assert not hold.held
    with hold.holding():
        assert hold.held
        with hold.holding():  # a second session's dialog at the same time
            assert hold.held
        assert hold.held  # the first is still open
    assert not hold.held
    assert heard == [True, False]  # told once when it starts and once when it ends
    unsubscribe()
    with hold.holding():
        pass
    assert heard == [True, False]


def test_a_failing_dialog_still_lets_go_and_a_broken_listener_stops_nobody() -> None:
    hold = InputHold()
    heard: list[bool] = []

    def broken(_held: bool) -> None:
        raise RuntimeError("indicator gone")

    hold.subscribe(broken)
    hold.subscribe(heard.append)
    with pytest.raises(ValueError), hold.holding():
        raise ValueError("the dialog crashed")
    assert not hold.held and heard == [True, False]
