"""Stores written before the SQLite layer (`snapshot.bson` and `journal.bson`), converted once.

Both files hold framed records: 4 bytes little-endian length, 4 bytes CRC-32 of the body, then a
BSON body naming a database and collection with either a document (`put`), a deleted `_id`
(`del`) or a dropped collection (`drop`). The snapshot was written whole and renamed into place,
so any flaw in it is damage. The journal was appended to and fsynced before each write was
acknowledged, so only its last record may be cut short (a crash during a write never
acknowledged); a record that is whole but fails its checksum, or anything after a cut, is damage.
Damage refuses the conversion: nothing is dropped quietly.
"""

import struct
import zlib
from pathlib import Path
from typing import Any

import bson

from service.db.durable import Change, Damage, StoreDamaged

SNAPSHOT_NAME = "snapshot.bson"
JOURNAL_NAME = "journal.bson"
CONVERTED_SUFFIX = ".converted"
_HEADER = struct.Struct("<II")


def _records(path: Path, damage: Damage, torn_tail_allowed: bool) -> list[dict[str, Any]]:
    data = path.read_bytes() if path.exists() else b""
    records: list[dict[str, Any]] = []
    offset = 0
    while offset < len(data):
        problem = _flaw(data, offset, torn_tail_allowed)
        if problem == _TORN_TAIL:
            return records
        if problem:
            damage.problems.append(f"{path}: {problem}")
            return records
        length, _ = _HEADER.unpack_from(data, offset)
        records.append(bson.decode(data[offset + _HEADER.size : offset + _HEADER.size + length]))
        offset += _HEADER.size + length
    return records


_TORN_TAIL = "torn tail"


def _flaw(data: bytes, offset: int, torn_tail_allowed: bool) -> str | None:
    """What is wrong with the record at `offset`: None, `_TORN_TAIL` (the unacknowledged end of a
    crash), or the damage. A record's BSON body starts with its own length, so a changed length
    in the frame is told apart from a write cut short: only a record whose body, by either length,
    runs past the end of the file was cut, and zeros to the end are space a crash left unwritten."""
    rest = data[offset:]
    if torn_tail_allowed and not rest.strip(b"\0"):
        return _TORN_TAIL
    if len(rest) < _HEADER.size:
        return _TORN_TAIL if torn_tail_allowed else f"cut short at byte {offset}"
    length, crc = _HEADER.unpack_from(data, offset)
    body = rest[_HEADER.size : _HEADER.size + length]
    own_length = int.from_bytes(body[:4], "little") if len(body) >= 4 else None
    if len(body) < length:
        if own_length is not None and own_length != length and _HEADER.size + own_length <= len(rest):
            return f"the record at byte {offset} has a damaged length"
        return _TORN_TAIL if torn_tail_allowed else f"cut short at byte {offset}"
    if zlib.crc32(body) != crc or own_length != length:
        return f"the record at byte {offset} fails its checksum"
    try:
        bson.decode(body)
    except Exception:
        return f"the record at byte {offset} is not a BSON document"
    return None


def old_store_files(directory: Path) -> list[Path]:
    return [path for path in (directory / SNAPSHOT_NAME, directory / JOURNAL_NAME) if path.exists()]


def read_old_store(directory: Path) -> list[Change]:
    """The final state of an old store as changes to write, or StoreDamaged naming what is wrong."""
    damage = Damage(directory)
    records = _records(directory / SNAPSHOT_NAME, damage, torn_tail_allowed=False)
    records += _records(directory / JOURNAL_NAME, damage, torn_tail_allowed=True)
    if damage:
        raise StoreDamaged(_old_format_message(damage))
    state: dict[tuple[str, str], dict[Any, dict[str, Any]]] = {}
    for record in records:
        documents = state.setdefault((record["d"], record["c"]), {})
        if "put" in record:
            documents[record["put"]["_id"]] = record["put"]
        elif "del" in record:
            documents.pop(record["del"], None)
        else:
            documents.clear()
    return [
        Change(database, collection, key, bson.encode(document))
        for (database, collection), documents in state.items()
        for key, document in documents.items()
    ]


def set_old_store_aside(directory: Path) -> None:
    """Keep the old files, renamed, once their content is committed in the new store.

    Old files beside a store converted before, whose earlier copies were already set aside, were
    written after that conversion (by an older version, say): nothing is renamed over the kept
    copies or dropped, and the start is refused until someone decides."""
    found = old_store_files(directory)
    kept = [path.with_name(path.name + CONVERTED_SUFFIX) for path in found]
    if any(path.exists() for path in kept):
        names = ", ".join(path.name for path in found)
        raise StoreDamaged(
            f"{directory}: {names} sit beside a store converted earlier (their first copies are kept as "
            f"*{CONVERTED_SUFFIX}), so they were written afterwards, by an older version; their writes are "
            "not in the store. Nothing was changed. Start that older version to export them, or move the "
            "files away to start without them."
        )
    for path, target in zip(found, kept, strict=True):
        path.replace(target)
    (directory / "snapshot.tmp").unlink(missing_ok=True)


def _old_format_message(damage: Damage) -> str:
    return (
        f"the embedded store, in the format before SQLite, is damaged; it was not converted and its files were "
        f"left as they are:\n{damage.report()}\nRestore DATA_DIR/db from a backup. Starting the older version "
        "on these files would drop everything from the damage on."
    )
