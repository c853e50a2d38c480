"""Opaque offset cursors, for lists ordered by something a range query cannot resume from."""

import base64
import binascii

from service.errors import InvalidInput


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        kind, raw = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        offset = int(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this service returned") from None
    if kind != "offset" or offset < 0:
        raise InvalidInput("cursor is not one this service returned")
    return offset
