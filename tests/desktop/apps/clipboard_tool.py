"""Tk as an independent X clipboard program for tests.

``clipboard_tool.py get``: print the CLIPBOARD text (UTF-8) and exit (empty if none).
``clipboard_tool.py own TEXT``: own CLIPBOARD with TEXT, print "ready", and stay until
killed, as a program that copied something does.
``clipboard_tool.py serve``: an application the test drives, one JSON line at a time on
stdin: ``{"copy": TEXT}`` copies (answered ``{"copied": TEXT}``), ``{"paste": true}``
reads the clipboard as a paste would (answered ``{"pasted": TEXT}``).
"""

from __future__ import annotations

import json
import sys
import tkinter as tk


def paste(root: tk.Tk) -> str:
    try:
        return root.clipboard_get()
    except tk.TclError:
        return ""


def copy(root: tk.Tk, text: str) -> None:
    # Like an editor's Copy, each copy takes the selection anew (Tk alone would keep
    # an ownership it still holds and only swap the text, which X announces to nobody).
    root.tk.call("selection", "clear", "-selection", "CLIPBOARD")
    root.clipboard_clear()
    root.clipboard_append(text)
    root.update()


def serve(root: tk.Tk) -> None:
    def command(*_args: object) -> None:
        line = sys.stdin.readline()
        if not line:
            root.destroy()
            return
        wanted = json.loads(line)
        if "copy" in wanted:
            copy(root, wanted["copy"])
            answer = {"copied": wanted["copy"]}
        else:
            answer = {"pasted": paste(root)}
        print(json.dumps(answer), flush=True)

    root.tk.createfilehandler(sys.stdin, tk.READABLE, command)
    print(json.dumps({"ready": True}), flush=True)
    root.mainloop()


def main() -> None:
    root = tk.Tk()
    root.withdraw()
    if sys.argv[1] == "get":
        sys.stdout.buffer.write(paste(root).encode("utf-8"))
        return
    if sys.argv[1] == "serve":
        serve(root)
        return
    root.clipboard_clear()
    root.clipboard_append(sys.argv[2])
    root.update()
    print("ready", flush=True)
    root.mainloop()


if __name__ == "__main__":
    main()
