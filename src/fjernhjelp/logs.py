"""Process logging: to stderr, a file or syslog, chosen in the settings.

Nothing here ever formats a request body; handlers log ids and outcomes, not values,
so a password or code cannot end up in a log line.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys

from fjernhjelp.config import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(settings: Settings) -> None:
    handler: logging.Handler
    if settings.log_destination == "file":
        path = settings.log_file or settings.data_dir / "fjernhjelp.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(path)
    elif settings.log_destination == "syslog":
        handler = logging.handlers.SysLogHandler(address="/dev/log")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def uvicorn_log_config() -> dict[str, object]:
    # Let uvicorn's loggers propagate to the root handler configured above. Its access
    # log prints the path and query string only; no handler puts secrets in a query.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"level": "INFO", "propagate": True},
            "uvicorn.error": {"level": "INFO", "propagate": True},
            "uvicorn.access": {"level": "INFO", "propagate": True},
        },
    }
