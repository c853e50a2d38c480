"""Where video files live. Files are named by keys the service generates, never by client input."""

import asyncio
import hashlib
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from service.durability import fsync_directory

COPY_CHUNK_BYTES = 1024 * 1024


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


class LocalStorage:
    """A folder of files; uploads land in `.incoming/` and are renamed into place once accepted."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming_dir = root / ".incoming"

    def prepare(self) -> None:
        """Create the folders and remove uploads a crash left half-received."""
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.incoming_dir.iterdir():
            leftover.unlink(missing_ok=True)

    def new_incoming_path(self) -> Path:
        return self.incoming_dir / f"{uuid.uuid4().hex}.part"

    @staticmethod
    def new_key() -> str:
        return uuid.uuid4().hex

    def path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

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
        target = self.path(key)
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
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(COPY_CHUNK_BYTES):
        yield chunk
