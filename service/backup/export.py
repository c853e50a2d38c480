"""`video-analyzer export`: the configured store and its files as one archive (archive.py), read
from one consistent state where the store gives one (service/db/snapshot.py).

Documents are read first, inside the snapshot, into temporary files; the stored files they refer
to are then streamed into the archive, so the snapshot (a SQLite read transaction, or MongoDB's
snapshot history) is held only while documents are read. Files never change once stored, but a
video deleted after the snapshot loses its file: such a video is left out of the archive (it
was deleted anyway), which is told apart from a file that is missing while its document is not
(damage) by reading the store again.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bson import json_util
from pymongo.errors import OperationFailure, PyMongoError

from service.backup.archive import FILES_DIR, ArchiveWriter, Spool, collection_member, file_member
from service.backup.files import FileRef, StoredFiles, file_refs, open_stored_files, still_referenced
from service.backup.schemas import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CollectionEntry,
    ExportSummary,
    FileEntry,
    Manifest,
    Member,
    Source,
)
from service.clock import utc_now
from service.config import Settings
from service.db.durable import Damage
from service.db.gridfs import DamagedFile, is_bucket_collection
from service.db.snapshot import SNAPSHOT_TOO_OLD, open_snapshot


class ExportFailed(Exception):
    """The export could not run (no store, MongoDB out of reach, the archive cannot be written);
    nothing was written under the archive's name."""


@dataclass
class _StoreRead:
    source: Source
    collections: list[tuple[str, Spool, list[dict[str, Any]]]]
    refs: list[FileRef]
    damage: Damage
    live: bool


def run_export(settings: Settings, path: Path, salvage: bool) -> ExportSummary:
    """Write the archive to `path`; the summary says what it holds and what was wrong.

    Damage (a damaged document, a missing or changed file) stops it with nothing written, unless
    `salvage`: then everything intact is written and the damage is listed as left out."""
    if path.is_dir() or not path.parent.is_dir():
        raise ExportFailed(f"{path}: give the archive's file name in an existing folder")
    try:
        return _export(settings, path, salvage)
    except FileNotFoundError as error:
        raise ExportFailed(str(error)) from None
    except OperationFailure as error:
        raise ExportFailed(_mongodb_failure(error)) from None
    except PyMongoError as error:
        raise ExportFailed(f"MongoDB: {error}") from None
    except DamagedFile as error:
        raise ExportFailed(
            f"a stored file is damaged ({error}): `video-analyzer check` lists the damage, "
            "`export --salvage` leaves such files out"
        ) from None
    except OSError as error:
        raise ExportFailed(f"cannot write {path}: {error}") from None


def _mongodb_failure(error: OperationFailure) -> str:
    if error.code == SNAPSHOT_TOO_OLD:
        return (
            "MongoDB: reading the documents took longer than the server keeps snapshot history "
            "(minSnapshotHistoryWindowInSeconds, 300 s by default); raise it, or use mongodump --oplog"
        )
    return f"MongoDB: {error}"


def _export(settings: Settings, path: Path, salvage: bool) -> ExportSummary:
    with ArchiveWriter(path) as writer, open_stored_files(settings) as files:
        read = _read_store(settings, writer)
        summary = ExportSummary(path=str(path), source=read.source)
        summary.problems.extend(read.damage.report().splitlines())
        if salvage:
            summary.left_out.damaged_documents = dict(read.damage.documents)
            summary.left_out.problems = list(read.damage.problems)
        if summary.problems and not salvage:
            return summary
        dropped = _add_files(settings, writer, files, read, summary, salvage)
        if summary.problems and not salvage:
            return summary
        entries = _add_collections(writer, read, dropped)
        summary.collections = {entry.name: entry.count for entry in entries}
        writer.finish(_manifest(read.source, entries, writer.members, summary))
        summary.written = True
    return summary


def _read_store(settings: Settings, writer: ArchiveWriter) -> _StoreRead:
    """Every document of the snapshot into temporary files, noting the stored files they refer to.
    GridFS's own collections stay out: its files go into the archive as files, like local ones."""
    with open_snapshot(settings) as snapshot:
        refs: list[FileRef] = []
        collections = []
        for name in (name for name in snapshot.collections() if not is_bucket_collection(name)):
            spool = writer.spool(_noting_files(name, snapshot.documents(name), refs))
            collections.append((name, spool, [_plain(index) for index in snapshot.indexes(name)]))
        source = Source(kind=snapshot.kind, database=settings.mongodb_db, consistency=snapshot.consistency)
        return _StoreRead(source, collections, refs, snapshot.damage, snapshot.live)


def _noting_files(
    collection: str, documents: Iterable[dict[str, Any]], refs: list[FileRef]
) -> Iterator[dict[str, Any]]:
    for document in documents:
        refs.extend(file_refs(collection, document))
        yield document


