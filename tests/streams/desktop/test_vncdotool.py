"""An independent VNC client (vncdotool) types Norwegian text into a real Tk application,
clicks its button, and reads the screen; a view-only session changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vncdotool import api

from tests.desktop.xvfb import EntryApp, Xvfb

pytestmark = [pytest.mark.desktop, pytest.mark.xdist_group("vncdotool")]

TEXT = "Blåbærsyltetøy"


@pytest.fixture(scope="module", autouse=True)
def _twisted_reactor() -> Iterator[None]:
    # vncdotool runs Twisted's reactor in a thread; it can be started once per process.
    yield
    api.shutdown()


def connect(port: int) -> api.ThreadedVNCClientProxy:
    return api.connect(f"127.0.0.1::{port}", timeout=30)


def type_and_click(client: api.ThreadedVNCClientProxy, app: EntryApp) -> None:
    client.mouseMove(*app.ENTRY)
    client.mousePress(1)
    for char in TEXT:
        client.keyPress(char)
    client.mouseMove(*app.BUTTON)
    client.mousePress(1)


def test_vncdotool_types_norwegian_text_and_clicks_the_button(agent, entry_app: EntryApp) -> None:
    client = connect(agent.port)
    try:
        type_and_click(client, entry_app)
        assert entry_app.wait_result() == TEXT
    finally:
        client.disconnect()
    # æ, ø and å are not on the Xvfb's US layout: they arrived through a spare keycode.
    assert {"aring", "ae", "oslash"} <= set(entry_app.keys())


def test_vncdotool_screenshot_matches_the_x_screen(
    agent, xserver: Xvfb, entry_app: EntryApp, tmp_path: Path
) -> None:
    client = connect(agent.port)
    try:
        shot = tmp_path / "shot.png"
        client.captureScreen(str(shot))
        captured = np.asarray(Image.open(shot).convert("RGB"))
    finally:
        client.disconnect()
    assert captured.shape == (xserver.height, xserver.width, 3)
    assert np.array_equal(captured, xserver.screen())


def test_view_only_session_changes_nothing(view_only_agent, entry_app: EntryApp) -> None:
    client = connect(view_only_agent.port)
    try:
        type_and_click(client, entry_app)
        client.captureScreen(str(entry_app.result.with_suffix(".png")))  # a round trip
    finally:
        client.disconnect()
    assert entry_app.wait_result(timeout=2) is None
    assert entry_app.keys() == []
