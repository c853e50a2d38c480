"""`video-analyzer check`: is the store sound, and are its files what its documents record?

Read-only, so it runs beside `video-analyzer serve` (one snapshot, service/db/snapshot.py) as well
as on a stopped or crashed store (whose WAL is then checked too). On the embedded store the
snapshot runs SQLite's integrity check and verifies every row's checksum and BSON; on every store
each document is validated against its Beanie model, and every stored file it refers to is hashed
and held against the size and sha256 the document records. Files in storage that no document
refers to are reported as warnings: a crash between storing a file and writing its document
leaves one, which loses nothing.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from pymongo.errors import PyMongoError

from service.backup.documents import collection_models, initialise_models, model_problem
from service.backup.files import FileRef, file_refs, still_referenced
from service.backup.schemas import CheckReport
from service.config import Settings
from service.db.snapshot import StoreSnapshot, open_snapshot
from service.storage.service import LocalStorage, StoredFile

HASHING_THREADS = 4


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
    storage = LocalStorage(settings.files_dir)
    report = CheckReport()
    with open_snapshot(settings) as snapshot:
        report.store = snapshot.description
        refs = _check_documents(snapshot, report)
        report.problems[:0] = snapshot.damage.report().splitlines()
        live, damaged = snapshot.live, bool(snapshot.damage)
    _check_files(settings, storage, refs, live, report)
    _warn_unreferenced(storage, refs, damaged, report)
    return report


def _check_documents(snapshot: StoreSnapshot, report: CheckReport) -> list[FileRef]:
    models = collection_models()
    refs: list[FileRef] = []
    for name in snapshot.collections():
        snapshot.indexes(name)  # reading the definitions verifies them: damage lands in snapshot.damage
        model = models.get(name)
        read = 0
        for document in snapshot.documents(name):
            read += 1
            refs.extend(file_refs(name, document))
            if model is not None:
                report.validated += 1
                problem = model_problem(model, document)
                if problem:
                    report.problems.append(f"collection {name}: document {document.get('_id')}: {problem}")
        report.collections[name] = read
    return refs


def _check_files(
    settings: Settings, storage: LocalStorage, refs: list[FileRef], live: bool, report: CheckReport
) -> None:
    keys = sorted({ref.key for ref in refs})
    with ThreadPoolExecutor(max_workers=HASHING_THREADS) as pool:
        digests = dict(zip(keys, pool.map(lambda key: _digest(storage, key), keys), strict=True))
    report.files_checked = sum(isinstance(digest, StoredFile) for digest in digests.values())
    report.bytes_hashed = sum(digest.size for digest in digests.values() if isinstance(digest, StoredFile))
    missing = [ref for ref in refs if digests[ref.key] == "missing"]
    confirmed = still_referenced(settings, missing) if live and missing else set(missing)
    for ref in refs:
        problem = _file_problem(ref, digests[ref.key], storage)
        if problem and (digests[ref.key] != "missing" or ref in confirmed):
            report.problems.append(f"file {ref.describe()}: {problem}")


def _digest(storage: LocalStorage, key: str) -> StoredFile | str:
    """The file's size and sha256, or what stopped reading it."""
    try:
        return storage.digest(key)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as error:
        return f"cannot be read: {error}"


def _file_problem(ref: FileRef, digest: StoredFile | str, storage: LocalStorage) -> str | None:
    if digest == "missing":
        return f"missing from {storage.root}"
    if isinstance(digest, str):
        return digest
    if digest.size != ref.size:
        return f"{digest.size} bytes, its document records {ref.size}"
    if digest.sha256 != ref.sha256:
        return f"sha256 {digest.sha256}, its document records {ref.sha256}"
    return None


def _warn_unreferenced(storage: LocalStorage, refs: list[FileRef], damaged: bool, report: CheckReport) -> None:
    referenced = {ref.key for ref in refs}
    advice = (
        "it may belong to a damaged document: keep it until the store is recovered"
        if damaged
        else "left by a crash between storing a file and writing its document, or an upload arriving now"
    )
    for key in storage.keys():
        if key not in referenced:
            report.warnings.append(f"file {storage.path(key)}: no document refers to it ({advice})")
