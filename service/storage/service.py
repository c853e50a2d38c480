"""Where stored files live: a folder on this machine (`local`), or MongoDB GridFS (`gridfs`).

STORAGE names where new files go. Each stored file's document says where it is (a video's
`file.storage`; `storage` in the facts of a text the SQLite migration moved out of a document;
none means `local`), so every read follows the document, and one store holds files in both while
`video-analyzer move-files` moves them (service/storage/moves.py).
"""

import asyncio
from collections.abc import Awaitable, Callable

from service.config import Settings
from service.db.gridfs import FILES_BUCKET, THUMBNAILS_BUCKET, bucket
from service.db.service import Database
from service.storage.gridfs import GridFSStorage
from service.storage.local import LocalStorage

FileStorage = LocalStorage | GridFSStorage


class Storage:
    def __init__(self, local: LocalStorage, gridfs: GridFSStorage, kind: str) -> None:
        self.local = local
        self.gridfs = gridfs
        self.kind = kind

    @property
    def writer(self) -> FileStorage:
        """Where new files go (STORAGE)."""
        return self.of(self.kind)

    def of(self, kind: str | None) -> FileStorage:
        """The storage a document names (None: local, as documents from before GridFS say)."""
        return self.gridfs if kind == GridFSStorage.kind else self.local

    @staticmethod
    def new_key() -> str:
        return LocalStorage.new_key()

    def describe(self) -> str:
        if self.kind == GridFSStorage.kind:
            return f"new files in MongoDB GridFS (bucket {FILES_BUCKET}); uploads arrive in {self.local.root.resolve()}"
        return f"new files in {self.local.root.resolve()}"

    def probes(self) -> list[Callable[[], Awaitable[None]]]:
        """The reads readiness makes of storage beside the store's own ping: GridFS's files
        collection when new files go there."""
        return [self.gridfs.files.probe] if self.kind == GridFSStorage.kind else []

    async def prepare(self) -> None:
        """The start-up sweeps of both storages (uploads and thumbnails crashes left)."""
        await asyncio.to_thread(self.local.prepare)
        await self.gridfs.prepare()

    async def delete(self, key: str) -> None:
        """Delete the file under `key` (and its thumbnail) wherever it is: a key is one file's
        alone, and a move in progress may have put a copy of it in the other storage."""
        await self.local.delete(key)
        await self.gridfs.delete(key)


def open_storage(settings: Settings, database: Database) -> Storage:
    """Both storages over the connected store, with STORAGE naming where new files go."""
    gridfs = GridFSStorage(bucket(database, FILES_BUCKET), bucket(database, THUMBNAILS_BUCKET))
    return Storage(LocalStorage(settings.files_dir), gridfs, settings.storage)
