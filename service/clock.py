"""Time as the store keeps it: timezone-aware UTC, at MongoDB's millisecond precision."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def utc_now() -> datetime:
    return store_precision(datetime.now(UTC))


def store_precision(moment: datetime) -> datetime:
    """The moment cut to whole milliseconds, as MongoDB keeps it (so a stored value reads back equal)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _in_utc(moment: datetime) -> datetime:
    """A time a client sent, in UTC (naive: already UTC); one that UTC cannot hold (9999-12-31T23:00-05:00
    is in year 10000) is the client's mistake, not a failure in the store's encoder."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range in UTC") from None


UtcTime = Annotated[datetime, AfterValidator(_in_utc)]
"""A time given in a request: validated into UTC, as the store compares it."""
