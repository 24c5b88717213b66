"""What the dialog programs share: the request on stdin, events on stdout, a Tk root.

Imported only inside the dialog processes (it imports tkinter); the agent never loads it.
"""

from __future__ import annotations

import json
import os
import sys
import tkinter as tk
from collections.abc import Callable
from typing import Any

NO_DISPLAY_EXIT = 3
FONT = ("DejaVu Sans", 11)
BOLD = ("DejaVu Sans", 12, "bold")
MAX_COMMAND = 64 * 1024

OnCommand = Callable[[dict[str, Any]], None]


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def read_request() -> dict[str, Any]:
    line = sys.stdin.buffer.readline(256 * 1024)
    request = json.loads(line)
    if not isinstance(request, dict):
        raise SystemExit("the request must be a JSON object")
    return request


def open_root(title: str) -> tk.Tk:
    """The Tk root on $DISPLAY; reports ``no_display`` and exits if it cannot be opened."""
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        emit("error", reason="no_display", detail=str(exc)[:200])
        raise SystemExit(NO_DISPLAY_EXIT) from exc
    _set_title(root, title)
    root.attributes("-topmost", True)
    root.resizable(False, False)
    _listen_to_parent(root)
    return root


def _set_title(root: tk.Tk, title: str) -> None:
    """Tk writes a title twice: _NET_WM_NAME in UTF-8, and WM_NAME, whose type STRING is
    Latin-1 by ICCCM, in Tcl's system encoding: UTF-8 under a UTF-8 locale, so "økt
    pågår" read as "Ã¸kt pÃ¥gÃ¥r" wherever WM_NAME is used (task bars, and window
    managers that fall back to it while the window changes size as the chat opens).
    Tk writes WM_NAME when the window is first mapped, so the system encoding is Latin-1
    until then; characters outside Latin-1 become "?" there and stay whole in
    _NET_WM_NAME."""
    system = root.tk.call("encoding", "system")
    root.tk.call("encoding", "system", "iso8859-1")
    root.title(title)

    def mapped(event: tk.Event) -> None:
        if event.widget is not root:
            return  # a child's map comes first; the toplevel's is the one Tk titles
        root.tk.call("encoding", "system", system)
        root.unbind("<Map>", binding)

    binding = root.bind("<Map>", mapped, add=True)


_on_command: OnCommand | None = None


def listen(on_command: OnCommand) -> None:
    """``on_command`` gets each further JSON object line the parent writes (the
    indicator's chat); until it is set, such lines are ignored."""
    global _on_command
    _on_command = on_command


def _listen_to_parent(root: tk.Tk) -> None:
    # stdin stays open as long as the agent wants the dialog; EOF means it is gone.
    fd = sys.stdin.fileno()
    pending = bytearray()

    def readable(_fd: int, _mask: int) -> None:
        chunk = os.read(fd, 64 * 1024)
        if not chunk:
            root.tk.deletefilehandler(fd)
            root.destroy()
            return
        pending.extend(chunk)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            _dispatch(line)
        if len(pending) > MAX_COMMAND:
            pending.clear()  # no line is this long; drop it rather than grow

    root.tk.createfilehandler(fd, tk.READABLE, readable)


def _dispatch(line: bytes) -> None:
    if _on_command is None:
        return
    try:
        command = json.loads(line)
    except ValueError:
        return
    if isinstance(command, dict):
        _on_command(command)


def centre(root: tk.Tk, *, top: bool = False) -> None:
    root.update_idletasks()
    width, height = root.winfo_reqwidth(), root.winfo_reqheight()
    x = (root.winfo_screenwidth() - width) // 2
    y = 16 if top else (root.winfo_screenheight() - height) // 3
    root.geometry(f"+{x}+{y}")


def report_shown(root: tk.Tk, buttons: dict[str, tk.Widget]) -> None:
    """Tell the parent where the window and its buttons are, once they are mapped."""
    root.wait_visibility()
    root.update()
    centres = {
        name: [
            button.winfo_rootx() + button.winfo_width() // 2,
            button.winfo_rooty() + button.winfo_height() // 2,
        ]
        for name, button in buttons.items()
    }
    emit("shown", window=root.winfo_id(), buttons=centres)
