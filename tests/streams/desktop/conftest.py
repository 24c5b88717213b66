"""Fixtures: a real Xvfb, the Tk test application on it, and the agent's VNC port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.desktop.agent import AgentPort
from tests.desktop.xvfb import EntryApp, Xvfb, xvfb


@pytest.fixture(scope="module")
def xserver() -> Iterator[Xvfb]:
    with xvfb(1280, 800) as server:
        yield server


@pytest.fixture
def entry_app(xserver: Xvfb, tmp_path: Path) -> Iterator[EntryApp]:
    app = EntryApp(xserver, tmp_path)
    yield app
    app.stop()


@pytest.fixture
def agent(xserver: Xvfb) -> Iterator[AgentPort]:
    port = AgentPort(xserver.display, view_only=False)
    yield port
    port.close()


@pytest.fixture
def view_only_agent(xserver: Xvfb) -> Iterator[AgentPort]:
    port = AgentPort(xserver.display, view_only=True)
    yield port
    port.close()
