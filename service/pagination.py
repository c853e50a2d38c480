"""Opaque cursors: a few values a list resumes from, as one URL-safe token."""

import base64
import binascii
import re

from bson import ObjectId
from bson.errors import InvalidId

from service.errors import InvalidInput

MAX_PAGE_SIZE = 100
INT64_MAX = 2**63 - 1
MAX_OFFSET = INT64_MAX - (MAX_PAGE_SIZE + 1)
"""The store adds the page (limit + 1) to a skip, in 64 bits: no offset may overflow it."""
MAX_ARRAY_OFFSET = 2**31 - 1
"""MongoDB reads a `$slice` skip as a 32-bit int (a larger one wraps around); no array is that long."""

_NOT_OURS = "cursor is not one this service returned"
_INTEGER = re.compile(r"-?[0-9]{1,19}")


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


def decode_int(raw: str, low: int, high: int) -> int:
    """A cursor's integer, within [low, high]; else 422. ASCII digits only: `str.isdigit()` passes
    `²`, which `int()` then refuses, and `int()` itself takes spaces, underscores and other scripts'
    digits."""
    if not _INTEGER.fullmatch(raw):
        raise InvalidInput(_NOT_OURS)
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(_NOT_OURS)
    return value


def encode_offset(offset: int) -> str:
    """For lists ordered by something a range query cannot resume from (text score, array order)."""
    return encode_cursor("offset", offset)


def decode_offset(cursor: str | None, maximum: int = MAX_OFFSET) -> int:
    if cursor is None:
        return 0
    kind, raw = decode_cursor(cursor, 2)
    if kind != "offset":
        raise InvalidInput(_NOT_OURS)
    return decode_int(raw, 0, maximum)


def encode_id_cursor(last_id: ObjectId) -> str:
    """For lists ordered by `_id`, newest first: the last id of the page."""
    return encode_cursor(last_id)


def decode_id_cursor(cursor: str) -> ObjectId:
    (raw,) = decode_cursor(cursor, 1)
    try:
        return ObjectId(raw)
    except (InvalidId, TypeError):
        raise InvalidInput(_NOT_OURS) from None
