"""GridFS buckets: files kept in the store itself, chunk by chunk, so that machines share nothing
but MONGODB_URL.

A bucket named B is the GridFS specification's two collections: `B.files`, one document per file
(`_id`, `length`, `chunkSize`, `uploadDate`, `metadata`), and `B.chunks`, the file in pieces of
255 KiB (`files_id`, `n`, `data`). A file's chunks are written first and its files document last,
so a file is seen only whole; a deletion removes the files document first, then the chunks.

- MongoDB: Motor's AsyncIOMotorGridFSBucket. A file is read through PyMongo's GridOut, the object
  Motor's own GridOut wraps (its `delegate`): a synchronous file object (read, seek) for the
  thread that reads it, PyAV's decoding thread or the media route's reads.
- The embedded store: mongomock-motor has no bucket API (Motor's bucket refuses its database, and
  mongomock's GridFS integration serves PyMongo's synchronous GridFS, keeping every chunk in
  memory). So its bucket is here: the files documents are documents like any other, and the
  chunks go to the store's SQLite file alone, batch by batch on the store's thread, and are read
  back one by one from any thread (service/db/durable.py), so memory stays flat in a file's size.
"""

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Protocol

import bson
from gridfs import DEFAULT_CHUNK_SIZE, GridFSBucket
from gridfs.errors import CorruptGridFile, NoFile
from motor.motor_asyncio import AsyncIOMotorGridFSBucket
from pymongo import MongoClient

from service.clock import utc_now
from service.db.durable import CHUNKS_SUFFIX, FILES_SUFFIX, DirectReader, DocumentDamaged
from service.db.embedded import EmbeddedClient, EmbeddedStore

logger = logging.getLogger(__name__)

FILES_BUCKET = "fs"
"""Video files (and texts the SQLite migration moved out of a document)."""
THUMBNAILS_BUCKET = "thumbnails"
"""Poster frames, under their video file's key; made again when missing, so never backed up."""
CHUNK_BYTES = DEFAULT_CHUNK_SIZE
EMBEDDED_BATCH_CHUNKS = 16
"""Chunks the embedded bucket commits per SQLite transaction (4 MiB): each transaction is fsynced,
and holds the store's thread while it is written."""


class DamagedFile(OSError):
    """A stored file's chunks are missing, cut short or damaged: what a disk's read error is to a
    local file (PyAV and the callers treat both alike)."""


def is_bucket_collection(name: str) -> bool:
    """Whether a collection is part of a GridFS bucket (its files or its chunks)."""
    return name.endswith((FILES_SUFFIX, CHUNKS_SUFFIX))


class StoredReader(Protocol):
    """A stored file open for reading, synchronously: use it from one thread at a time."""

    length: int

    def read(self, size: int = -1) -> bytes: ...

    def seek(self, pos: int, whence: int = 0) -> int: ...

    def tell(self) -> int: ...

    def close(self) -> None: ...


class _MongoReader:
    """PyMongo's GridOut, with its CorruptGridFile raised as DamagedFile."""

    def __init__(self, grid_out: Any) -> None:
        self._grid_out = grid_out
        self.length = int(grid_out.length)

    def read(self, size: int = -1) -> bytes:
        try:
            return self._grid_out.read(size)
        except CorruptGridFile as error:
            raise DamagedFile(str(error)) from error

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        return self._grid_out.seek(pos, whence)

    def tell(self) -> int:
        return self._grid_out.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._grid_out.close()


class Upload(Protocol):
    """A file being written to a bucket: `close` makes it whole and visible, `abort` removes it."""

    async def write(self, data: bytes) -> None: ...

    async def close(self, metadata: dict[str, Any]) -> None: ...

    async def abort(self) -> None: ...


class Bucket(Protocol):
    name: str

    def open_upload(self, file_id: str) -> Upload: ...

    async def open(self, file_id: str) -> StoredReader:
        """FileNotFoundError when the bucket holds no such file."""
        ...

    async def find(self, file_id: str) -> dict[str, Any] | None:
        """The file's files document (length, metadata), or None."""
        ...

    async def delete(self, file_id: str) -> None:
        """Remove the file, or what a cut-short upload left of it; nothing when there is none."""
        ...

    async def file_ids(self) -> list[str]: ...

    async def probe(self) -> None: ...

    async def remove_abandoned(self, older_than: timedelta) -> int:
        """Remove the chunks of uploads cut short (no files document, no chunk written for
        `older_than`); how many files' chunks were removed."""
        ...


