"""One viewer's RFB connection (``DesktopViewer``): reads client messages, sends screen updates.

The event loop thread reads the client and injects input; one worker thread owns the
screen (capture, change detection, encoding), so a large update never delays a key
press. Updates follow RFB's pull model: one FramebufferUpdate per request, sent as soon
as something in the requested area changed (never, for a still screen).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np

from fjernhjelp.agent.inputhold import HOLD, InputHold
from fjernhjelp.streams.desktop import damage, extclip, rfb
from fjernhjelp.streams.desktop.capture import Screen
from fjernhjelp.streams.desktop.encoders import PIXEL_ENCODERS, RawEncoder
from fjernhjelp.streams.desktop.encoders.base import EncodedRect, Encoder, Rect, Settings
from fjernhjelp.streams.desktop.encoders.copyrect import copy_rect
from fjernhjelp.streams.desktop.encoders.cursor import encode_cursor
from fjernhjelp.streams.desktop.encoders.desktopsize import (
    REASON_CLIENT,
    STATUS_PROHIBITED,
    desktop_size,
    extended_desktop_size,
)
from fjernhjelp.streams.desktop.input import InputInjector
from fjernhjelp.streams.desktop.pixels import NATIVE, PixelFormat
from fjernhjelp.streams.desktop.rfb import Encoding
from fjernhjelp.streams.desktop.sessionclip import SessionClipboard
from fjernhjelp.streams.desktop.transport import ByteStream, StreamClosed

log = logging.getLogger(__name__)
T = TypeVar("T")

FRAME_INTERVAL = 1 / 30  # how often a pending request looks for changes
IDLE_INTERVAL = 1 / 10  # after IDLE_AFTER seconds without changes or input
IDLE_AFTER = 2.0
# Right after input the application is about to redraw: look again soon, so a key press
# shows as soon as it is drawn. DAMAGE makes each look cheap (no capture if nothing moved).
EAGER_INTERVAL = 1 / 200
EAGER_FOR = 0.15
HANDSHAKE_TIMEOUT = 30.0  # a viewer that says nothing does not hold the display open


@dataclass(frozen=True, slots=True)
class InputEvent:
    """What the viewer sent; ``applied`` is False when the session ignored it, ``held``
    True when it was dropped because a consent dialog is open (see ``inputhold``)."""

    kind: Literal["key", "pointer", "clipboard"]
    applied: bool
    held: bool = False


_INPUT_KINDS: dict[type, Literal["key", "pointer", "clipboard"]] = {
    rfb.KeyEvent: "key",
    rfb.PointerEvent: "pointer",
    rfb.CutText: "clipboard",
}


@dataclass(slots=True)
class _Request:
    incremental: bool
    area: Rect

    def merge(self, other: _Request) -> _Request:
        a, b = self.area, other.area
        x0, y0 = min(a.x, b.x), min(a.y, b.y)
        x1 = max(a.x + a.width, b.x + b.width)
        y1 = max(a.y + a.height, b.y + b.height)
        return _Request(self.incremental and other.incremental, Rect(x0, y0, x1 - x0, y1 - y0))


@dataclass(slots=True)
class _Job:
    """A snapshot of the client's wishes, handed to the worker thread."""

    request: _Request
    settings: Settings
    encoder: Encoder
    encodings: frozenset[int]
    refused_resizes: int


@dataclass(slots=True)
class _ScreenState:
    """Owned by the worker thread."""

    screen: Screen
    model: np.ndarray | None = None  # what the viewer has (true pixels, even where JPEG)
    size: tuple[int, int] = (0, 0)
    cursor_serial: int | None = None
    announced: bool = False
    pending: Rect | None = None  # reported damage not yet compared with the model
    stats: dict[str, int] = field(default_factory=lambda: {"updates": 0, "bytes": 0, "copyrect": 0})


