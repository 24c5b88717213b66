"""The session indicator window (Tk), run as ``python -m fjernhjelp.agent.windows.indicator``
by ``agent.indicator.SessionIndicator`` on the user's display.

A bar that stays on top while a technician is connected, with "End session" and the
chat area (``windows.chat``). It reports the end and the user's chat replies on stdout
and takes the technician's messages and the "paused" notice as commands on stdin.
"""

from __future__ import annotations

import tkinter as tk

from fjernhjelp.agent.windows import tkapp
from fjernhjelp.agent.windows.chat import ChatArea


def main() -> None:
    texts = tkapp.read_request()["texts"]
    root = tkapp.open_root(str(texts["title"]))
    finished = False

    def end(by: str) -> None:
        nonlocal finished
        if not finished:
            finished = True
            tkapp.emit("end", by=by)
            root.destroy()

    bar = tk.Frame(root, bg="#8a1c1c")
    bar.pack(fill="x")
    frame = tk.Frame(bar, bg="#8a1c1c", padx=14, pady=8)
    frame.pack()
    tk.Label(frame, text=texts["connected"], font=tkapp.BOLD, fg="white", bg="#8a1c1c").pack(
        side="left", padx=(0, 16)
    )
    button = tk.Button(frame, text=texts["end_session"], command=lambda: end("end_button"))
    button.pack(side="left")
    if texts.get("may"):
        # Wrapped to the width of the line above: the indicator covers no more of the
        # user's screen sideways than it did without this line.
        root.update_idletasks()
        wrap = max(frame.winfo_reqwidth() - 28, 200)
        tk.Label(bar, text=texts["may"], fg="white", bg="#8a1c1c", wraplength=wrap).pack(
            padx=14, pady=(0, 8)
        )
    root.protocol("WM_DELETE_WINDOW", lambda: end("window_closed"))
    chat = ChatArea(root, frame, texts)
    paused = tk.Label(root, text=texts.get("paused", ""), font=tkapp.FONT, fg="#8a1c1c")

    def command(cmd: dict[str, object]) -> None:
        if cmd.get("cmd") == "chat_message" and isinstance(cmd.get("text"), str):
            chat.technician_says(str(cmd["text"]))
        elif cmd.get("cmd") == "chat_closed":
            chat.closed()
        elif cmd.get("cmd") == "paused":
            if cmd.get("on") is True:
                paused.pack(after=bar, fill="x", padx=14, pady=6)
            else:
                paused.pack_forget()

    tkapp.listen(command)

    def stay_on_top() -> None:
        # Some window managers drop -topmost after a full-screen window; ask again.
        root.attributes("-topmost", True)
        root.lift()
        root.after(2000, stay_on_top)

    tkapp.centre(root, top=True)
    stay_on_top()
    tkapp.report_shown(root, {"end_session": button})
    root.mainloop()


if __name__ == "__main__":
    main()
