"""The process log never holds a usable one-time enrolment link."""

from __future__ import annotations

import logging

from fjernhjelp.logs import RedactEnrolmentLinks

TOKEN = "KFh5B-1DprSE7ELZe1fY_OKI-57sVpkou5qBkTQoOqU"


def test_enrolment_tokens_are_redacted_from_access_log_lines() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/enroll/{TOKEN}", "1.1", 200),
        None,
    )
    assert RedactEnrolmentLinks().filter(record)
    line = record.getMessage()
    assert TOKEN not in line and "/enroll/[redacted]" in line


def test_other_lines_are_untouched() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "GET %s", ("/portal/grants?x=1",), None
    )
    RedactEnrolmentLinks().filter(record)
    assert record.getMessage() == "GET /portal/grants?x=1"
