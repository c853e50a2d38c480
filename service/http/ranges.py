"""HTTP Range requests (RFC 9110, section 14) for a file: one byte range of it, or all of it.

A header this service does not act on means the whole file (200), as the RFC lets a server
answer: another unit than bytes, a malformed or backwards range, several ranges (browsers ask for
one at a time; answering several would need a multipart body), or an `If-Range` that does not
name the file's current ETag. A range that starts past the end is refused (416).
"""

import re
from dataclasses import dataclass

from service.errors import RangeNotSatisfiable

_SINGLE_RANGE = re.compile(r"bytes=[ \t]*([0-9]*)-([0-9]*)[ \t]*", re.IGNORECASE)
_MAX_DIGITS = 18
"""Positions with more digits are past the end of any file, and `int()` need not read them."""
_PAST_ANY_FILE = 10**_MAX_DIGITS


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int
    """Exclusive."""

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def requested_range(range_header: str | None, if_range: str | None, etag: str, size: int) -> ByteRange | None:
    """The one range of a `size`-byte file the request asks for; None for the whole file."""
    if range_header is None or (if_range is not None and if_range.strip() != etag):
        return None
    match = _SINGLE_RANGE.fullmatch(range_header)
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = (_position(group) for group in match.groups())
    if first is None:
        return _suffix(last, size)
    if last is not None and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable(f"the range starts at byte {first}, past the end of the {size}-byte file", size)
    return ByteRange(first, size if last is None else min(last + 1, size))


def _suffix(length: int, size: int) -> ByteRange:
    """The last `length` bytes (`bytes=-500`)."""
    if length == 0 or size == 0:
        raise RangeNotSatisfiable(f"the range asks for the last {length} bytes of a {size}-byte file", size)
    return ByteRange(max(size - length, 0), size)


def _position(digits: str) -> int | None:
    if not digits:
        return None
    return int(digits) if len(digits) <= _MAX_DIGITS else _PAST_ANY_FILE
