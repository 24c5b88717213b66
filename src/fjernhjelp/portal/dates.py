"""Dates as people write them (a day in Norway) and instants as the database keeps them.

Agreements and grants end "on 31 December": that means the end of that day where the
organisation is, so a date turns into the next local midnight, in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Europe/Oslo"


def start_of_day(day: date, zone: str = DEFAULT_ZONE) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def end_of_day(day: date, zone: str = DEFAULT_ZONE) -> datetime:
    """The first instant after ``day`` (exclusive end): the next local midnight."""
    return start_of_day(day + timedelta(days=1), zone)


def local_day(instant: datetime, zone: str = DEFAULT_ZONE) -> date:
    return instant.astimezone(ZoneInfo(zone)).date()


def last_day(exclusive_end: datetime, zone: str = DEFAULT_ZONE) -> date:
    """The day shown for an exclusive end: the local day of the instant just before it."""
    return local_day(exclusive_end - timedelta(microseconds=1), zone)


def parse_day(value: str | None) -> date | None:
    """``YYYY-MM-DD`` from a form, or None for empty; ValueError for anything else."""
    value = (value or "").strip()
    if not value:
        return None
    return date.fromisoformat(value)