class _BucketFiles:
    """What both kinds of bucket do the same way: its files documents, through Motor's collection
    API (Motor's own on MongoDB, mongomock-motor's over the embedded store)."""

    def __init__(self, database: Any, name: str) -> None:
        self.name = name
        self.files = database[name + FILES_SUFFIX]

    async def find(self, file_id: str) -> dict[str, Any] | None:
        return await self.files.find_one({"_id": file_id})

    async def file_ids(self) -> list[str]:
        return [document["_id"] for document in await self.files.find({}, {"_id": 1}).to_list(None)]

    async def probe(self) -> None:
        """One read of the files collection: it answers, and may be read (readiness)."""
        await self.files.find_one({}, {"_id": 1})


# MongoDB


class _MotorUpload:
    def __init__(self, grid_in: Any) -> None:
        self._grid_in = grid_in

    async def write(self, data: bytes) -> None:
        await self._grid_in.write(data)

    async def close(self, metadata: dict[str, Any]) -> None:
        await self._grid_in.set("metadata", metadata)
        await self._grid_in.close()

    async def abort(self) -> None:
        await self._grid_in.abort()


class MotorBucket(_BucketFiles):
    def __init__(self, database: Any, name: str) -> None:
        super().__init__(database, name)
        self._bucket = AsyncIOMotorGridFSBucket(database, bucket_name=name, chunk_size_bytes=CHUNK_BYTES)
        self._chunks = database[name + CHUNKS_SUFFIX]

    def open_upload(self, file_id: str) -> Upload:
        return _MotorUpload(self._bucket.open_upload_stream_with_id(file_id, file_id))

    async def open(self, file_id: str) -> StoredReader:
        try:
            grid_out = await self._bucket.open_download_stream(file_id)
        except NoFile:
            raise FileNotFoundError(f"GridFS bucket {self.name} holds no file {file_id}") from None
        return _MongoReader(grid_out.delegate)

    async def delete(self, file_id: str) -> None:
        try:
            await self._bucket.delete(file_id)
        except NoFile:  # PyMongo deletes the chunks before it says there was no files document
            pass

    async def remove_abandoned(self, older_than: timedelta) -> int:
        """Chunks without a files document whose newest chunk (by its ObjectId's time) is older
        than `older_than`: another node may be writing the newer ones now. Both lists come from
        indexes (`_id`, and GridFS's `files_id, n`)."""
        whole = set(await self.files.distinct("_id"))
        removed = 0
        for files_id in await self._chunks.distinct("files_id"):
            if files_id in whole:
                continue
            newest = await self._chunks.find_one({"files_id": files_id}, {"_id": 1}, sort=[("n", -1)])
            written = getattr(newest and newest["_id"], "generation_time", None)
            if newest is not None and (written is None or utc_now() - written > older_than):
                await self.delete(files_id)
                removed += 1
        return removed


# The embedded store


