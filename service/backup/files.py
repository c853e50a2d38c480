"""The stored files documents refer to, where they are, and whether a missing one is damage or a
video deleted since."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from service.config import Settings
from service.db.gridfs import FILES_BUCKET, OfflineFiles, StoredReader
from service.db.snapshot import open_offline_files, open_snapshot
from service.storage.gridfs import GridFSStorage
from service.storage.local import LocalStorage, OpenedFile, digest_of
from service.storage.schemas import StoredFile
from service.videos.models import Video, stored_file_fields

VIDEOS = Video.Settings.name


@dataclass(frozen=True)
class FileRef:
    """One stored file as a document records it."""

    collection: str
    document_id: str
    storage: str
    key: str
    size: int
    sha256: str

    def describe(self) -> str:
        return f"{self.key} ({self.collection} {self.document_id})"


def file_refs(collection: str, document: dict[str, Any]) -> list[FileRef]:
    """The stored files a document refers to, in whichever storage each is (none said: local)."""
    if collection != VIDEOS:
        return []
    document_id = str(document.get("_id"))
    return [
        FileRef(
            collection,
            document_id,
            facts.get("storage", LocalStorage.kind),
            facts["key"],
            facts["size"],
            facts["sha256"],
        )
        for _, facts in stored_file_fields(document)
        if isinstance(facts.get("key"), str)
        and isinstance(facts.get("size"), int)
        and isinstance(facts.get("sha256"), str)
    ]


def place_files(collection: str, document: dict[str, Any], storage: str) -> None:
    """Record every stored file of the document as kept in `storage` (import writes them there)."""
    if collection == VIDEOS:
        for _, facts in stored_file_fields(document):
            facts["storage"] = storage


def still_referenced(settings: Settings, refs: list[FileRef]) -> set[FileRef]:
    """Those of `refs` a fresh read of the store still holds: a file found missing while the
    service runs may belong to a video deleted after the first read (the document goes first,
    then its file), which is no damage."""
    wanted = set(refs)
    found: set[FileRef] = set()
    with open_snapshot(settings) as snapshot:
        for collection in {ref.collection for ref in refs}:
            for document in snapshot.documents(collection):
                found.update(ref for ref in file_refs(collection, document) if ref in wanted)
    return found


class StoredFiles:
    """The stored files of the configured deployment, read synchronously by a command beside the
    service (export, check): local ones from the folder, GridFS ones from the store."""

    def __init__(self, local: LocalStorage, gridfs: OfflineFiles) -> None:
        self.local = local
        self._gridfs = gridfs

    def open(self, storage: str, key: str) -> OpenedFile | None:
        """The file under `key` in `storage`, open for reading; None when it is missing.
        ValueError for a key that is not a storage key; OSError when it cannot be read."""
        if storage == GridFSStorage.kind:
            reader: StoredReader | None = self._gridfs.open(key)
            return None if reader is None else OpenedFile(reader, reader.length, f"GridFS file {key}")
        try:
            return OpenedFile.of_path(self.local.path(key))
        except FileNotFoundError:
            return None

    def digest(self, storage: str, key: str) -> StoredFile | None:
        """The file's size and sha256, read whole; None when it is missing."""
        opened = self.open(storage, key)
        if opened is None:
            return None
        try:
            return digest_of(opened.file)
        finally:
            opened.close()

    def where(self, storage: str) -> str:
        if storage == GridFSStorage.kind:
            return f"GridFS (bucket {FILES_BUCKET})"
        return str(self.local.root)


@contextmanager
def open_stored_files(settings: Settings) -> Iterator[StoredFiles]:
    with open_offline_files(settings) as gridfs:
        yield StoredFiles(LocalStorage(settings.files_dir), gridfs)
