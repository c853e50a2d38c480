"""Time as the store keeps it: timezone-aware UTC, at MongoDB's millisecond precision."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
