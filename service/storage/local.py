"""Files in a folder of this machine (STORAGE=local). Files are named by keys the service
generates, never by client input."""

import asyncio
import hashlib
import os
import stat
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

from service.durability import fsync_directory
from service.storage.schemas import StoredFile

COPY_CHUNK_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 256 * 1024
"""A chunk of a file sent to a client: each is read on a worker thread."""
THUMBNAIL_SUFFIX = ".jpg"


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
    """A stored file open for reading (a file object of either storage), read in chunks on worker threads."""

    def __init__(self, file: Any, size: int, name: str) -> None:
        self.file = file
        self.size = size
        self.name = name

    @classmethod
    def of_path(cls, path: Path) -> "OpenedFile":
        """Blocking: call it from a thread."""
        file = open(path, "rb")
        return cls(file, os.fstat(file.fileno()).st_size, str(path))

    async def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` (exclusive); the file is closed once they are read or the reader stops."""
        try:
            await asyncio.to_thread(self.file.seek, start)
            while start < end:
                chunk = await asyncio.to_thread(self.file.read, min(READ_CHUNK_BYTES, end - start))
                if not chunk:
                    raise OSError(f"{self.name} ended at byte {start} of the {self.size} it had when opened")
                start += len(chunk)
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Closing a file opened for reading writes nothing, so it does not wait on the disk."""
        self.file.close()


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
        return await asyncio.to_thread(OpenedFile.of_path, self.path(key))

    @asynccontextmanager
    async def media_source(self, key: str) -> AsyncIterator[Path]:
        """What PyAV opens to decode the file under `key`: its path."""
        yield self.path(key)

    async def stored(self, key: str) -> StoredFile | None:
        """The size and sha256 of the file under `key`, read whole; None when there is none."""
        try:
            return await asyncio.to_thread(self.digest, key)
        except FileNotFoundError:
            return None

    async def list_keys(self) -> list[str]:
        return await asyncio.to_thread(self.keys)

    async def keep(self, incoming: Path, key: str) -> None:
        """Move an accepted upload (a file in `.incoming/`) into place, durably."""
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
        return await asyncio.to_thread(self._receive, pieces(stream), key)

    def digest(self, key: str) -> StoredFile:
        """The size and sha256 of the file kept under `key`, read in chunks; OSError when it cannot
        be read. Blocking: call it from a thread."""
        with open(self.path(key), "rb") as file:
            return digest_of(file)

    def keys(self) -> list[str]:
        """The keys of every file kept here (uploads still arriving in `.incoming/` aside). Blocking."""
        if not self.root.is_dir():
            return []
        with os.scandir(self.root) as entries:
            return sorted(
                entry.name for entry in entries if entry.name.isalnum() and entry.is_file(follow_symlinks=False)
            )

    def _copy_in(self, source: Path, key: str) -> StoredFile:
        with open_regular(source) as file:
            return self._receive(pieces(file), key)

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


def pieces(file: Any) -> Iterator[bytes]:
    """A readable file, COPY_CHUNK_BYTES at a time."""
    while chunk := file.read(COPY_CHUNK_BYTES):
        yield chunk


def digest_of(file: Any) -> StoredFile:
    """The size and sha256 of what a readable file holds, read in pieces. Blocking."""
    sha256 = hashlib.sha256()
    size = 0
    for piece in pieces(file):
        sha256.update(piece)
        size += len(piece)
    return StoredFile(size=size, sha256=sha256.hexdigest())


def open_regular(source: Path) -> BinaryIO:
    """A file from outside storage, open for reading; OSError when it is not a regular file."""
    file = open(source, "rb")
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.close()
        raise OSError(f"{source} is not a regular file")
    return file
