"""Every fuzz target, by name (``python -m tests.fuzz --list``)."""

from __future__ import annotations

from tests.fuzz import (
    targets_control,
    targets_control_socket,
    targets_mux,
    targets_streams,
    targets_support,
    targets_tunnel,
    targets_ws,
)
from tests.fuzz.harness import Target

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        *targets_tunnel.TARGETS,
        targets_mux.TARGET,
        *targets_control.TARGETS,
        *targets_streams.TARGETS,
        *targets_support.TARGETS,
        *targets_ws.TARGETS,
        *targets_control_socket.TARGETS,
    )
}
