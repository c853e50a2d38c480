"""`video-analyzer check`: is the store sound, and are its files what its documents record?

Read-only, so it runs beside `video-analyzer serve` (one snapshot, service/db/snapshot.py) as well
as on a stopped or crashed store (whose WAL is then checked too). On the embedded store the
snapshot runs SQLite's integrity check and verifies every row's checksum and BSON; on every store
each document is validated against its Beanie model, and every stored file it refers to is hashed
and held against the size and sha256 the document records, in whichever storage it is (a local
folder, or GridFS, whose chunks are verified as its files are read). Files in storage that no document
refers to are reported as warnings: a crash between storing a file and writing its document
leaves one, which loses nothing.
"""

import asyncio
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError

from service.backup.documents import collection_models, initialise_models, model_problem
from service.backup.files import FileRef, StoredFiles, file_refs, open_stored_files, still_referenced
from service.backup.schemas import CheckReport
from service.config import Settings
from service.db.durable import CHUNKS_SUFFIX, FILES_SUFFIX, is_chunk_collection
from service.db.gridfs import FILES_BUCKET
from service.db.snapshot import StoreSnapshot, open_snapshot
from service.storage.gridfs import GridFSStorage
from service.storage.local import LocalStorage
from service.storage.schemas import StoredFile

HASHING_THREADS = 4
MISSING = "missing"
LISTED_IDS = 5
"""File ids a warning names before it says how many more there are."""


@dataclass
class _Buckets:
    """The ids of the files documents and of the files with chunks, in each GridFS bucket."""

    files: defaultdict[str, set[Any]] = field(default_factory=lambda: defaultdict(set))
    chunked: dict[str, set[Any]] = field(default_factory=dict)

    def cut_short(self) -> dict[str, list[Any]]:
        """Per bucket, the files with chunks but no files document (an upload cut short)."""
        return {
            bucket: sorted(chunked - self.files[bucket], key=str)
            for bucket, chunked in self.chunked.items()
            if chunked - self.files[bucket]
        }


class CheckFailed(Exception):
    """The check could not run (no store, MongoDB out of reach)."""


async def run_check(settings: Settings) -> CheckReport:
    """Check the configured store and storage; nothing is written to either."""
    await initialise_models()
    try:
        return await asyncio.to_thread(_check, settings)
    except FileNotFoundError as error:
        raise CheckFailed(str(error)) from None
    except PyMongoError as error:
        raise CheckFailed(f"MongoDB: {error}") from None


def _check(settings: Settings) -> CheckReport:
    report = CheckReport()
    with open_snapshot(settings) as snapshot:
        report.store = snapshot.description
        refs, buckets = _check_documents(snapshot, report)
        report.problems[:0] = snapshot.damage.report().splitlines()
        live, damaged = snapshot.live, bool(snapshot.damage)
    with open_stored_files(settings) as files:
        _check_files(settings, files, refs, live, report)
        _warn_unreferenced(files, sorted(buckets.files[FILES_BUCKET]), refs, damaged, report)
    _warn_cut_short(buckets, report)
    return report


def _check_documents(snapshot: StoreSnapshot, report: CheckReport) -> tuple[list[FileRef], _Buckets]:
    """Validate every document; the stored files they refer to, and what each GridFS bucket
    holds. Chunks are not documents: only the files they belong to are listed."""
    models = collection_models()
    refs: list[FileRef] = []
    buckets = _Buckets()
    for name in snapshot.collections():
        if is_chunk_collection(name):
            buckets.chunked[name.removesuffix(CHUNKS_SUFFIX)] = snapshot.chunk_files(name)
            continue
        snapshot.indexes(name)  # reading the definitions verifies them: damage lands in snapshot.damage
        model = models.get(name)
        read = 0
        for document in snapshot.documents(name):
            read += 1
            refs.extend(file_refs(name, document))
            if name.endswith(FILES_SUFFIX):
                buckets.files[name.removesuffix(FILES_SUFFIX)].add(document["_id"])
            if model is not None:
                report.validated += 1
                problem = model_problem(model, document)
                if problem:
                    report.problems.append(f"collection {name}: document {document.get('_id')}: {problem}")
        report.collections[name] = read
    return refs, buckets


def _check_files(settings: Settings, files: StoredFiles, refs: list[FileRef], live: bool, report: CheckReport) -> None:
    first = {(ref.storage, ref.key): ref for ref in refs}
    places = sorted(first)
    with ThreadPoolExecutor(max_workers=HASHING_THREADS) as pool:
        found = pool.map(lambda place: _digest(files, first[place]), places)
        digests = dict(zip(places, found, strict=True))
    report.files_checked = sum(isinstance(digest, StoredFile) for digest in digests.values())
    report.bytes_hashed = sum(digest.size for digest in digests.values() if isinstance(digest, StoredFile))
    missing = [ref for ref in refs if digests[(ref.storage, ref.key)] == MISSING]
    confirmed = still_referenced(settings, missing) if live and missing else set(missing)
    for ref in refs:
        digest = digests[(ref.storage, ref.key)]
        problem = _file_problem(ref, digest, files)
        if problem and (digest != MISSING or ref in confirmed):
            report.problems.append(f"file {ref.describe()}: {problem}")


def _digest(files: StoredFiles, ref: FileRef) -> StoredFile | str:
    """The file's size and sha256, or what stopped reading it."""
    try:
        digest = files.digest(ref.storage, ref.key)
    except (OSError, ValueError) as error:
        return f"cannot be read: {error}"
    return MISSING if digest is None else digest


def _file_problem(ref: FileRef, digest: StoredFile | str, files: StoredFiles) -> str | None:
    if digest == MISSING:
        return f"missing from {files.where(ref.storage)}"
    if isinstance(digest, str):
        return digest
    if digest.size != ref.size:
        return f"{digest.size} bytes, its document records {ref.size}"
    if digest.sha256 != ref.sha256:
        return f"sha256 {digest.sha256}, its document records {ref.sha256}"
    return None


def _warn_unreferenced(
    files: StoredFiles, gridfs_keys: list[str], refs: list[FileRef], damaged: bool, report: CheckReport
) -> None:
    referenced = {(ref.storage, ref.key) for ref in refs}
    advice = (
        "it may belong to a damaged document: keep it until the store is recovered"
        if damaged
        else "left by a crash between storing a file and writing its document, or an upload arriving now"
    )
    for key in files.local.keys():
        if (LocalStorage.kind, key) not in referenced:
            report.warnings.append(f"file {files.local.path(key)}: no document refers to it ({advice})")
    for key in gridfs_keys:
        if (GridFSStorage.kind, key) not in referenced:
            report.warnings.append(f"GridFS file {key}: no document refers to it ({advice})")


def _warn_cut_short(buckets: _Buckets, report: CheckReport) -> None:
    """Chunks without their files document lose nothing (no file is visible without it), but
    take room until a start-up sweep removes them."""
    for bucket, ids in buckets.cut_short().items():
        named = ", ".join(str(file_id) for file_id in ids[:LISTED_IDS])
        more = f" and {len(ids) - LISTED_IDS} more" if len(ids) > LISTED_IDS else ""
        report.warnings.append(
            f"GridFS bucket {bucket}: chunks of {len(ids)} file(s) with no files document: {named}{more} "
            "(an upload, move or import cut short, or one arriving now; `serve` removes them when it "
            "starts: on the embedded store at once, on MongoDB an hour after their last chunk)"
        )