class EmbeddedGridOut(io.RawIOBase):
    """A file of an embedded bucket, read chunk by chunk straight from the SQLite file (the chunk
    being read is the only one held)."""

    def __init__(self, direct: DirectReader, database: str, bucket: str, document: dict[str, Any]) -> None:
        super().__init__()
        self._direct = direct
        self._database = database
        self._chunks = bucket + CHUNKS_SUFFIX
        self._file_id = document["_id"]
        self.length = int(document["length"])
        self._chunk_size = int(document["chunkSize"])
        self._position = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.length}.get(whence)
        if base is None or base + pos < 0:
            raise OSError(22, f"cannot seek to {pos} from {whence}")
        self._position = base + pos
        return self._position

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` as far as the file goes, across chunks: tarfile expects every read whole,
        as PyMongo's GridOut gives them (`read` comes from this)."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self.length:
            number, offset = divmod(self._position, self._chunk_size)
            data = self._chunk(number)[offset : offset + len(view) - filled]
            view[filled : filled + len(data)] = data
            filled += len(data)
            self._position += len(data)
        return filled

    def _chunk(self, number: int) -> bytes:
        if self._cached is not None and self._cached[0] == number:
            return self._cached[1]
        try:
            data = self._direct.chunk(self._database, self._chunks, self._file_id, number)
        except DocumentDamaged as error:
            raise DamagedFile(str(error)) from None
        expected = min(self._chunk_size, self.length - number * self._chunk_size)
        if data is None or len(data) != expected:
            raise DamagedFile(f"GridFS file {self._file_id}: chunk {number} is missing or not {expected} bytes")
        self._cached = (number, data)
        return data


class _EmbeddedUpload:
    """Chunks are committed EMBEDDED_BATCH_CHUNKS at a time; the files document goes last."""

    def __init__(self, bucket: "EmbeddedBucket", file_id: str) -> None:
        self._bucket = bucket
        self._file_id = file_id
        self._pending = bytearray()
        self._chunks: list[dict[str, Any]] = []
        self._count = 0
        self._length = 0

    async def write(self, data: bytes) -> None:
        self._pending.extend(data)
        while len(self._pending) >= CHUNK_BYTES:
            self._take(CHUNK_BYTES)
            if len(self._chunks) >= EMBEDDED_BATCH_CHUNKS:
                await self._commit()

    def _take(self, size: int) -> None:
        data = bytes(memoryview(self._pending)[:size])
        del self._pending[:size]
        self._chunks.append({"_id": bson.ObjectId(), "files_id": self._file_id, "n": self._count, "data": data})
        self._count += 1
        self._length += len(data)

    async def _commit(self) -> None:
        chunks, self._chunks = self._chunks, []
        store = self._bucket.store
        await store.run(store.add_chunks, self._bucket.database, self._bucket.chunks, chunks)

    async def close(self, metadata: dict[str, Any]) -> None:
        if self._pending:
            self._take(len(self._pending))
        await self._commit()
        document = {
            "_id": self._file_id,
            "length": self._length,
            "chunkSize": CHUNK_BYTES,
            "uploadDate": utc_now(),
            "filename": self._file_id,
            "metadata": metadata,
        }
        await self._bucket.files.insert_one(document)

    async def abort(self) -> None:
        await self._bucket.delete(self._file_id)


class EmbeddedBucket(_BucketFiles):
    def __init__(self, client: EmbeddedClient, database: str, name: str) -> None:
        super().__init__(client[database], name)
        self.store: EmbeddedStore = client.store
        self.database = database
        self.chunks = name + CHUNKS_SUFFIX

    def open_upload(self, file_id: str) -> Upload:
        return _EmbeddedUpload(self, file_id)

    async def open(self, file_id: str) -> StoredReader:
        document = await self.find(file_id)
        if document is None:
            raise FileNotFoundError(f"GridFS bucket {self.name} holds no file {file_id}")
        return EmbeddedGridOut(self.store.direct, self.database, self.name, document)

    async def delete(self, file_id: str) -> None:
        await self.files.delete_one({"_id": file_id})
        await self.store.run(self.store.delete_chunks, self.database, self.chunks, [file_id])

    async def remove_abandoned(self, older_than: timedelta) -> int:
        """None are left while the store is open: it removed them when it opened (it belongs to
        one process, so no upload was in progress then)."""
        return 0


def bucket(database: Any, name: str) -> Bucket:
    """The bucket `name` of the service's database (`service.db.service.Database`)."""
    if isinstance(database.client, EmbeddedClient):
        return EmbeddedBucket(database.client, database.name, name)
    return MotorBucket(database.handle, name)


# Reading files from another process (export, check), synchronously


class OfflineFiles(Protocol):
    def open(self, file_id: str) -> StoredReader | None:
        """The file, open for reading; None when the bucket holds no such file."""
        ...


class _EmbeddedOfflineFiles:
    def __init__(self, direct: DirectReader, database: str, name: str) -> None:
        self._direct = direct
        self._database = database
        self._name = name

    def open(self, file_id: str) -> StoredReader | None:
        try:
            document = self._direct.document(self._database, self._name + FILES_SUFFIX, file_id)
        except DocumentDamaged as error:
            raise DamagedFile(str(error)) from None
        return None if document is None else EmbeddedGridOut(self._direct, self._database, self._name, document)


class _MongoOfflineFiles:
    def __init__(self, bucket: GridFSBucket) -> None:
        self._bucket = bucket

    def open(self, file_id: str) -> StoredReader | None:
        try:
            return _MongoReader(self._bucket.open_download_stream(file_id))
        except NoFile:
            return None


@contextmanager
def embedded_offline_files(direct: DirectReader, database: str, name: str = FILES_BUCKET) -> Iterator[OfflineFiles]:
    try:
        yield _EmbeddedOfflineFiles(direct, database, name)
    finally:
        direct.close()


@contextmanager
def mongodb_offline_files(client: MongoClient, database: str, name: str = FILES_BUCKET) -> Iterator[OfflineFiles]:
    try:
        yield _MongoOfflineFiles(GridFSBucket(client[database], bucket_name=name))
    finally:
        client.close()
