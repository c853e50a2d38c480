"""Durable files of the embedded store: an append-only journal and an atomic snapshot.

Both hold the same kind of record, a framed BSON document:
4 bytes little-endian length, 4 bytes CRC-32 of the body, then the BSON body.
A record names a collection and carries either the whole new document (`put`) or the
`_id` of a deleted one (`del`), so replaying a record twice gives the same state.
A torn tail (a write cut short by a crash, never acknowledged) fails its length or CRC
check and is cut off at start-up.
"""

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import bson

_HEADER = struct.Struct("<II")


def encode_record(record: dict[str, Any]) -> bytes:
    body = bson.encode(record)
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every whole record in the file, and the byte offset where the valid part ends."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        body = data[offset + _HEADER.size : offset + _HEADER.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            break
        records.append(bson.decode(body))
        offset += _HEADER.size + length
    return records, offset


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The append-only log; `append` returns only once the records are on disk."""

    def __init__(self, path: Path, valid_length: int) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "ab")
        self._file.truncate(valid_length)
        self._file.seek(valid_length)

    @property
    def size(self) -> int:
        return self._file.tell()

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        payload = b"".join(encode_record(record) for record in records)
        if not payload:
            return
        self._file.write(payload)
        self._file.flush()
        os.fsync(self._file.fileno())

    def reset(self) -> None:
        self._file.truncate(0)
        self._file.seek(0)
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def write_snapshot(path: Path, records: Iterator[dict[str, Any]]) -> None:
    """Write all records to a temporary file, fsync it, and rename it over `path`."""
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as file:
        buffer: list[bytes] = []
        for record in records:
            buffer.append(encode_record(record))
            if len(buffer) >= 1024:
                file.write(b"".join(buffer))
                buffer.clear()
        file.write(b"".join(buffer))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)
