"""The consent dialog (Tk), run as ``python -m fjernhjelp.agent.windows.consent`` by
``agent.consent.ask_consent`` on the user's display.

It shows the texts it is given on stdin and reports what the user did on stdout: Allow,
Deny (also closing the window or Escape), or the countdown running out. It decides
nothing itself; the agent treats anything but an explicit Allow as a refusal.
"""

from __future__ import annotations

import tkinter as tk

from fjernhjelp.agent.windows import tkapp


def main() -> None:
    texts = tkapp.read_request()["texts"]
    root = tkapp.open_root(str(texts["title"]))
    answered = False

    # Optional permissions (Support's shell): tick boxes, off unless the user ticks them.
    ticks: dict[str, tk.BooleanVar] = {}

    def answer(allowed: bool) -> None:
        nonlocal answered
        if not answered:
            answered = True
            ticked = sorted(name for name, var in ticks.items() if var.get())
            tkapp.emit("answer", allowed=allowed, ticked=ticked if allowed else [])
            root.destroy()

    frame = tk.Frame(root, padx=24, pady=20)
    frame.pack()
    wrap = 460
    tk.Label(frame, text=texts["heading"], font=tkapp.BOLD, wraplength=wrap, justify="left").pack(
        anchor="w"
    )
    if texts.get("reason"):
        tk.Label(
            frame, text=texts["reason"], font=tkapp.FONT, wraplength=wrap, justify="left"
        ).pack(anchor="w", pady=(8, 0))
    tk.Label(frame, text=texts["asks"], font=tkapp.FONT).pack(anchor="w", pady=(12, 2))
    for item in texts["permissions"]:
        tk.Label(frame, text=f"  •  {item}", font=tkapp.FONT).pack(anchor="w")
    boxes: dict[str, tk.Widget] = {}
    if texts.get("optional"):
        tk.Label(frame, text=texts["optional_heading"], font=tkapp.FONT).pack(
            anchor="w", pady=(8, 2)
        )
        for item in texts["optional"]:
            var = tk.BooleanVar(root, value=False)
            box = tk.Checkbutton(frame, text=item["text"], variable=var, font=tkapp.FONT)
            box.pack(anchor="w")
            ticks[str(item["name"])] = var
            boxes[f"tick_{item['name']}"] = box
    if texts.get("sas"):
        # The words to compare with what the technician reads aloud (docs/tunnel.md §18).
        tk.Label(frame, text=texts["sas"], font=tkapp.BOLD, wraplength=wrap, justify="left").pack(
            anchor="w", pady=(12, 0)
        )
        if texts.get("sas_digits"):
            tk.Label(frame, text=texts["sas_digits"], font=tkapp.FONT).pack(anchor="w")
        tk.Label(
            frame, text=texts["sas_note"], font=tkapp.FONT, wraplength=wrap, justify="left"
        ).pack(anchor="w")
    tk.Label(frame, text=texts["note"], font=tkapp.FONT, wraplength=wrap, justify="left").pack(
        anchor="w", pady=(12, 0)
    )
    if texts.get("paused"):
        tk.Label(
            frame, text=texts["paused"], font=tkapp.FONT, wraplength=wrap, justify="left"
        ).pack(anchor="w", pady=(8, 0))
    countdown = tk.Label(frame, font=tkapp.FONT, fg="#8a1c1c")
    countdown.pack(anchor="w", pady=(8, 12))
    buttons = tk.Frame(frame)
    buttons.pack(fill="x")
    # Neither button is the default: Enter must not allow by accident.
    deny = tk.Button(buttons, text=texts["deny"], width=12, command=lambda: answer(False))
    allow = tk.Button(buttons, text=texts["allow"], width=12, command=lambda: answer(True))
    allow.pack(side="right")
    deny.pack(side="right", padx=(0, 12))
    root.protocol("WM_DELETE_WINDOW", lambda: answer(False))
    root.bind("<Escape>", lambda _e: answer(False))

    remaining = int(texts["seconds"])

    def tick() -> None:
        nonlocal remaining, answered
        if answered:
            return
        if remaining <= 0:
            answered = True
            tkapp.emit("timeout")
            root.destroy()
            return
        countdown.configure(text=str(texts["countdown"]).replace("{seconds}", str(remaining)))
        remaining -= 1
        root.after(1000, tick)

    tick()
    tkapp.centre(root)
    root.lift()
    root.focus_force()
    tkapp.report_shown(root, {"allow": allow, "deny": deny, **boxes})
    root.mainloop()


if __name__ == "__main__":
    main()
