"""The routes the matrix must cover: the operations of the OpenAPI document the app
serves, and every other route of its router (the pages, the documents, the sockets)."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIWebSocketRoute
from starlette.routing import Mount, Route

try:  # FastAPI 0.16x keeps included routers lazily; older versions list routes directly
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover
    iter_route_contexts = None  # type: ignore[assignment]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def from_openapi(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method.upper() in METHODS
    }


def from_router(app: Any) -> tuple[set[tuple[str, str]], set[str]]:
    """(method, path) of every HTTP and WebSocket route ("WS" for the latter), and the
    paths of the static mounts."""
    routes = list(iter_route_contexts(app.routes)) if iter_route_contexts else list(app.routes)
    found: set[tuple[str, str]] = set()
    mounts: set[str] = set()
    for route in routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, Mount):
            mounts.add(original.path)
        elif isinstance(original, APIWebSocketRoute):
            found.add(("WS", route.path))
        elif isinstance(original, Route) or hasattr(route, "methods"):
            for method in getattr(route, "methods", None) or ():
                if method in METHODS:
                    found.add((method, route.path))
    return found, mounts
