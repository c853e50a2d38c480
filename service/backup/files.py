"""The stored files documents refer to, and whether a missing one is damage or a video deleted since."""

from dataclasses import dataclass
from typing import Any

from service.config import Settings
from service.db.snapshot import open_snapshot
from service.storage.service import LocalStorage
from service.videos.models import Video

VIDEOS = Video.Settings.name


@dataclass(frozen=True)
class FileRef:
    """One stored file as a document records it."""

    collection: str
    document_id: str
    key: str
    size: int
    sha256: str

    def describe(self) -> str:
        return f"{self.key} ({self.collection} {self.document_id})"


def file_refs(collection: str, document: dict[str, Any]) -> list[FileRef]:
    """The files in local storage a document refers to: a video's `file`, and the texts the SQLite
    migration moved out of a document too large (`legacy.<column>_file`). A `file` in another
    storage (GridFS) lives in the store's own collections and is exported with them."""
    if collection != VIDEOS:
        return []
    found = []
    file = document.get("file")
    if isinstance(file, dict) and file.get("storage", LocalStorage.kind) == LocalStorage.kind:
        found.append(file)
    legacy = document.get("legacy")
    if isinstance(legacy, dict):
        found.extend(value for name, value in legacy.items() if name.endswith("_file") and isinstance(value, dict))
    document_id = str(document.get("_id"))
    return [
        FileRef(collection, document_id, facts["key"], facts["size"], facts["sha256"])
        for facts in found
        if isinstance(facts.get("key"), str)
        and isinstance(facts.get("size"), int)
        and isinstance(facts.get("sha256"), str)
    ]


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
