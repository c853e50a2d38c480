"""`video-analyzer move-files --to gridfs|local`: every stored file into one storage, resumably.

Each file a video document records elsewhere is moved on its own, in four steps:

1. copy it into the target under the same key (what a run cut short left there is replaced);
2. read the copy back, and hold its size and sha256 against what the document records;
3. switch the document to the target with one update that matches only while the document still
   names the source and the same file;
4. delete the source.

So a run stopped anywhere is finished by running it again: a document still naming the source is
copied again, and a document already switched whose source was not yet deleted (a stop between
3 and 4) has that source deleted. No file is lost (a source goes only once its document names a
verified copy) and, once a run completes, none is kept twice. A video deleted while its file is
moved makes the switch match nothing, and the copy is deleted too. A file that does not match
its document, or is missing, stays as it is and is reported.

On the embedded store the service must be stopped (the store belongs to one process); on MongoDB
it runs beside the service, best with STORAGE already set to the target, so that new uploads go
there too. One run at a time.
"""

import logging
from typing import Any

from pymongo.errors import PyMongoError

from service.config import Settings
from service.db.durable import StoreWriteFailed
from service.db.service import connect
from service.storage.gridfs import GridFSStorage
from service.storage.local import LocalStorage
from service.storage.schemas import MoveSummary, StoredFile
from service.storage.service import FileStorage, Storage, open_storage
from service.videos.models import Video, stored_file_fields

logger = logging.getLogger(__name__)


class MoveStopped(Exception):
    """The store failed part way; what was moved stays moved, and running it again finishes it."""


async def run_move(settings: Settings, target: str) -> MoveSummary:
    database = await connect(settings)
    try:
        storage = open_storage(settings, database)
        if settings.uses_embedded_store:  # no service runs: what a run cut short left is no upload's
            await storage.prepare()
        return await move_files(storage, target)
    except (PyMongoError, StoreWriteFailed) as error:
        raise MoveStopped(f"stopped part way ({error}); every file is where its document says: run it again") from None
    finally:
        database.close()


async def move_files(storage: Storage, target: str) -> MoveSummary:
    """Move every stored file the videos record into the storage `target`; Beanie must be initialised."""
    mover = _Mover(storage, target)
    collection = Video.get_motor_collection()
    async for document in collection.find({}, {"file": 1, "legacy": 1}):
        for path, facts in stored_file_fields(document):
            await mover.move(document["_id"], path, facts)
    await mover.remove_sources_left()
    return mover.summary


def _storage_filter(kind: str) -> Any:
    """A filter on a `storage` field for files kept in `kind` (no field: local)."""
    return kind if kind == GridFSStorage.kind else {"$in": [None, LocalStorage.kind]}


class _Mover:
    def __init__(self, storage: Storage, target: str) -> None:
        self.storage = storage
        self.target = storage.of(target)
        self.summary = MoveSummary(target=target)
        self._in_target: set[str] = set()

    async def move(self, video_id: Any, path: str, facts: dict[str, Any]) -> None:
        key, size, sha256 = facts.get("key"), facts.get("size"), facts.get("sha256")
        where = f"video {video_id} {path} {key}"
        if not (isinstance(key, str) and isinstance(size, int) and isinstance(sha256, str)):
            self.summary.problems.append(f"{where}: its facts are incomplete; left as they are")
            return
        source = self.storage.of(facts.get("storage"))
        if source is self.target:
            self._in_target.add(key)
            self.summary.already_there += 1
            return
        recorded = StoredFile(size=size, sha256=sha256)
        problem = await self._copy(source, key, recorded)
        if problem is not None:
            self.summary.problems.append(f"{where}: {problem}; left in {source.kind} storage")
            return
        switched = await Video.get_motor_collection().update_one(
            {
                "_id": video_id,
                f"{path}.key": key,
                f"{path}.sha256": sha256,
                f"{path}.storage": _storage_filter(source.kind),
            },
            {"$set": {f"{path}.storage": self.target.kind}},
        )
        if not switched.matched_count:
            await self.target.delete(key)
            self.summary.deleted_meanwhile += 1
            return
        await source.delete(key)
        self._in_target.add(key)
        self.summary.moved += 1
        self.summary.bytes_moved += size
        logger.info("moved %s (%d bytes) from %s to %s storage", where, size, source.kind, self.target.kind)

    async def _copy(self, source: FileStorage, key: str, recorded: StoredFile) -> str | None:
        """Copy the file into the target and verify the copy; why not, or None when it is there."""
        try:
            opened = await source.open(key)
        except FileNotFoundError:
            return "missing from its storage"
        try:
            sent = await self.target.receive(opened.file, key)
        except OSError as error:  # the source cannot be read (damaged), or the target cannot be written
            return f"not copied ({error})"
        finally:
            opened.close()
        if sent != recorded:
            await self.target.delete(key)
            return f"{sent.size} bytes with sha256 {sent.sha256}, but its document records {recorded.size} bytes with sha256 {recorded.sha256}"
        try:
            read_back = await self.target.stored(key)
        except OSError as error:  # damaged, or gone: a video deleted while its file was copied
            read_back, why = None, f"the copy could not be read back ({error})"
        else:
            why = "the copy read back differs from what was written"
        if read_back != recorded:
            await self.target.delete(key)
            return why
        return None

    async def remove_sources_left(self) -> None:
        """Delete the source copies of files already in the target: a run stopped between switching
        a document and deleting its source leaves one."""
        for source in (self.storage.local, self.storage.gridfs):
            if source is self.target:
                continue
            for key in set(await source.list_keys()) & self._in_target:
                await source.delete(key)
                self.summary.sources_removed += 1
