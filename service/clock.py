"""Time as the store keeps it: timezone-aware UTC, at MongoDB's millisecond precision."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    return store_precision(datetime.now(UTC))


def store_precision(moment: datetime) -> datetime:
    """The moment cut to whole milliseconds, as MongoDB keeps it (so a stored value reads back equal)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
