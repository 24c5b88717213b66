"""Process logging: to stderr, a file or syslog, chosen in the settings.

Nothing here ever formats a request body; handlers log ids and outcomes, not values,
so a password or code cannot end up in a log line.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys

from fjernhjelp.config import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# A one-time enrolment link is a credential until it is used, and so is a Support code in
# the link the technician sends (/s/{code}); the access log would otherwise write them
# down with every request path.
_ENROL_TOKEN = re.compile(r"(/enroll/|/s/)[^\s?\"]+")


class RedactEnrolmentLinks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _ENROL_TOKEN.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _ENROL_TOKEN.sub(r"\1[redacted]", record.msg)
        return True


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
    handler.addFilter(RedactEnrolmentLinks())
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
