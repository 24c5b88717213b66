"""Tk as an independent X clipboard program for tests.

``clipboard_tool.py get``: print the CLIPBOARD text (UTF-8) and exit (empty if none).
``clipboard_tool.py own TEXT``: own CLIPBOARD with TEXT, print "ready", and stay until
killed, as a program that copied something does.
"""

from __future__ import annotations

import sys
import tkinter as tk


def main() -> None:
    root = tk.Tk()
    root.withdraw()
    if sys.argv[1] == "get":
        try:
            text = root.clipboard_get()
        except tk.TclError:
            text = ""
        sys.stdout.buffer.write(text.encode("utf-8"))
        return
    root.clipboard_clear()
    root.clipboard_append(sys.argv[2])
    root.update()
    print("ready", flush=True)
    root.mainloop()


if __name__ == "__main__":
    main()
