"""Files in MongoDB GridFS (STORAGE=gridfs): every machine that reaches the store reaches them.

Video files are in the `fs` bucket under their storage key (the files document's `_id`), their
sha256 in its `metadata`, computed as the bytes go in; poster frames in the `thumbnails` bucket
under their file's key. A file is written in 1 MiB pieces, read and hashed on a thread, and read
back through a file object on a thread, so memory stays flat in a file's size (service/db/gridfs.py).
"""

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from service.db.gridfs import Bucket, DamagedFile, StoredReader
from service.storage.local import OpenedFile, digest_of, open_regular, pieces
from service.storage.schemas import StoredFile

logger = logging.getLogger(__name__)

ABANDONED_AFTER = timedelta(hours=1)
"""An upload's chunks without their files document, none written for this long, are from an
upload cut short (a crash): a live one writes a chunk every few seconds at the slowest."""


class GridFSStorage:
    kind = "gridfs"

    def __init__(self, files: Bucket, thumbnails: Bucket) -> None:
        self.files = files
        self.thumbnails = thumbnails

    async def prepare(self) -> None:
        """Remove what crashes left: the chunks of uploads cut short, and thumbnails whose file was
        deleted while they were being made."""
        abandoned = await self.files.remove_abandoned(ABANDONED_AFTER)
        abandoned += await self.thumbnails.remove_abandoned(ABANDONED_AFTER)
        if abandoned:
            logger.info("files: removed what %d upload(s) cut short left in GridFS", abandoned)
        stale = set(await self.thumbnails.file_ids()) - set(await self.files.file_ids())
        for key in stale:
            await self.thumbnails.delete(key)

    async def open(self, key: str) -> OpenedFile:
        """The file kept under `key`, open for reading; FileNotFoundError when there is none."""
        reader = await self.files.open(key)
        return OpenedFile(reader, reader.length, f"GridFS file {key}")

    @asynccontextmanager
    async def media_source(self, key: str) -> AsyncIterator[StoredReader]:
        """What PyAV opens to decode the file under `key`: a file object that reads it from GridFS
        (chunk by chunk, as PyAV reads and seeks), on PyAV's thread."""
        reader = await self.files.open(key)
        try:
            yield reader
        finally:
            await asyncio.to_thread(reader.close)

    async def keep(self, incoming: Path, key: str) -> None:
        """Copy an accepted upload (a file in local `.incoming/`) into GridFS, then remove it."""
        await self.copy_in(incoming, key)
        await asyncio.to_thread(incoming.unlink, missing_ok=True)

    async def copy_in(self, source: Path, key: str) -> StoredFile:
        """Copy a file from outside storage in under `key`, hashing it on the way.

        OSError when `source` cannot be read or is not a regular file; nothing is left behind."""
        file = await asyncio.to_thread(open_regular, source)
        try:
            return await self.receive(file, key)
        finally:
            await asyncio.to_thread(file.close)

    async def receive(self, stream: BinaryIO, key: str) -> StoredFile:
        """Keep what `stream` holds under `key`, read in pieces on a thread (never whole in memory)."""
        return await _write(self.files, key, pieces(stream))

    async def put(self, key: str, data: bytes) -> StoredFile:
        return await _write(self.files, key, iter([data]))

    async def stored(self, key: str) -> StoredFile | None:
        """The size and sha256 of the file under `key`, read whole (not taken from its metadata);
        None when there is none."""
        try:
            reader = await self.files.open(key)
        except FileNotFoundError:
            return None
        try:
            return await asyncio.to_thread(digest_of, reader)
        finally:
            await asyncio.to_thread(reader.close)

    async def list_keys(self) -> list[str]:
        return await self.files.file_ids()

    async def read_thumbnail(self, key: str) -> bytes | None:
        """The thumbnail kept for the file under `key`; None when there is none, or it is damaged
        (two requests writing it at once, say): it is made again."""
        try:
            reader = await self.thumbnails.open(key)
        except FileNotFoundError:
            return None
        try:
            return await asyncio.to_thread(reader.read)
        except DamagedFile as error:
            logger.warning("files: the thumbnail of %s is damaged and will be made again: %s", key, error)
            await self.thumbnails.delete(key)
            return None
        finally:
            await asyncio.to_thread(reader.close)

    async def keep_thumbnail(self, key: str, image: bytes) -> None:
        """Keep a thumbnail for the file under `key`; none when that file was deleted meanwhile.
        Thumbnails are made again when missing, so one that cannot be kept (another request
        keeping the same one at once, the store refusing the write) is logged, not an error."""
        try:
            await _write(self.thumbnails, key, iter([image]))
            if await self.files.find(key) is None:
                await self.thumbnails.delete(key)
        except Exception as error:
            logger.warning("files: the thumbnail of %s was not kept: %s", key, error)

    async def delete(self, key: str) -> None:
        """Delete the file under `key`, and its thumbnail."""
        await self.files.delete(key)
        await self.thumbnails.delete(key)


async def _write(bucket: Bucket, key: str, source: Iterator[bytes]) -> StoredFile:
    """Write `source` under `key`, each piece taken and hashed on a thread; the files document,
    with the sha256, goes last. Whatever an earlier write under this key left (an import or a move
    cut short) is removed first; a write that fails removes what it wrote."""
    await bucket.delete(key)
    upload = bucket.open_upload(key)
    sha256 = hashlib.sha256()
    size = 0
    try:
        while piece := await asyncio.to_thread(_hashed, source, sha256.update):
            size += len(piece)
            await upload.write(piece)
        stored = StoredFile(size=size, sha256=sha256.hexdigest())
        await upload.close({"sha256": stored.sha256})
    except BaseException:
        try:
            await upload.abort()
        except Exception as error:  # the store failing still: its start-up sweep removes the chunks
            logger.warning("files: what a failed write of %s left in GridFS stays until a sweep: %s", key, error)
        raise
    return stored


def _hashed(source: Iterator[bytes], update: Callable[[bytes], Any]) -> bytes:
    piece = next(source, b"")
    update(piece)
    return piece
