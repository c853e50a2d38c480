"""Where video files live. Files are named by keys the service generates, never by client input."""

import asyncio
import hashlib
import os
import stat
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from service.durability import fsync_directory

COPY_CHUNK_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 256 * 1024
"""A chunk of a file sent to a client: each is read on a worker thread."""
THUMBNAIL_SUFFIX = ".jpg"


@dataclass(frozen=True)
class StoredFile:
    size: int
    sha256: str


class IncomingFile:
    """A file being received: written, counted and hashed as it comes, and on disk (fsynced)
    once finished. Blocking: use it from a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.sha256 = hashlib.sha256()
        self._file: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        if self._file is None:
            self._file = open(self.path, "wb")
        self._file.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def finish(self) -> StoredFile:
        if self._file is None:
            self._file = open(self.path, "wb")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return StoredFile(size=self.size, sha256=self.sha256.hexdigest())

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        self.path.unlink(missing_ok=True)


class OpenedFile:
    """A stored file open for reading, read in chunks on worker threads. Opening blocks: do it on a thread."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")
        self.size = os.fstat(self._file.fileno()).st_size

    async def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` (exclusive); the file is closed once they are read or the reader stops."""
        try:
            await asyncio.to_thread(self._file.seek, start)
            while start < end:
                chunk = await asyncio.to_thread(self._file.read, min(READ_CHUNK_BYTES, end - start))
                if not chunk:
                    raise OSError(f"{self._file.name} ended at byte {start} of the {self.size} it had when opened")
                start += len(chunk)
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Closing a file opened for reading writes nothing, so it does not wait on the disk."""
        self._file.close()


class LocalStorage:
    """A folder of files; uploads land in `.incoming/` and are renamed into place once accepted.

    Thumbnails are made from the files (service/media/) and kept in `.thumbnails/`, named by
    their video file's key: not files of their own, so backups and `check` leave them out, and
    a file's deletion takes its thumbnail with it."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming_dir = root / ".incoming"
        self.thumbnails_dir = root / ".thumbnails"

    def prepare(self) -> None:
        """Create the folders; remove uploads a crash left half-received, and thumbnails whose
        file was deleted while they were being made."""
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        self.thumbnails_dir.mkdir(exist_ok=True)
        for leftover in self.incoming_dir.iterdir():
            leftover.unlink(missing_ok=True)
        for thumbnail in self.thumbnails_dir.iterdir():
            if not (self.root / thumbnail.name.removesuffix(THUMBNAIL_SUFFIX)).is_file():
                thumbnail.unlink(missing_ok=True)

    def new_incoming_path(self) -> Path:
        return self.incoming_dir / f"{uuid.uuid4().hex}.part"

    @staticmethod
    def new_key() -> str:
        return uuid.uuid4().hex

    def path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

    def thumbnail_path(self, key: str) -> Path:
        return self.thumbnails_dir / (self.path(key).name + THUMBNAIL_SUFFIX)

    async def open(self, key: str) -> OpenedFile:
        """The file kept under `key`, open for reading; FileNotFoundError when there is none."""
        return await asyncio.to_thread(OpenedFile, self.path(key))

    async def keep(self, incoming: Path, key: str) -> None:
        """Move an accepted upload into place, durably."""
        await asyncio.to_thread(self._rename_durably, incoming, self.path(key))

    @staticmethod
    def _rename_durably(source: Path, target: Path) -> None:
        source.replace(target)
        fsync_directory(target.parent)

    async def copy_in(self, source: Path, key: str) -> StoredFile:
        """Copy a file from outside storage into place under `key`, durably, hashing it on the way.

        OSError when `source` cannot be read or is not a regular file; nothing is left behind."""
        return await asyncio.to_thread(self._copy_in, source, key)

    async def put(self, key: str, data: bytes) -> StoredFile:
        """Keep `data` under `key`, durably."""
        return await asyncio.to_thread(self._receive, [data], key)

    async def read_thumbnail(self, key: str) -> bytes | None:
        """The thumbnail kept for the file under `key`; None when none was made yet."""
        try:
            return await asyncio.to_thread(self.thumbnail_path(key).read_bytes)
        except FileNotFoundError:
            return None

    async def keep_thumbnail(self, key: str, image: bytes) -> None:
        """Keep a thumbnail for the file under `key`, whole or not at all; none when that file was
        deleted meanwhile."""
        await asyncio.to_thread(self._keep_thumbnail, key, image)

    def _keep_thumbnail(self, key: str, image: bytes) -> None:
        self.thumbnails_dir.mkdir(parents=True, exist_ok=True)
        self._write(self.thumbnail_path(key), [image])
        if not self.path(key).is_file():
            self.thumbnail_path(key).unlink(missing_ok=True)

    async def receive(self, stream: BinaryIO, key: str) -> StoredFile:
        """Keep what `stream` holds under `key`, durably, read in chunks (never whole in memory)."""
        return await asyncio.to_thread(self._receive, _chunks(stream), key)

    def digest(self, key: str) -> StoredFile:
        """The size and sha256 of the file kept under `key`, read in chunks; OSError when it cannot
        be read. Blocking: call it from a thread."""
        sha256 = hashlib.sha256()
        size = 0
        with open(self.path(key), "rb") as file:
            for chunk in _chunks(file):
                sha256.update(chunk)
                size += len(chunk)
        return StoredFile(size=size, sha256=sha256.hexdigest())

    def keys(self) -> list[str]:
        """The keys of every file kept here (uploads still arriving in `.incoming/` aside). Blocking."""
        if not self.root.is_dir():
            return []
        with os.scandir(self.root) as entries:
            return sorted(
                entry.name for entry in entries if entry.name.isalnum() and entry.is_file(follow_symlinks=False)
            )

    def _copy_in(self, source: Path, key: str) -> StoredFile:
        with open(source, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise OSError(f"{source} is not a regular file")
            return self._receive(_chunks(file), key)

    def _receive(self, chunks: Iterable[bytes], key: str) -> StoredFile:
        """Write into `.incoming/`, fsync, then rename into place: a crash leaves no half file under `key`."""
        return self._write(self.path(key), chunks)

    def _write(self, target: Path, chunks: Iterable[bytes]) -> StoredFile:
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        incoming = IncomingFile(self.new_incoming_path())
        try:
            for chunk in chunks:
                incoming.write(chunk)
            stored = incoming.finish()
            self._rename_durably(incoming.path, target)
        except BaseException:
            incoming.discard()
            raise
        return stored

    async def delete(self, key: str) -> None:
        """Delete the file under `key`, and its thumbnail."""
        await asyncio.to_thread(self._delete, key)

    def _delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
        self.thumbnail_path(key).unlink(missing_ok=True)


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(COPY_CHUNK_BYTES):
        yield chunk
