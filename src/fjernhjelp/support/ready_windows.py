"""The client's windows started ahead, while it waits for the technician.

A window program is a Python of its own that loads Tk before it can show anything; in
the one-file build that is a frozen interpreter starting from the bundle, a few seconds on
a slow machine (docs/BENCHMARKS.md, "Support session start"). The end user waits for
both: the consent dialog once the technician connects, the indicator once they allow.
So both programs are launched as soon as the client has joined, each loaded and waiting
on its stdin for what to show (agent.display.launch_dialog); the session takes them when
it needs them (agent.remote_session.SupportTerms.ready) and starts a fresh one only if
one has gone away. Those never taken are stopped when the session ends: nothing is left
running.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable

from fjernhjelp.agent.display import DialogProcess, DisplayTarget, launch_dialog

_log = logging.getLogger(__name__)

# The programs the Support client shows, in the order the session needs them.
PROGRAMS = ("consent", "indicator")


class ReadyWindows:
    def __init__(self) -> None:
        self._ready: dict[str, DialogProcess] = {}

    async def launch(
        self,
        display: DisplayTarget | None,
        argv_for: Callable[[str], list[str] | None],
        programs: Iterable[str] = PROGRAMS,
    ) -> None:
        """Start each program that has a command of its own; a failure to start one only
        means the session starts it when it needs it, as before."""
        if display is None:
            return
        for program in programs:
            argv = argv_for(program)
            if argv is None or program in self._ready:
                continue
            try:
                self._ready[program] = await launch_dialog(program, display, argv=argv)
            except OSError as exc:
                _log.info("could not start the %s window ahead: %s", program, exc)

    def take(self, program: str) -> DialogProcess | None:
        """The program launched ahead, once; None if there is none (start it then)."""
        return self._ready.pop(program, None)

    async def close(self) -> None:
        """Stop every program nobody took (closing its stdin ends it; then terminate)."""
        ready, self._ready = list(self._ready.values()), {}
        for dialog in ready:
            with contextlib.suppress(Exception):
                await dialog.stop()
