"""noVNC (npm package, headless Chromium) decodes every encoding the agent sends, drives
a real Tk application, shares the clipboard both ways, and cannot act in view-only.

The page is fed through a plain local WebSocket whose connections are tunnel Channels,
as the end-to-end tunnel will carry them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from tests.desktop.novnc import Bridge, bridge, canvas_pixels
from tests.desktop.xvfb import (
    APPS,
    ClipboardApp,
    EntryApp,
    Xvfb,
    photo,
    put_image,
    wait_for,
)

pytestmark = [pytest.mark.desktop, pytest.mark.browser, pytest.mark.xdist_group("novnc")]

TEXT = "Blåbærsyltetøy"
RAW, COPY_RECT, TIGHT, ZRLE = 0, 1, 7, 16
CURSOR, EXT_DESKTOP_SIZE, QUALITY_6 = -239, -308, -26


@pytest.fixture
def chromium(browser: object) -> object:
    # The suite's one Playwright (tests/conftest.py): a second in this process would fail.
    return browser


@pytest.fixture
def viewer(chromium, xserver: Xvfb) -> Iterator[object]:
    context = chromium.new_context(
        viewport={"width": xserver.width + 40, "height": xserver.height + 40}
    )
    page = context.new_page()
    yield page
    context.close()


def open_viewer(page, b: Bridge, encodings: list[int] | None = None) -> None:
    page.goto(b.url(encodings))
    page.wait_for_function("window.events && window.events.connected", timeout=20_000)


def difference(page, server: Xvfb) -> np.ndarray | None:
    canvas = canvas_pixels(page)
    screen = server.screen()
    if canvas.shape != screen.shape:
        return None
    return np.abs(canvas.astype(np.int16) - screen.astype(np.int16))


def shows_screen(page, server: Xvfb, max_error: int = 0, mean_error: float = 0.0) -> bool:
    def check() -> bool:
        diff = difference(page, server)
        return diff is not None and diff.max() <= max_error and diff.mean() <= mean_error

    return wait_for(check, timeout=20)


def canvas_point(page, x: int, y: int) -> tuple[float, float]:
    box = page.locator("#screen canvas").bounding_box()
    return box["x"] + x + 0.5, box["y"] + y + 0.5


# Where æ, ø and å sit on a Norwegian keyboard (KeyboardEvent.code values).
NORWEGIAN_KEYS = {"æ": "Quote", "ø": "Semicolon", "å": "BracketLeft"}


def type_norwegian(page, text: str) -> None:
    """Type as a technician with a Norwegian keyboard layout would.

    Playwright's keyboard knows only the US layout, so æ, ø and å are sent as the
    browser receives them from a Norwegian layout, through the DevTools protocol.
    """
    cdp = page.context.new_cdp_session(page)
    for char in text:
        if char not in NORWEGIAN_KEYS:
            page.keyboard.press(char)
            continue
        key = {"key": char, "code": NORWEGIAN_KEYS[char]}
        cdp.send("Input.dispatchKeyEvent", {"type": "keyDown", "text": char, **key})
        cdp.send("Input.dispatchKeyEvent", {"type": "keyUp", **key})
    cdp.detach()


@pytest.fixture
def scenery(xserver: Xvfb, entry_app: EntryApp) -> None:
    """Text (the Tk application), flat areas, and a photo in one corner."""
    put_image(xserver, photo(480, 360), 760, 400)


LOSSLESS = {
    "tight-lossless": [TIGHT, CURSOR, EXT_DESKTOP_SIZE],
    "zrle": [ZRLE, CURSOR],
    "raw": [RAW],
}


@pytest.mark.parametrize("name", list(LOSSLESS))
def test_novnc_decodes_lossless_encodings_exactly(viewer, xserver: Xvfb, scenery, name) -> None:
    with bridge(xserver.display) as b:
        open_viewer(viewer, b, LOSSLESS[name])
        assert shows_screen(viewer, xserver), f"{name}: canvas differs from the X screen"
        # One RFB stream as tunnel messages of at most 64 KiB each.
        assert max(b.channels[0].sizes) <= 64 * 1024


def test_novnc_decodes_tight_jpeg_for_photos(viewer, xserver: Xvfb, scenery) -> None:
    def photo_close_text_exact() -> bool:
        diff = difference(viewer, xserver)
        if diff is None or diff[0:160, 0:400].max() != 0:
            return False
        error = diff[400:760, 760:1240].astype(np.float64)
        return 0 < (error**2).mean() < 255**2 / 10 ** (28 / 10)  # lossy, PSNR above 28 dB

    with bridge(xserver.display) as b:
        open_viewer(viewer, b, [TIGHT, QUALITY_6, CURSOR])
        # The photo went as JPEG (close, not exact); the application's text stayed exact.
        assert wait_for(photo_close_text_exact, timeout=20)


def test_novnc_follows_a_scroll_with_copyrect(viewer, xserver: Xvfb, scenery) -> None:
    image = photo(480, 720, seed=7)
    put_image(xserver, image[:360], 760, 400)
    with bridge(xserver.display) as b:
        open_viewer(viewer, b, [COPY_RECT, TIGHT, CURSOR])
        assert shows_screen(viewer, xserver)
        put_image(xserver, image[90:450], 760, 400)  # scrolled up by 90 rows
        assert shows_screen(viewer, xserver)
        assert b.sessions[0].stats["copyrect"] >= 1


def test_technician_types_norwegian_text_and_clicks_through_novnc(
    viewer, xserver: Xvfb, entry_app: EntryApp
) -> None:
    with bridge(xserver.display) as b:
        open_viewer(viewer, b)
        assert shows_screen(viewer, xserver, max_error=255, mean_error=5)
        viewer.mouse.click(*canvas_point(viewer, *entry_app.ENTRY))
        # Keyboard events reach noVNC through the focused canvas, as for a technician
        # who clicked into the remote screen.
        viewer.wait_for_function("document.activeElement.tagName === 'CANVAS'")
        type_norwegian(viewer, TEXT)
        viewer.mouse.click(*canvas_point(viewer, *entry_app.BUTTON))
        result = entry_app.wait_result()
        kinds = [e.kind for e in b.inputs]
        assert result == TEXT, f"keys at the application: {entry_app.keys()}; sent: {kinds}"
        assert all(event.applied for event in b.inputs)


def test_view_only_session_ignores_novnc_input(viewer, xserver: Xvfb, entry_app: EntryApp) -> None:
    with bridge(xserver.display, view_only=True) as b:
        open_viewer(viewer, b)
        assert shows_screen(viewer, xserver, max_error=255, mean_error=5)
        viewer.mouse.click(*canvas_point(viewer, *entry_app.ENTRY))
        for char in "abc":
            viewer.keyboard.press(char)
        viewer.mouse.click(*canvas_point(viewer, *entry_app.BUTTON))
        viewer.evaluate("window.rfb.clipboardPasteFrom('should not arrive')")
        assert wait_for(lambda: any(e.kind == "clipboard" for e in b.inputs))
    # The page sent input; the agent ignored every piece of it.
    assert {e.kind for e in b.inputs} >= {"pointer", "key", "clipboard"}
    assert not any(event.applied for event in b.inputs)
    assert entry_app.keys() == []
    assert entry_app.wait_result(timeout=1) is None
    assert clipboard_text(xserver) != "should not arrive"


def clipboard_text(server: Xvfb) -> str:
    tool = APPS / "clipboard_tool.py"
    done = subprocess.run(
        [sys.executable, str(tool), "get"], env=server.env(), capture_output=True, timeout=30
    )
    return done.stdout.decode("utf-8")


def test_clipboard_text_travels_both_ways(viewer, xserver: Xvfb) -> None:
    """UTF-8 both ways through noVNC's extended clipboard, and the clipboard lives on
    after another program takes the selection from the agent (X's SelectionClear)."""
    app = ClipboardApp(xserver)
    try:
        with bridge(xserver.display) as b:
            open_viewer(viewer, b)
            # noVNC lists the pseudo-encoding right after connecting; a copy before the
            # agent has read that list would go as Latin-1.
            assert wait_for(lambda: b.sessions[0].clipboard_extended)

            def technician_sees(text: str) -> bool:
                return wait_for(lambda: text in viewer.evaluate("window.events.clipboard"))

            def paste_at_machine(text: str) -> None:
                viewer.evaluate("(t) => window.rfb.clipboardPasteFrom(t)", text)
                assert wait_for(lambda: app.paste() == text)

            app.copy("Hei på deg, ÆØÅ – 100 € «sitat» “anført” ‘enkelt’")
            assert technician_sees("Hei på deg, ÆØÅ – 100 € «sitat» “anført” ‘enkelt’")
            paste_at_machine("Grüße fra teknikeren – 5 € ”ferdig”\nlinje to")
            # The application copies while the agent owns the clipboard (the agent gets
            # SelectionClear), then again: both copies reach the technician.
            app.copy("Første kopi – €")
            assert technician_sees("Første kopi – €")
            app.copy("Andre kopi — ‚lav‘ ’høy’")
            assert technician_sees("Andre kopi — ‚lav‘ ’høy’")
            paste_at_machine("Og tilbake igjen: ½ – ✓")
        assert all(e.applied for e in b.inputs if e.kind == "clipboard")
    finally:
        app.stop()
