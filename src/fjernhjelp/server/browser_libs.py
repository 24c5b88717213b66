"""Browser libraries from the npm registry (package.json, installed by ``npm ci``),
served to the pages as ES modules, and the static files served with a module-safe type.

Only the folders a page loads are exposed: noVNC's ``core`` (with ``vendor`` for the
pako inflater that ``core`` imports relatively), xterm.js's ``lib`` and ``css``, and the
fit add-on's ``lib``. The libraries are never copied into the repository.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# The checkout's node_modules (make test runs npm ci there); a deployment can point
# FJERNHJELP_BROWSER_LIBS_DIR elsewhere.
DEFAULT_NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"

ROUTES: dict[str, str] = {
    "/vendor/novnc/core": "@novnc/novnc/core",
    "/vendor/novnc/vendor": "@novnc/novnc/vendor",
    "/vendor/xterm/lib": "@xterm/xterm/lib",
    "/vendor/xterm/css": "@xterm/xterm/css",
    "/vendor/xterm-addon-fit/lib": "@xterm/addon-fit/lib",
}

_MODULE_SUFFIXES = (".js", ".mjs")


class ModuleFiles(StaticFiles):
    """StaticFiles that always labels JavaScript ``text/javascript``: a browser refuses an
    ES module served with another type under ``X-Content-Type-Options: nosniff``, and
    Python's guess depends on the host's mime.types (``.mjs`` is often unknown)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if path.endswith(_MODULE_SUFFIXES) and response.status_code in (200, 304):
            response.headers["content-type"] = "text/javascript; charset=utf-8"
        return response


def mount(app: FastAPI, node_modules: Path | None = None) -> None:
    """Adds the read-only routes under /vendor. A folder that is not installed is left
    out (its URLs answer 404) rather than stopping the server: the console then says the
    viewer cannot load."""
    root = node_modules or DEFAULT_NODE_MODULES
    for prefix, folder in ROUTES.items():
        if (root / folder).is_dir():
            name = "vendor-" + folder.replace("/", "-").lstrip("@")
            app.mount(prefix, ModuleFiles(directory=root / folder), name=name)
