"""`video-analyzer import`: an archive `export` wrote, loaded into the configured store and storage.

The whole archive is verified against its manifest before anything is written (archive.py), and
so is storage: a key that already holds other bytes than the archive's is refused, since import
never replaces a stored file (another video's, say). Then the stored files are copied in (skipped
where the same sha256 is already there), then every document is upserted by `_id` (batches of
ReplaceOne through bulk_write), so importing the same archive again changes nothing, and an import
cut short is finished by running it again. Files go first so that no document is ever written
before the file it refers to. The store is opened with the service's own `connect`, so indexes are
created as at start-up.

Files go to the storage STORAGE names, wherever the exporting deployment kept them, and the
documents say so (`file.storage`): importing is how a deployment moves, to GridFS among others.
"""

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError, PyMongoError

from service.backup.archive import ArchiveRefused, VerifiedArchive, members, read_documents, verify_archive
from service.backup.documents import initialise_models
from service.backup.files import open_stored_files, place_files
from service.backup.schemas import CollectionEntry, FileEntry, ImportCounts, ImportSummary, Member
from service.config import Settings
from service.db.durable import StoreDamaged, StoreWriteFailed
from service.db.embedded import StoreInUse, in_use_message, store_in_use
from service.db.service import Database, connect
from service.storage.service import FileStorage, open_storage

DEFAULT_BATCH_SIZE = 500
T = TypeVar("T")


class ImportRefused(Exception):
    """Nothing was written: the archive is refused, or the store cannot be opened for writing."""


class ImportStopped(Exception):
    """The store or the disk failed part way; what was written stays, and importing again finishes it."""


async def run_import(settings: Settings, path: Path, batch_size: int = DEFAULT_BATCH_SIZE) -> ImportSummary:
    if settings.uses_embedded_store and store_in_use(settings.embedded_dir):
        raise ImportRefused(in_use_message(settings.embedded_dir))
    archive = await _verify(path)
    present = await asyncio.to_thread(_files_present, settings, archive)
    database = await _connect(settings)
    try:
        storage = open_storage(settings, database).writer
        return await _Import(archive, storage, present, database, batch_size).run()
    except ImportStopped:
        raise
    except (PyMongoError, StoreWriteFailed, OSError) as error:
        raise ImportStopped(
            f"stopped part way ({error}); what was written stays: import {path} again to finish"
        ) from None
    except Exception as error:  # a bug, not the archive (verified) nor the store: no traceback for the operator
        raise ImportStopped(
            f"stopped part way by an unexpected error ({type(error).__name__}: {error}); what was written stays"
        ) from None
    finally:
        database.close()


async def _verify(path: Path) -> VerifiedArchive:
    await initialise_models()
    try:
        return await asyncio.to_thread(verify_archive, path)
    except ArchiveRefused as error:
        raise ImportRefused(f"refused {path}: {error}") from None


def _files_present(settings: Settings, archive: VerifiedArchive) -> set[str]:
    """The keys the configured storage already holds with the archive's bytes (not copied again);
    ImportRefused when a key holds other bytes, before anything is written, the store not even
    opened. Blocking."""
    present = set()
    with open_stored_files(settings) as files:
        for entry in archive.manifest.files:
            expected = archive.manifest.members[entry.member]
            try:
                stored = files.digest(settings.storage, entry.key)
            except OSError as error:
                raise ImportRefused(f"refused {archive.path}: file {entry.key} cannot be read ({error})") from None
            if stored is None:
                continue
            if (stored.size, stored.sha256) != (expected.size, expected.sha256):
                raise ImportRefused(
                    f"refused {archive.path}: file {entry.key}: storage already holds it ({settings.storage}) "
                    "with other bytes (import never replaces a stored file)"
                )
            present.add(entry.key)
    return present


async def _connect(settings: Settings) -> Database:
    try:
        return await connect(settings)
    except (StoreInUse, StoreDamaged) as error:
        raise ImportRefused(str(error)) from None
    except PyMongoError as error:
        raise ImportRefused(f"MongoDB: {error}") from None


async def _next(iterator: Iterator[T]) -> T | None:
    return await asyncio.to_thread(next, iterator, None)


class _Import:
    def __init__(
        self, archive: VerifiedArchive, storage: FileStorage, present: set[str], database: Database, batch_size: int
    ) -> None:
        self.archive = archive
        self.storage = storage
        self.present = present
        self.database = database
        self.batch_size = batch_size
        self.summary = ImportSummary(path=str(archive.path), store=database.kind)
        manifest = archive.manifest
        self.collections = {entry.member: entry for entry in manifest.collections}
        self.files = {entry.member: entry for entry in manifest.files}

    async def run(self) -> ImportSummary:
        for entry in self.archive.manifest.collections:
            self.summary.collections[entry.name] = ImportCounts()
        streams = members(self.archive)
        try:
            while (item := await _next(streams)) is not None:
                name, stream = item
                if name in self.files:
                    await self._restore_file(self.files[name], stream)
                else:
                    await self._restore_collection(self.collections[name], stream)
        finally:
            streams.close()
        return self.summary

    def _expected(self, member: str) -> Member:
        return self.archive.manifest.members[member]

    async def _restore_file(self, entry: FileEntry, stream: IO[bytes]) -> None:
        expected = self._expected(entry.member)
        if entry.key in self.present:
            self.summary.files_skipped += 1
            return
        stored = await self.storage.receive(stream, entry.key)
        if (stored.size, stored.sha256) != (expected.size, expected.sha256):
            raise ImportStopped(f"{self.archive.path} changed after it was verified ({entry.member}); import it again")
        self.summary.files_copied += 1

    async def _restore_collection(self, entry: CollectionEntry, stream: IO[bytes]) -> None:
        collection = self.database.handle[entry.name]
        counts = self.summary.collections[entry.name]
        sha256 = hashlib.sha256()
        lines = read_documents(entry.member, stream)
        while batch := await asyncio.to_thread(_take, lines, self.batch_size, sha256):
            for document in batch:
                place_files(entry.name, document, self.storage.kind)
            await self._upsert(collection, entry.name, batch, counts)
        if sha256.hexdigest() != self._expected(entry.member).sha256:
            raise ImportStopped(f"{self.archive.path} changed after it was verified ({entry.member}); import it again")

    async def _upsert(self, collection: Any, name: str, batch: list[dict[str, Any]], counts: ImportCounts) -> None:
        requests = [ReplaceOne({"_id": document["_id"]}, document, upsert=True) for document in batch]
        try:
            result = (await collection.bulk_write(requests, ordered=False)).bulk_api_result
        except BulkWriteError as error:
            result = error.details
        counts.inserted += result["nUpserted"]
        counts.replaced += result["nModified"]
        counts.unchanged += result["nMatched"] - result["nModified"]
        for error in result.get("writeErrors", []):
            counts.refused += 1
            self.summary.refusals.append(f"{name} {batch[error['index']]['_id']}: {error.get('errmsg', 'refused')}")


def _take(lines: Iterator[tuple[bytearray, dict[str, Any]]], count: int, sha256: Any) -> list[dict[str, Any]]:
    """The next `count` documents (fewer at the end), hashing their lines on the way."""
    batch = []
    for line, document in lines:
        sha256.update(line)
        batch.append(document)
        if len(batch) == count:
            break
    return batch
