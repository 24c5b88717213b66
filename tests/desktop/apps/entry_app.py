"""A small Tk application for desktop tests: an Entry and a Button.

Clicking the button writes the Entry's text (UTF-8) to the result file. Every key press
the application receives is appended to the key log as its keysym name, so a test can
see dead keys arrive. The window sits at the left with known geometry, below where the
agent's session indicator shows at the top of the screen, and prints "ready" once it is
mapped.

Run: python entry_app.py RESULT_FILE KEY_LOG
"""

from __future__ import annotations

import sys
import tkinter as tk
from pathlib import Path

TOP = 200  # the session indicator (at most about 150 pixels high) stays clear of it
ENTRY_CENTRE = (200, TOP + 40)
BUTTON_CENTRE = (200, TOP + 100)


def main() -> None:
    result, key_log = Path(sys.argv[1]), Path(sys.argv[2])
    root = tk.Tk()
    root.title("fjernhjelp test application")
    root.geometry(f"400x160+0+{TOP}")
    root.configure(background="#ffffff")
    entry = tk.Entry(root, font=("DejaVu Sans", 14), name="entry", insertofftime=0)
    entry.place(x=20, y=20, width=360, height=40)

    def save() -> None:
        result.write_text(entry.get(), encoding="utf-8")

    button = tk.Button(root, text="Lagre", command=save, name="save")
    button.place(x=140, y=80, width=120, height=40)

    def log_key(event: tk.Event) -> None:  # type: ignore[type-arg]
        with key_log.open("a", encoding="utf-8") as fh:
            fh.write(f"{event.keysym}\n")

    entry.bind("<KeyPress>", log_key, add=True)
    entry.focus_force()

    def ready() -> None:
        print("ready", flush=True)

    root.after(300, ready)
    root.mainloop()


if __name__ == "__main__":
    main()
