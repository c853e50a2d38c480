"""Opaque cursors: a few values a list resumes from, as one URL-safe token."""

import base64
import binascii

from service.errors import InvalidInput

_NOT_OURS = "cursor is not one this service returned"


def encode_cursor(*values: object) -> str:
    return base64.urlsafe_b64encode(":".join(map(str, values)).encode()).decode()


def decode_cursor(cursor: str, count: int) -> list[str]:
    """The cursor's values as text; 422 unless it holds exactly `count` of them."""
    try:
        values = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(_NOT_OURS) from None
    if len(values) != count:
        raise InvalidInput(_NOT_OURS)
    return values


def encode_offset(offset: int) -> str:
    """For lists ordered by something a range query cannot resume from (text score, array order)."""
    return encode_cursor("offset", offset)


MAX_OFFSET = 2**31 - 1
"""The largest offset every store holds: MongoDB reads a `$slice` skip as a 32-bit int."""


def decode_offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    kind, raw = decode_cursor(cursor, 2)
    if kind != "offset" or not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_OFFSET:
        raise InvalidInput(_NOT_OURS)
    return int(raw)
