"""A check of SQLite's write-ahead log before SQLite reads it.

When SQLite recovers a WAL it keeps the frames up to the last valid commit and silently ignores
every frame after the first one that fails its checksum (https://www.sqlite.org/walformat.html,
"WAL recovery"). That is right for a transaction a crash cut short, which was never acknowledged;
it is wrong for a byte changed in a transaction that was committed and acknowledged, whose loss it
would hide. So before the store opens, this module reads the WAL as the file format describes it
(https://www.sqlite.org/fileformat2.html#the_write_ahead_log) and reports a WAL where a frame
fails its checksum or carries another generation's salts, and a commit frame of the current
generation is among it and those after it: a transaction that was whole when it was written (a
writer starts each generation at the file's start, so an older frame never precedes a current
one). A tail without a commit frame is a transaction a crash cut short, never acknowledged, and is
left to SQLite.

Written by hand because no library reads SQLite's WAL; it follows the documented format only.
"""

import struct
from pathlib import Path

WAL_HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24
_MAGIC_LITTLE_ENDIAN = 0x377F0682
_MAGIC_BIG_ENDIAN = 0x377F0683
_MASK = 0xFFFFFFFF


def _checksum(data: bytes, big_endian: bool, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from (s0, s1)."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for index in range(0, len(words), 2):
        s0 = (s0 + words[index] + s1) & _MASK
        s1 = (s1 + words[index + 1] + s0) & _MASK
    return s0, s1


def verify_wal(database: Path) -> list[str]:
    """Problems with the WAL beside `database` (none when it is absent, empty, or sound)."""
    path = database.with_name(database.name + "-wal")
    if not path.exists() or path.stat().st_size < WAL_HEADER_BYTES:
        return []
    data = path.read_bytes()
    magic, _version, page_size, _sequence, salt1, salt2, check1, check2 = struct.unpack_from(">8I", data)
    if magic not in (_MAGIC_LITTLE_ENDIAN, _MAGIC_BIG_ENDIAN):
        return [f"{path}: not a write-ahead log (its header is damaged)"]
    big_endian = magic == _MAGIC_BIG_ENDIAN
    s0, s1 = _checksum(data[:24], big_endian, 0, 0)
    if (s0, s1) != (check1, check2):
        return [f"{path}: its header fails its checksum; the transactions in it cannot be verified"]
    frame_bytes = FRAME_HEADER_BYTES + page_size
    offset = WAL_HEADER_BYTES
    failed_at: int | None = None
    while offset + frame_bytes <= len(data):
        page, commit_size, frame_salt1, frame_salt2, frame_check1, frame_check2 = struct.unpack_from(
            ">6I", data, offset
        )
        current = (frame_salt1, frame_salt2) == (salt1, salt2)
        if failed_at is None:
            if current:
                s0, s1 = _checksum(data[offset : offset + 8], big_endian, s0, s1)
                s0, s1 = _checksum(data[offset + FRAME_HEADER_BYTES : offset + frame_bytes], big_endian, s0, s1)
            if not current or (s0, s1) != (frame_check1, frame_check2):
                failed_at = offset
        if failed_at is not None and current and commit_size:
            frame = (failed_at - WAL_HEADER_BYTES) // frame_bytes
            return [
                f"{path}: frame {frame} fails its checksum or salt and a committed transaction follows it; "
                "SQLite would silently drop the transactions from there on"
            ]
        offset += frame_bytes
    return []
