"""The agent's desktop service on a loopback VNC port, in a background event loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from fjernhjelp.streams.desktop.service import listen_tcp


class AgentPort:
    """The desktop service on a loopback TCP port, in a background event loop."""

    def __init__(self, display: str, view_only: bool, clipboard: bool | None = None) -> None:
        share = not view_only if clipboard is None else clipboard
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        future: Future[asyncio.Server] = asyncio.run_coroutine_threadsafe(
            listen_tcp("127.0.0.1", 0, display=display, view_only=view_only, share_clipboard=share),
            self._loop,
        )
        self._server = future.result(20)
        self.port: int = self._server.sockets[0].getsockname()[1]

    def run(self, coro: object, timeout: float = 60) -> object:
        """Run a coroutine (a test's client) on the agent's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()
            # Sessions whose viewer has gone finish their cleanup before the loop stops.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=10)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
