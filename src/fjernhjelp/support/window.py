"""Run one of the agent's window programs for the Support client.

``python -m fjernhjelp.support.window PROGRAM CACHE_DIR`` (from an installed package), or the
one-file client with ``--fjernhjelp-window PROGRAM CACHE_DIR``. The only difference from the
agent's own ``python -m fjernhjelp.agent.windows.PROGRAM``: before Tk starts, caches go to the
client's private folder (fontconfig writes ``$XDG_CACHE_HOME/fontconfig`` when the system's
cache is stale), so showing a window leaves nothing in the user's home.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def run(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: window PROGRAM CACHE_DIR", file=sys.stderr)
        return 2
    program, cache_dir = argv
    if not os.path.isdir(cache_dir):
        print(f"{cache_dir} is not a folder", file=sys.stderr)
        return 2
    os.environ["XDG_CACHE_HOME"] = cache_dir
    # Imported here, after the environment is set: the programs import tkinter.
    if program == "consent":
        from fjernhjelp.agent.windows import consent

        consent.main()
    elif program == "indicator":
        from fjernhjelp.agent.windows import indicator

        indicator.main()
    else:
        print(f"unknown window program {program!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
