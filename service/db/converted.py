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

from service.db.durable import Change, Damage, StoreDamaged, damaged_message

SNAPSHOT_NAME = "snapshot.bson"
JOURNAL_NAME = "journal.bson"
CONVERTED_SUFFIX = ".converted"
_HEADER = struct.Struct("<II")


def _records(path: Path, damage: Damage, torn_tail_allowed: bool) -> list[dict[str, Any]]:
    data = path.read_bytes() if path.exists() else b""
    records: list[dict[str, Any]] = []
    offset = 0
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            cut = True
        else:
            length, crc = _HEADER.unpack_from(data, offset)
            body = data[offset + _HEADER.size : offset + _HEADER.size + length]
            cut = len(body) < length
        if cut:
            if not torn_tail_allowed:
                damage.problems.append(f"{path}: cut short at byte {offset}")
            return records
        if zlib.crc32(body) != crc:
            damage.problems.append(f"{path}: the record at byte {offset} fails its checksum")
            return records
        records.append(bson.decode(body))
        offset += _HEADER.size + length
    return records


def old_store_files(directory: Path) -> list[Path]:
    return [path for path in (directory / SNAPSHOT_NAME, directory / JOURNAL_NAME) if path.exists()]


def read_old_store(directory: Path) -> list[Change]:
    """The final state of an old store as changes to write, or StoreDamaged naming what is wrong."""
    damage = Damage(directory)
    records = _records(directory / SNAPSHOT_NAME, damage, torn_tail_allowed=False)
    records += _records(directory / JOURNAL_NAME, damage, torn_tail_allowed=True)
    if damage:
        raise StoreDamaged(damaged_message(damage))
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
    """Keep the old files, renamed, once their content is committed in the new store."""
    for path in old_store_files(directory):
        path.replace(path.with_name(path.name + CONVERTED_SUFFIX))
    (directory / "snapshot.tmp").unlink(missing_ok=True)
