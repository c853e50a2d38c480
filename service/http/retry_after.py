"""The Retry-After header (RFC 9110 §10.2.3) of a peer's answer, as seconds to wait."""

import math
from email.utils import parsedate_to_datetime

from service.clock import utc_now


def retry_after_seconds(header: str | None) -> float | None:
    """The seconds a Retry-After value asks to wait, whether delay-seconds or an HTTP date (one
    already past is 0); None when there is none, or none that can be read: no number, not finite,
    a date with no zone."""
    if header is None:
        return None
    try:
        seconds = float(header)
    except ValueError:
        seconds = _seconds_until(header)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until(http_date: str) -> float | None:
    try:
        moment = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return (moment - utc_now()).total_seconds()
