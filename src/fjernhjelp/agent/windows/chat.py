"""The chat area of the session indicator window (Tk; loaded only in the indicator process).

Hidden until the technician writes; then it opens under the indicator bar with the
messages (who, local time, text), an entry and a Send button. A new message raises the
window and rings the bell, but never takes the keyboard focus: the user may be typing in
another program, and those keystrokes must not end up in a message to the technician.
The indicator stays on top, so the user can fold the chat away (a button in the bar) to
see their screen; the next message opens it again.
"""

from __future__ import annotations

import re
import time
import tkinter as tk
from typing import Any

from fjernhjelp.agent.windows import tkapp
from fjernhjelp.streams.chat.wire import MAX_TEXT

# Control and direction characters could fake lines or reorder what the user reads; new
# lines and tabs are the only ones a message keeps.
KEEP_LINES = 2000  # older lines go: a long (or flooding) chat must not grow without bound
_UNSHOWN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def shown_text(text: str) -> str:
    return _UNSHOWN.sub(" ", text[:MAX_TEXT]).strip()


class ChatArea:
    def __init__(self, root: tk.Tk, bar: tk.Frame, texts: dict[str, Any]) -> None:
        self.root = root
        self.texts = texts
        self.visible = False
        self.open = False
        # Packed into the bar once there is a chat; folds the chat area away and back.
        self.toggle = tk.Button(bar, text=texts["chat_hide"], command=self._toggle)
        self.frame = tk.Frame(root, padx=12, pady=8)
        tk.Label(self.frame, text=texts["chat_heading"], font=tkapp.BOLD).pack(anchor="w")
        logs = tk.Frame(self.frame)
        logs.pack(fill="both", expand=True, pady=(4, 6))
        self.log = tk.Text(
            logs, width=64, height=12, wrap="word", font=tkapp.FONT, state="disabled"
        )
        self.log.tag_configure("who", font=("DejaVu Sans", 10, "bold"), foreground="#444")
        scroll = tk.Scrollbar(logs, command=self.log.yview)
        self.log.configure(yscrollcommand=scroll.set)
        self.log.pack(side="left", fill="both", expand=True)
        scroll.pack(side="right", fill="y")
        row = tk.Frame(self.frame)
        row.pack(fill="x")
        self.entry = tk.Entry(row, font=tkapp.FONT)
        self.entry.pack(side="left", fill="x", expand=True, padx=(0, 8))
        self.entry.bind("<Return>", lambda _e: self.send())
        self.button = tk.Button(row, text=texts["chat_send"], command=self.send)
        self.button.pack(side="right")

    def technician_says(self, text: str) -> None:
        text = shown_text(text)
        if not text:
            return
        if not self.open:
            self.open = True
            self.entry.configure(state="normal")
            self.button.configure(state="normal")
        self._append(str(self.texts["technician"]), text)
        if not self.toggle.winfo_ismapped():
            self.toggle.pack(side="left", padx=(8, 0))
        if not self.visible:
            self._show()
        # Make sure the user notices: back from minimised, on top, and a bell.
        self.root.deiconify()
        self.root.lift()
        self.root.bell()

    def send(self) -> None:
        text = self.entry.get().strip()[:MAX_TEXT]
        if not text or not self.open:
            return
        tkapp.emit("chat", text=text)
        self._append(str(self.texts["chat_you"]), shown_text(text))
        self.entry.delete(0, "end")

    def closed(self) -> None:
        if self.open:
            self.open = False
            self._append(None, str(self.texts["chat_closed"]))
            self.entry.configure(state="disabled")
            self.button.configure(state="disabled")

    def _append(self, who: str | None, text: str) -> None:
        # The time is this machine's clock when the message arrived or was sent: the
        # console's own time stamp is another computer's word.
        self.log.configure(state="normal")
        if who is not None:
            self.log.insert("end", f"{who}  {time.strftime('%H:%M')}\n", "who")
        self.log.insert("end", text + "\n\n")
        lines = int(self.log.index("end-1c").split(".")[0])
        if lines > KEEP_LINES:
            self.log.delete("1.0", f"{lines - KEEP_LINES}.0")
        self.log.configure(state="disabled")
        self.log.see("end")

    def _toggle(self) -> None:
        if self.visible:
            self.visible = False
            self.frame.pack_forget()
            self.toggle.configure(text=self.texts["chat_show"])
            tkapp.centre(self.root, top=True)
        else:
            self._show()

    def _show(self) -> None:
        self.visible = True
        self.toggle.configure(text=self.texts["chat_hide"])
        self.frame.pack(fill="both", expand=True)
        tkapp.centre(self.root, top=True)
        self.root.update()
        log = self.log
        x, y = log.winfo_rootx(), log.winfo_rooty()
        width, height = log.winfo_width(), log.winfo_height()
        points = {
            "chat_log_start": [x + 4, y + 4],
            "chat_log_end": [x + width - 6, y + height - 6],
            "chat_entry": _centre(self.entry),
            "chat_send": _centre(self.button),
            "chat_toggle": _centre(self.toggle),
        }
        # Where the chat is (for the agent log and tests), as report_shown does for buttons.
        tkapp.emit("chat_shown", window=self.root.winfo_id(), buttons=points)


def _centre(widget: tk.Widget) -> list[int]:
    return [
        widget.winfo_rootx() + widget.winfo_width() // 2,
        widget.winfo_rooty() + widget.winfo_height() // 2,
    ]