def _plain(index: dict[str, Any]) -> dict[str, Any]:
    """An index definition as plain JSON for the manifest."""
    return json.loads(json_util.dumps(index, json_options=json_util.RELAXED_JSON_OPTIONS))


def _add_files(
    settings: Settings,
    writer: ArchiveWriter,
    files: StoredFiles,
    read: _StoreRead,
    summary: ExportSummary,
    salvage: bool,
) -> dict[str, set[str]]:
    """Stream every referenced file into the archive; the ids of videos deleted since the snapshot
    whose file is gone (to leave out), by collection. A salvage hashes each file first and leaves
    out one that is not what its document records, since import refuses an archive holding one."""
    by_key: dict[str, list[FileRef]] = {}
    for ref in read.refs:
        by_key.setdefault(ref.key, []).append(ref)
    missing: list[FileRef] = []
    for refs in by_key.values():
        try:
            if salvage and _changed(files, refs, summary):
                continue
            member = _add_file(writer, files, refs[0])
        except ValueError:
            summary.problems.extend(f"file {ref.describe()}: not a storage key" for ref in refs)
            continue
        if member is None:
            missing.extend(refs)
            continue
        summary.files += 1
        summary.file_bytes += member.size
        summary.problems.extend(_differences(member, refs))
    return _settle_missing(settings, missing, read.live, summary)


def _changed(files: StoredFiles, refs: list[FileRef], summary: ExportSummary) -> bool:
    """Whether the stored file differs from what its documents record (noted as left out)."""
    try:
        stored = files.digest(refs[0].storage, refs[0].key)
    except DamagedFile as error:
        damaged = [f"file {ref.describe()}: damaged in storage ({error})" for ref in refs]
        summary.problems.extend(damaged)
        summary.left_out.changed_files.extend(damaged)
        return True
    if stored is None:
        return False
    differences = _differences(Member(size=stored.size, sha256=stored.sha256), refs)
    summary.problems.extend(differences)
    summary.left_out.changed_files.extend(differences)
    return bool(differences)


def _add_file(writer: ArchiveWriter, files: StoredFiles, ref: FileRef) -> Member | None:
    """Stream one stored file, from whichever storage holds it, into the archive; None when it is not there."""
    opened = files.open(ref.storage, ref.key)
    if opened is None:
        return None
    try:
        return writer.add_stream(file_member(ref.key), opened.file, opened.size)
    finally:
        opened.close()


def _differences(member: Member, refs: list[FileRef]) -> list[str]:
    """A stored file that is not what its document records is damage; it is kept as it is."""
    problems = []
    for ref in refs:
        if member.size != ref.size:
            problems.append(f"file {ref.describe()}: {member.size} bytes, its document records {ref.size}")
        elif member.sha256 != ref.sha256:
            problems.append(f"file {ref.describe()}: sha256 {member.sha256}, its document records {ref.sha256}")
    return problems


def _settle_missing(
    settings: Settings, missing: list[FileRef], live: bool, summary: ExportSummary
) -> dict[str, set[str]]:
    confirmed = still_referenced(settings, missing) if live and missing else set(missing)
    dropped: dict[str, set[str]] = {}
    for ref in missing:
        if ref in confirmed:
            summary.problems.append(f"file {ref.describe()}: missing from storage")
            summary.left_out.missing_files.append(ref.describe())
        else:
            dropped.setdefault(ref.collection, set()).add(ref.document_id)
            summary.left_out.deleted_while_exporting.append(
                f"{ref.collection} {ref.document_id} was deleted while the export ran, its file with it: left out"
            )
    return dropped


def _add_collections(writer: ArchiveWriter, read: _StoreRead, dropped: dict[str, set[str]]) -> list[CollectionEntry]:
    entries = []
    for name, spool, indexes in read.collections:
        left_out = dropped.get(name)
        if left_out:
            spool = writer.spool(document for document in spool.documents() if str(document["_id"]) not in left_out)
        member = collection_member(name)
        writer.add_spool(member, spool)
        entries.append(CollectionEntry(name=name, member=member, count=spool.count, indexes=indexes))
    return entries


def _manifest(
    source: Source, entries: list[CollectionEntry], members: dict[str, Member], summary: ExportSummary
) -> Manifest:
    files = [FileEntry(key=name.removeprefix(FILES_DIR), member=name) for name in members if name.startswith(FILES_DIR)]
    return Manifest(
        format=FORMAT_NAME,
        version=FORMAT_VERSION,
        created_at=utc_now(),
        source=source,
        collections=entries,
        files=files,
        members=dict(members),
        left_out=summary.left_out,
    )