class DesktopViewer:
    """One viewer's RFB connection to the X display, from handshake to goodbye."""

    def __init__(
        self,
        stream: ByteStream,
        *,
        display: str,
        view_only: bool,
        share_clipboard: bool = False,
        on_input: Callable[[InputEvent], None] | None = None,
        name: str = "fjernhjelp",
        hold: InputHold = HOLD,
    ) -> None:
        self._stream = stream
        self._hold = hold
        self._unhold: Callable[[], None] | None = None
        self._display = display
        self.view_only = view_only
        # The clipboard is its own permission, and never part of a view-only session.
        self.shares_clipboard = share_clipboard and not view_only
        self._on_input = on_input
        self._name = name
        self._format: PixelFormat = NATIVE
        self._encodings: tuple[int, ...] = (Encoding.RAW,)
        self._encoders: dict[int, Encoder] = {}
        self._request: _Request | None = None
        self._requested = asyncio.Event()
        self._wake = asyncio.Event()
        self._refused_resizes = 0
        self._last_activity = time.monotonic()
        self._last_input = 0.0
        self._write_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="desktop-screen")
        self._state: _ScreenState | None = None
        self._injector: InputInjector | None = None
        self._clipboard: SessionClipboard | None = None

    @property
    def clipboard_extended(self) -> bool:
        """The viewer asked for the extended (UTF-8) clipboard and was sent the caps."""
        return self._clipboard is not None and self._clipboard.extended

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._state.stats) if self._state else {}

    async def _worker(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self) -> None:
        """Serve until the viewer leaves or breaks the protocol; always cleans up."""
        loop = asyncio.get_running_loop()
        try:
            screen = await self._worker(Screen, self._display)
            self._state = _ScreenState(screen, size=screen.size)
            if not self.view_only:
                # A view-only session never opens XTest: no code path can inject input.
                self._injector = InputInjector(self._display)
                self._unhold = self._hold.subscribe(self._on_hold)
            if self.shares_clipboard:
                # Without the permission no X clipboard connection exists at all.
                self._clipboard = SessionClipboard(self._display, loop)
                self._clipboard.start()
            width, height = screen.size
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                    await rfb.handshake(self._stream, width, height, self._name)
            except TimeoutError:
                raise rfb.ProtocolError("no handshake from the viewer") from None
            await self._serve()
        except rfb.ProtocolError as exc:
            log.warning("desktop session closed: %s", exc.reason)
        except StreamClosed:
            log.info("desktop viewer left")
        finally:
            await self._cleanup()

    async def _serve(self) -> None:
        tasks = [
            asyncio.create_task(self._read_loop(), name="desktop-read"),
            asyncio.create_task(self._update_loop(), name="desktop-update"),
        ]
        if self._clipboard is not None:
            tasks.append(asyncio.create_task(self._clipboard_loop(), name="desktop-clipboard"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise what ended the session
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, rfb.ProtocolError, StreamClosed):
                    await task

    async def _cleanup(self) -> None:
        if self._unhold is not None:
            self._unhold()
        if self._injector is not None:
            with contextlib.suppress(Exception):
                self._injector.release_all()
            try:
                # The keys typed last may still wait in an application's queue.
                await asyncio.sleep(self._injector.keymap_grace())
            finally:
                with contextlib.suppress(Exception):
                    self._injector.close()  # restores the keymap
        if self._clipboard is not None:
            self._clipboard.close()
        if self._state is not None:
            with contextlib.suppress(Exception):
                await self._worker(self._state.screen.close)
        self._executor.shutdown(wait=False)
        with contextlib.suppress(Exception):
            await self._stream.close()

    # -- from the viewer ------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            message = await rfb.read_message(self._stream)
            self._handle(message)

    def _handle(self, message: rfb.Message) -> None:
        if isinstance(message, rfb.SetPixelFormat):
            self._format = message.format
        elif isinstance(message, rfb.SetEncodings):
            self._encodings = message.encodings
            if self._clipboard is not None:
                self._clipboard.encodings(message.encodings)
        elif isinstance(message, rfb.UpdateRequest):
            area = Rect(message.x, message.y, message.width, message.height)
            request = _Request(message.incremental, area)
            self._request = request if self._request is None else self._request.merge(request)
            self._requested.set()
            self._wake.set()
        elif self._hold.held and (
            type(message) in _INPUT_KINDS
            or (
                isinstance(message, extclip.ExtendedMessage)
                and message.action == extclip.PROVIDE
            )
        ):
            # A consent dialog is open: nothing from any viewer reaches the screen, its
            # clipboard included (the viewer's other clipboard messages ask, not give).
            if self._on_input is not None:
                kind = _INPUT_KINDS.get(type(message), "clipboard")
                self._on_input(InputEvent(kind, False, held=True))
        elif isinstance(message, rfb.KeyEvent):
            if self._injector is not None:
                self._injector.key(message.down, message.keysym)
            self._input("key")
        elif isinstance(message, rfb.PointerEvent):
            if self._injector is not None:
                self._injector.pointer(message.buttons, message.x, message.y)
            self._input("pointer")
        elif isinstance(message, rfb.CutText):
            if self._clipboard is not None:
                self._clipboard.plain_text(message.text)
            self._report("clipboard", self._clipboard is not None)
        elif isinstance(message, extclip.ExtendedMessage):
            self._extended_clipboard(message)
        elif isinstance(message, rfb.SetDesktopSize):
            # The customer's screen is not resized from afar; the next update says so.
            self._refused_resizes += 1

    def _extended_clipboard(self, message: extclip.ExtendedMessage) -> None:
        if self._clipboard is None or not self._clipboard.extended:
            if self._clipboard is None:
                self._report("clipboard", False)
            raise rfb.ProtocolError("extended clipboard message without negotiation")
        try:
            if self._clipboard.extended_message(message):
                self._report("clipboard", True)
        except extclip.BadExtendedClipboard as exc:
            raise rfb.ProtocolError(f"extended clipboard: {exc.reason}") from None

    def _on_hold(self, held: bool) -> None:
        # Let go of whatever the technician holds down, so no key or button pressed
        # before the dialog appeared acts on it (a held Tab would walk to Allow).
        if held and self._injector is not None:
            with contextlib.suppress(Exception):
                self._injector.release_all()

    def _input(self, kind: Literal["key", "pointer"]) -> None:
        self._report(kind, self._injector is not None)
        if self._injector is not None:
            self._last_activity = self._last_input = time.monotonic()
            self._wake.set()  # look for the effect at once

    def _report(self, kind: Literal["key", "pointer", "clipboard"], applied: bool) -> None:
        if self._on_input is not None:
            self._on_input(InputEvent(kind, applied))

    # -- to the viewer --------------------------------------------------------------

    async def _clipboard_loop(self) -> None:
        assert self._clipboard is not None
        while True:
            message = await self._clipboard.outgoing.get()
            async with self._write_lock:
                await self._stream.write(message)

    def _settings(self) -> tuple[Settings, Encoder, frozenset[int]]:
        quality = None
        compression = 2
        for number in self._encodings:
            if Encoding.JPEG_QUALITY_0 <= number <= Encoding.JPEG_QUALITY_0 + 9 and quality is None:
                quality = number - Encoding.JPEG_QUALITY_0
            if Encoding.COMPRESS_LEVEL_0 <= number <= Encoding.COMPRESS_LEVEL_0 + 9:
                compression = number - Encoding.COMPRESS_LEVEL_0
        chosen = next((n for n in self._encodings if n in PIXEL_ENCODERS), Encoding.RAW)
        encoder = self._encoders.get(chosen)
        if encoder is None:
            # Kept for the whole connection: the viewer's zlib streams continue across updates.
            encoder = self._encoders[chosen] = PIXEL_ENCODERS.get(chosen, RawEncoder)()
        return Settings(self._format, quality, compression), encoder, frozenset(self._encodings)

    async def _update_loop(self) -> None:
        while True:
            await self._requested.wait()
            request, self._request = self._request, None
            self._requested.clear()
            if request is None:
                continue
            settings, encoder, encodings = self._settings()
            refused, self._refused_resizes = self._refused_resizes, 0
            self._wake.clear()
            job = _Job(request, settings, encoder, encodings, refused)
            payload = await self._worker(self._prepare, job)
            if payload is not None:
                self._last_activity = time.monotonic()
                async with self._write_lock:
                    await self._stream.write(payload)
                continue
            # Nothing changed: the request stays pending until something does.
            self._request = request if self._request is None else request.merge(self._request)
            now = time.monotonic()
            if now - self._last_input < EAGER_FOR:
                interval = EAGER_INTERVAL
            elif now - self._last_activity > IDLE_AFTER:
                interval = IDLE_INTERVAL
            else:
                interval = FRAME_INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._requested.set()

    def _prepare(self, job: _Job) -> bytes | None:
        """Worker thread: the next FramebufferUpdate for ``job``, or None if nothing changed."""
        state = self._state
        assert state is not None
        rects: list[EncodedRect] = []
        encodings = job.encodings
        full = not job.request.incremental
        if state.screen.refresh_size() or not state.announced:
            width, height = state.size = state.screen.size
            if Encoding.EXTENDED_DESKTOP_SIZE in encodings:
                rects.append(extended_desktop_size(width, height))
            elif Encoding.DESKTOP_SIZE in encodings:
                rects.append(desktop_size(width, height))
            elif state.announced:
                raise rfb.ProtocolError("the screen size changed and the viewer cannot follow")
            if state.announced:
                state.model = None
            state.announced = True
        for _ in range(job.refused_resizes):
            rects.append(extended_desktop_size(*state.size, REASON_CLIENT, STATUS_PROHIBITED))
        state.pending = damage.union(state.pending, state.screen.damaged())
        if Encoding.CURSOR in encodings and (
            state.screen.cursor_changed or state.cursor_serial is None
        ):
            cursor = state.screen.cursor()
            serial = cursor.serial if cursor is not None else -1
            if serial != state.cursor_serial:
                state.cursor_serial = serial
                rects.append(encode_cursor(cursor, job.settings))
        width, height = state.size
        area = damage.clip(job.request.area, Rect(0, 0, width, height))
        if area is not None and (full or state.model is None or state.pending is not None):
            partial = None if full or state.model is None else state.pending
            frame = state.screen.grab(partial)
            if state.model is None:
                state.model = np.zeros_like(frame)
                area, full = Rect(0, 0, width, height), True
            rects.extend(self._changes(state, frame, area, full, job))
            if state.pending is not None and damage.covers(area, state.pending):
                state.pending = None
        if not rects:
            return None
        state.stats["updates"] += 1
        payload = rfb.update_header(len(rects)) + b"".join(r.to_bytes() for r in rects)
        state.stats["bytes"] += len(payload)
        return payload

    def _changes(
        self, state: _ScreenState, frame: np.ndarray, area: Rect, full: bool, job: _Job
    ) -> list[EncodedRect]:
        model = state.model
        assert model is not None
        height, width = frame.shape[:2]
        out: list[EncodedRect] = []
        if full:
            todo = [area]
        else:
            grid = damage.dirty_tiles(model, frame, state.pending)
            if not grid.any():
                return []
            box = damage.bounding_box(grid, width, height)
            box = damage.clip(box, area) if box is not None else None
            if Encoding.COPY_RECT in job.encodings and box is not None:
                scroll = damage.find_scroll(model, frame, box)
                if scroll is not None:
                    dest = scroll.dest
                    source = model[
                        scroll.src_y : scroll.src_y + dest.height, dest.x : dest.x + dest.width
                    ]
                    model[dest.y : dest.y + dest.height, dest.x : dest.x + dest.width] = (
                        source.copy()
                    )
                    out.append(copy_rect(dest, dest.x, scroll.src_y))
                    state.stats["copyrect"] += 1
                    damage.after_copy(grid, model, frame, dest)
            todo = []
            for rect in damage.tiles_to_rects(grid, width, height):
                clipped = damage.clip(rect, area)
                if clipped is not None:
                    todo.append(clipped)
        for rect in todo:
            out.extend(job.encoder.encode(frame, rect, job.settings))
            model[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = rect.slice(frame)
        return out
