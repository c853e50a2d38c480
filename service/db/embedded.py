"""The embedded store: mongomock-motor made durable on SQLite, and as strict as MongoDB where we can hit it.

mongomock keeps documents in memory and answers queries; durable.py keeps them in one SQLite file.
Every operation runs on one dedicated thread (the event loop never blocks on it, and operations
are serialized as MongoDB serializes writes to one document). A write records which documents it
touched; once it returns, their new states are committed in one SQLite transaction before the
caller gets its answer, and if that commit fails the write is undone in memory too, so what a
client was told failed is neither visible now nor after a restart. One process at a time opens a
store (a lock file); other processes read it through `durable.read_snapshot`.

Where mongomock is more lenient than MongoDB in ways the service can hit, it is made strict
here: a document over 16 MiB, or a language override value text search does not support, is
refused and the write rolled back. What mongomock lacks is supplied: `$text` (text_search.py),
`bulk_write` for pymongo's write models (bulk.py), and equality lookups through single-field
unique indexes instead of scans (lookups.py).

GridFS chunks stay in the SQLite file, out of mongomock's memory: they are written on the store's
thread (`add_chunks`) and read through `direct`, from any thread (service/db/gridfs.py).
"""

import asyncio
import dataclasses
import fcntl
import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import bson
import mongomock
from mongomock import helpers
from mongomock.filtering import filter_applies
from mongomock.store import CollectionStore
from mongomock_motor import AsyncMongoMockClient, AsyncMongoMockCollection, AsyncMongoMockDatabase
from pymongo import IndexModel
from pymongo.errors import DocumentTooLarge, OperationFailure, WriteError
from pymongo.results import BulkWriteResult

from service.clock import utc_now
from service.db.bulk import BulkCalls, BulkOutcome
from service.db.converted import old_store_files, read_old_store, set_old_store_aside
from service.db.durable import (
    CHUNKS_SUFFIX,
    DATABASE_NAME,
    FILES_SUFFIX,
    Change,
    DirectReader,
    DurableFile,
    LoadedStore,
    StoreWriteFailed,
    is_chunk_collection,
)
from service.db.indexes import ID_INDEX, IndexSpec, check_new_index
from service.db.lookups import EqualityLookup, is_lookup_value
from service.db.mongodb import MAX_DOCUMENT_BYTES, TEXT_SCORE
from service.db.text_search import TextIndexSpec, TextSearcher, check_languages
from service.durability import fsync_directory

logger = logging.getLogger(__name__)

LOCK_NAME = "LOCK"
TTL_PASS_SECONDS = 60.0
"""How often expired documents are removed: MongoDB's TTL monitor wakes every 60 seconds too."""
CONVERTING_SUFFIX = ".converting"

T = TypeVar("T")

_WRITE_METHODS = (
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "find_one_and_update",
    "find_one_and_replace",
    "find_one_and_delete",
    "bulk_write",
)
_THREADED_METHODS = (
    "find_one",
    "count_documents",
    "estimated_document_count",
    "distinct",
)


class StoreInUse(RuntimeError):
    """Another process has the store open; it was not opened."""


def in_use_message(directory: Path) -> str:
    return (
        f"the embedded store at {directory} is in use by another process; stop it first, "
        "or run every process against MongoDB (MONGODB_URL)"
    )


def _exclusive_lock(path: Path) -> BinaryIO:
    """One process at a time: mongomock's memory is the truth while serving, so two writers would
    each miss the other's writes."""
    handle = open(path, "a+b")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreInUse(in_use_message(path.parent)) from None
    return handle


def store_in_use(directory: Path) -> bool:
    """Whether a process has the store at `directory` open now."""
    path = directory / LOCK_NAME
    if not path.exists():
        return False
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


class _WriteTracker:
    """The prior BSON of every document one write touched (None: it did not exist)."""

    def __init__(self) -> None:
        self.prior: dict[Any, bytes | None] = {}

    def touch(self, key: Any, document: dict[str, Any] | None) -> None:
        if key not in self.prior:
            self.prior[key] = None if document is None else bson.encode(document)


class _TrackedCollectionStore(CollectionStore):
    """mongomock's per-collection document map, reporting insertions and deletions to a tracker,
    with equality lookups for its single-field unique indexes.

    A lookup is exact for every document outside the write in progress: each write refreshes the
    entries of the documents it touched once it ends. Documents the write in progress touched may
    have changed in place, so they are always candidates."""

    tracker: _WriteTracker | None = None
    lookups: dict[str, EqualityLookup]

    def __setitem__(self, key: Any, value: dict[str, Any]) -> None:
        if self.tracker is not None:
            self.tracker.touch(key, self._documents.get(key))
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        if self.tracker is not None:
            self.tracker.touch(key, self._documents.get(key))
        super().__delitem__(key)

    def drop(self) -> None:
        super().drop()
        self.lookups = {}

    def _remove_expired_documents(self) -> None:
        """mongomock's own TTL emulation deletes in memory only, at every read; expiry is the store's
        TTL pass instead (`EmbeddedStore.expire_documents`), which commits what it removes."""

    def unique_fields(self) -> set[str]:
        fields = set()
        for index in self.indexes.values():
            keys = list(index["key"])
            if index.get("unique") and len(keys) == 1 and keys[0][0] != "_id":
                fields.add(keys[0][0])
        return fields

    def lookup_candidates(self, filter: Any) -> list[Any] | None:
        """The keys that can match an equality on a unique field in `filter`; None: scan them all."""
        if not isinstance(filter, dict):
            return None
        fields = self.unique_fields()
        for field, value in filter.items():
            if field in fields and is_lookup_value(value):
                lookup = self.lookups.get(field)
                if lookup is None:
                    lookup = self.lookups[field] = EqualityLookup(field, self._documents)
                found = lookup.candidates(value)
                if self.tracker is not None:
                    found = found | self.tracker.prior.keys()
                return list(found)
        return None

    def refresh_lookups(self, keys: Iterable[Any]) -> None:
        for lookup in self.lookups.values():
            for key in keys:
                lookup.remove(key)
                document = self._documents.get(key)
                if document is not None:
                    lookup.add(key, document)


def _plain_id_lookup(filter: Any) -> list[Any] | None:
    """The `_id` values a filter pins down by equality or `$in`, else None (a full scan is needed)."""
    if not isinstance(filter, dict) or not all(type(key) is str for key in filter):
        return None
    wanted = filter.get("_id")
    if isinstance(wanted, bson.ObjectId | str | int):
        return [wanted]
    if isinstance(wanted, dict) and set(wanted) == {"$in"} and isinstance(wanted["$in"], list):
        if all(isinstance(value, bson.ObjectId | str | int) for value in wanted["$in"]):
            return list(wanted["$in"])
    return None


def _make_tracked(collection: mongomock.Collection) -> mongomock.Collection:
    """Give a mongomock collection an `_id` fast path and write tracking (once per collection)."""
    if getattr(collection, "_embedded_tracked", False):
        return collection
    store = collection._store
    if type(store) is CollectionStore:
        store.__class__ = _TrackedCollectionStore
        store.lookups = {}
    full_scan = collection._iter_documents

    def iter_documents(filter: Any) -> Iterator[dict[str, Any]]:
        ids = _plain_id_lookup(filter)
        if ids is None:
            ids = store.lookup_candidates(filter)
        if ids is None:
            candidates: Iterator[dict[str, Any]] = full_scan(filter)
        else:
            found = (store._documents.get(key) for key in dict.fromkeys(ids))
            candidates = (doc for doc in found if doc is not None and filter_applies(filter, doc))
        for document in candidates:
            if store.tracker is not None:
                store.tracker.touch(document["_id"], document)
            yield document

    collection._iter_documents = iter_documents
    collection._embedded_tracked = True
    return collection


def _dotted(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _in_order(
    ranked: Iterator[tuple[Any, float]], sort: list[tuple[str, Any]], documents: dict[Any, Any]
) -> Iterator[tuple[Any, float]]:
    """`$text` results (key and score, best first) in the asked order; `None` sorts first, as in MongoDB.

    With the score first in the sort, only runs of equal scores need the rest of it, each ordered
    only when the page reaches it."""
    if sort and sort[0][1] == TEXT_SCORE:
        for _, run in groupby(ranked, key=itemgetter(1)):
            yield from _sorted(list(run), sort[1:], documents)
    else:
        yield from _sorted(list(ranked), sort, documents)


def _sorted(
    ranked: list[tuple[Any, float]], sort: list[tuple[str, Any]], documents: dict[Any, Any]
) -> list[tuple[Any, float]]:
    """One stable pass per sort field, the last field first."""
    ordered = list(ranked)
    for field, direction in reversed(sort):
        if direction == TEXT_SCORE:
            ordered.sort(key=lambda item: -item[1])
        else:
            ordered.sort(key=lambda item: _sortable(_dotted(documents[item[0]], field)), reverse=direction == -1)
    return ordered


def _keep_from_the_collector() -> None:
    """Spare the cyclic garbage collector what the store has just loaded or indexed: documents and
    index entries live until replaced and hold no cycles (reference counting frees them), yet each
    full collection would walk all of them, a pause of hundreds of milliseconds at 10,000 transcripts.
    What is garbage already is collected first, so that none of it is kept for good."""
    gc.collect()
    gc.freeze()


def _sortable(value: Any) -> tuple[bool, Any]:
    return (value is not None, value)


def _page(
    ordered: Iterable[tuple[Any, float]], accepts: Callable[[Any], bool], skip: int, limit: int
) -> list[tuple[Any, float]]:
    """One page of keys and scores: the rest of the filter is checked in order, only until the page is full."""
    wanted = skip + limit if limit else None
    accepted = []
    for key, score in ordered:
        if accepts(key):
            accepted.append((key, score))
            if len(accepted) == wanted:
                break
    return accepted[skip:]


@dataclass
class _PendingWrite:
    """What one acknowledged write changed, and how to undo it in memory if its commit fails."""

    changes: list[Change] = dataclasses.field(default_factory=list)
    undo: list[tuple["_TrackedCollectionStore", _WriteTracker]] = dataclasses.field(default_factory=list)


class _Every:
    """Calls `action` every `seconds` on a thread of its own until stopped."""

    def __init__(self, seconds: float, action: Callable[[], Any]) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(seconds, action), name="embedded-store-ttl", daemon=True
        )
        self._thread.start()

    def _run(self, seconds: float, action: Callable[[], Any]) -> None:
        while not self._stop.wait(seconds):
            action()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class EmbeddedStore:
    """The in-process database: mongomock data, one thread to run on, and a SQLite file beneath."""

    def __init__(self, directory: Path, ttl_pass_seconds: float = TTL_PASS_SECONDS) -> None:
        self.directory = directory
        self.ttl_pass_seconds = ttl_pass_seconds
        self.mongo = mongomock.MongoClient(tz_aware=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-store")
        self._ttl_monitor: _Every | None = None
        self._file: DurableFile | None = None
        self._searchers: dict[tuple[str, str], TextSearcher] = {}
        self._index_definitions: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._lock: BinaryIO | None = None
        self._direct: DirectReader | None = None

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args, **kwargs))

    def collection(self, database: str, name: str) -> mongomock.Collection:
        return _make_tracked(self.mongo[database][name])

    # Start-up and shut-down

    def open(self) -> int:
        """Verify and load the store (converting one in the old format first); the documents loaded.

        StoreDamaged, with nothing changed, when any part of it is damaged."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = _exclusive_lock(self.directory / LOCK_NAME)
        try:
            self._convert_old_store()
            self._file = DurableFile(self.directory / DATABASE_NAME)
            loaded = self._file.open()
            self._load(loaded)
            self._remove_partial_files(loaded.chunk_files)
            self._direct = DirectReader(self._file.path)
        except BaseException:
            self._release()
            raise
        _keep_from_the_collector()
        self._ttl_monitor = _Every(self.ttl_pass_seconds, lambda: self._executor.submit(self.expire_documents))
        return loaded.count

    def _convert_old_store(self) -> None:
        """Move a store written before the SQLite layer into it, once, keeping the old files aside.

        The new file is written whole under another name and renamed into place, so a crash
        during the conversion leaves the old store as it was, to be converted again."""
        if not old_store_files(self.directory):
            return
        target = self.directory / DATABASE_NAME
        if not target.exists():
            changes = read_old_store(self.directory)
            converting = target.with_name(target.name + CONVERTING_SUFFIX)
            converting.unlink(missing_ok=True)
            scratch = DurableFile(converting)
            scratch.open()
            scratch.commit(changes)
            scratch.close()
            converting.replace(target)
            fsync_directory(self.directory)
            logger.info("store: converted %d documents from the journal and snapshot files", len(changes))
        set_old_store_aside(self.directory)

    def _load(self, loaded: LoadedStore) -> None:
        for (database, name), documents in loaded.documents.items():
            self.collection(database, name)._store._documents.update((doc["_id"], doc) for doc in documents)
        for database, name, definition in loaded.indexes:
            self._index_definitions[(database, name, definition["name"])] = definition
            self._create_index(self.collection(database, name), definition["key"], definition["options"])

    def _remove_partial_files(self, chunk_files: dict[tuple[str, str], set[Any]]) -> None:
        """Delete the chunks of files whose files document was never written: uploads a crash cut
        short. The store belongs to this process alone, so none of them is still being written."""
        for (database, chunks_name), files_ids in chunk_files.items():
            files = self.collection(database, chunks_name.removesuffix(CHUNKS_SUFFIX) + FILES_SUFFIX)
            partial = [files_id for files_id in files_ids if files_id not in files._store._documents]
            if partial:
                self.file.delete_chunks(database, chunks_name, partial)
                logger.info("store: removed the chunks of %d file(s) a crash left half written", len(partial))

    def add_chunks(self, database: str, collection: str, chunks: list[dict[str, Any]]) -> None:
        """Keep GridFS chunks in the file, durably, in one transaction; on the store's thread."""
        self.file.add_chunks(database, collection, chunks)

    def delete_chunks(self, database: str, collection: str, files_ids: list[Any]) -> None:
        self.file.delete_chunks(database, collection, files_ids)

    @property
    def direct(self) -> DirectReader:
        """Reads of single documents and chunks from the file, on any thread."""
        if self._direct is None:
            raise RuntimeError("the embedded store is not open")
        return self._direct

    def close(self) -> None:
        if self._ttl_monitor is not None:
            self._ttl_monitor.stop()
            self._ttl_monitor = None
        self._executor.shutdown(wait=True)
        self._release()

    def expire_documents(self) -> int:
        """MongoDB's TTL monitor: remove the documents whose date under a single-field index with
        `expireAfterSeconds` is that long past (for an array of dates, its earliest); how many."""
        now = utc_now()
        removed = 0
        for (database, name, _), definition in list(self._index_definitions.items()):
            seconds = definition["options"].get("expireAfterSeconds")
            if seconds is None or len(definition["key"]) != 1:
                continue
            expired = {definition["key"][0][0]: {"$lt": now - timedelta(seconds=seconds)}}
            try:
                removed += self.write(self.collection(database, name), "delete_many", (expired,), {}).deleted_count
            except StoreWriteFailed as error:
                logger.warning("store: expired documents stay until the next pass: %s", error)
        return removed

    def _release(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def check_writable(self) -> None:
        """StoreWriteFailed unless a write could be committed now; RuntimeError when closed."""
        self.file.check_writable()

    @property
    def file(self) -> DurableFile:
        if self._file is None:
            raise RuntimeError("the embedded store is not open")
        return self._file

    # Indexes and reads

    def create_index(
        self, collection: mongomock.Collection, keys: list[tuple[str, Any]], options: dict[str, Any]
    ) -> str:
        """Create the index in memory and keep its definition in the file, unless an identical one
        exists; OperationFailure with MongoDB's code where MongoDB would refuse it."""
        name = options.get("name") or helpers.gen_index_name(keys)
        if not check_new_index(self.index_specs(collection), IndexSpec.of(name, keys, options)):
            return name
        self._create_index(collection, keys, {**options, "name": name})
        place = (*self._place(collection), name)
        definition = {"name": name, "key": [list(pair) for pair in keys], "options": options}
        self.file.save_index(*place, definition)
        self._index_definitions[place] = definition
        return name

    def index_specs(self, collection: mongomock.Collection) -> list[IndexSpec]:
        """The collection's indexes, `_id_` included, in MongoDB's form."""
        specs = [IndexSpec(ID_INDEX, (("_id", 1),))]
        for (database, name, index), definition in self._index_definitions.items():
            if (database, name) == self._place(collection):
                specs.append(IndexSpec.of(index, definition["key"], definition["options"]))
        return specs

    def index_information(self, collection: mongomock.Collection) -> dict[str, dict[str, Any]]:
        """As MongoDB shows them (mongomock keeps neither a text index's weights nor its form)."""
        return {spec.name: spec.information() for spec in self.index_specs(collection)}

    def drop_index(self, collection: mongomock.Collection, name: str) -> None:
        self.file.forget_index(*self._place(collection), name)
        definition = self._index_definitions.pop((*self._place(collection), name), None)
        if definition is not None and any(kind == "text" for _, kind in definition["key"]):
            self._searchers.pop(self._place(collection), None)
        collection.drop_index(name)

    def _create_index(
        self, collection: mongomock.Collection, keys: list[tuple[str, Any]], options: dict[str, Any]
    ) -> str:
        """mongomock keeps a text index's keys but not its options; `$text` needs them all."""
        keys = [(name, kind) for name, kind in keys]
        if any(kind == "text" for _, kind in keys):
            self._searchers[self._place(collection)] = TextSearcher(TextIndexSpec.from_index(keys, options))
        mongomock_options = {
            k: v
            for k, v in options.items()
            if k not in ("weights", "default_language", "language_override", "textIndexVersion")
        }
        return collection.create_index(keys, **mongomock_options)

    @staticmethod
    def _place(collection: mongomock.Collection) -> tuple[str, str]:
        return collection.database.name, collection.name

    def find(self, collection: mongomock.Collection, query: "_FindQuery") -> list[dict[str, Any]]:
        if "$text" in query.filter:
            return self._text_find(collection, query)
        cursor = collection.find(query.filter, query.projection, **query.options)
        if query.sort:
            cursor = cursor.sort(query.sort)
        return list(cursor.skip(query.skip).limit(query.limit))

    def _text_find(self, collection: mongomock.Collection, query: "_FindQuery") -> list[dict[str, Any]]:
        filter, projection, sort, skip, limit = query.filter, query.projection, query.sort, query.skip, query.limit
        searcher = self._searchers.get(self._place(collection))
        if searcher is None:
            raise OperationFailure("text index required for $text query", code=27)
        rest = helpers.patch_datetime_awareness_in_document({k: v for k, v in filter.items() if k != "$text"})
        filter_applies(rest, {})  # refuses a malformed filter even when no document is a candidate
        documents = collection._store._documents
        if not searcher.built:
            searcher.build(documents)
            _keep_from_the_collector()
        matches = searcher.matches(filter["$text"])
        ordered = _in_order(matches.ranked(), sort, documents)
        page = _page(
            ordered, lambda key: matches.holds_phrases(key) and filter_applies(rest, documents[key]), skip, limit
        )
        keys = [key for key, _ in page]
        score_fields = [name for name, value in (projection or {}).items() if value == TEXT_SCORE]
        plain = {name: value for name, value in (projection or {}).items() if name not in score_fields} or None
        found = {document["_id"]: document for document in collection.find({"_id": {"$in": keys}}, plain)}
        for key, score in page:
            for name in score_fields:
                found[key][name] = score
        return [found[key] for key in keys]

    # Writes

    def write(self, collection: mongomock.Collection, method: str, args: tuple, kwargs: dict) -> Any:
        """Run one write, then commit what it touched (or undo it, if MongoDB would refuse it)."""
        if method == "bulk_write":
            return self._bulk_write(collection, *args, **kwargs)
        pending = _PendingWrite()
        try:
            return self._tracked(collection, pending, getattr(collection, method), *args, **kwargs)
        finally:
            self._commit(pending)

    def drop(self, collection: mongomock.Collection) -> None:
        self.file.drop_collection(*self._place(collection))
        for place in [place for place in self._index_definitions if place[:2] == self._place(collection)]:
            del self._index_definitions[place]
        self._searchers.pop(self._place(collection), None)
        collection.drop()

    def _tracked(
        self,
        collection: mongomock.Collection,
        pending: _PendingWrite,
        operation: Callable[..., T],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        """Run one operation and add what it changed to `pending`.

        An operation MongoDB would refuse (a document past 16 MiB, say) is undone and refused."""
        store: _TrackedCollectionStore = collection._store
        tracker = _WriteTracker()
        store.tracker = tracker
        try:
            return operation(*args, **kwargs)
        finally:
            store.tracker = None
            self._settle(collection, tracker, pending)

    def _settle(self, collection: mongomock.Collection, tracker: _WriteTracker, pending: _PendingWrite) -> None:
        store: _TrackedCollectionStore = collection._store
        documents = store._documents
        database, name = self._place(collection)
        changed: list[tuple[Change, dict[str, Any] | None]] = []
        oversized: list[Any] = []
        for key, prior in tracker.prior.items():
            current = documents.get(key)
            if current is None:
                if prior is not None:
                    changed.append((Change(database, name, key, None), None))
                continue
            encoded = bson.encode(current)
            if len(encoded) > MAX_DOCUMENT_BYTES:
                oversized.append(key)
            elif encoded != prior:
                changed.append((Change(database, name, key, encoded), current))
        refusal = self._refusal(collection, [document for _, document in changed], oversized, tracker)
        if refusal is not None:
            self._roll_back(documents, tracker)
        store.refresh_lookups(tracker.prior)
        if refusal is not None:
            raise refusal
        pending.changes.extend(change for change, _ in changed)
        pending.undo.append((store, tracker))

    def _refusal(
        self,
        collection: mongomock.Collection,
        changed: list[dict[str, Any] | None],
        oversized: list[Any],
        tracker: _WriteTracker,
    ) -> Exception | None:
        """What MongoDB would refuse in this write: a document over 16 MiB, or a language override
        value its text index does not support."""
        if oversized:
            return self._too_large(oversized[0], tracker.prior[oversized[0]] is None)
        searcher = self._searchers.get(self._place(collection))
        if searcher is None:
            return None
        try:
            for document in changed:
                if document is not None:
                    check_languages(document, searcher.spec)
        except WriteError as error:
            return error
        return None

    def _bulk_write(
        self,
        collection: mongomock.Collection,
        requests: Iterable[Any],
        ordered: bool = True,
        bypass_document_validation: bool | None = None,
        session: Any = None,
        comment: Any = None,
        let: Any = None,
    ) -> BulkWriteResult:
        """MongoDB's bulk write: each operation on its own (one that fails is refused alone), all of
        them committed at once; unordered goes on past a failure, ordered stops at it."""
        if bypass_document_validation or session is not None or let is not None:
            raise NotImplementedError("the embedded store's bulk_write takes requests and ordered only")
        calls = BulkCalls.of(requests)
        outcome = BulkOutcome()
        pending = _PendingWrite()
        try:
            for index, (method, args, kwargs) in enumerate(calls):
                try:
                    result = self._tracked(collection, pending, getattr(collection, method), *args, **kwargs)
                except (WriteError, DocumentTooLarge) as error:
                    outcome.failed(index, error, args[0])
                    if ordered:
                        break
                else:
                    outcome.succeeded(index, method, result)
        finally:
            self._commit(pending)
        return outcome.result()

    def _commit(self, pending: _PendingWrite) -> None:
        """Make the write durable before it is acknowledged; if that fails, undo it in memory as well."""
        try:
            self.file.commit(pending.changes)
        except StoreWriteFailed:
            for store, tracker in reversed(pending.undo):
                self._roll_back(store._documents, tracker)
                store.refresh_lookups(tracker.prior)
            raise
        self._refresh_text_indexes(pending.changes)

    def _refresh_text_indexes(self, changes: list[Change]) -> None:
        """Bring text indexes up to the committed state: the documents a write changed, and no others."""
        changed: dict[tuple[str, str], dict[Any, None]] = {}
        for change in changes:
            changed.setdefault((change.database, change.collection), {})[change.key] = None
        for place, keys in changed.items():
            searcher = self._searchers.get(place)
            if searcher is not None:
                searcher.refresh(keys, self.collection(*place)._store._documents)

    @staticmethod
    def _roll_back(documents: dict[Any, Any], tracker: _WriteTracker) -> None:
        for key, prior in tracker.prior.items():
            if prior is None:
                documents.pop(key, None)
            else:
                documents[key] = bson.decode(prior)

    @staticmethod
    def _too_large(key: Any, was_insert: bool) -> Exception:
        message = f"document {key} would exceed MongoDB's {MAX_DOCUMENT_BYTES} byte limit"
        if was_insert:
            return DocumentTooLarge(message)
        return WriteError(message, code=17419, details={"errmsg": message, "code": 17419})


def _sort_keys(key_or_list: Any, direction: Any = None) -> list[tuple[str, Any]]:
    """pymongo's two ways of naming a sort, as one list of (key, direction)."""
    if isinstance(key_or_list, str):
        return [(key_or_list, 1 if direction is None else direction)]
    return [(key, value) for key, value in (key_or_list.items() if isinstance(key_or_list, dict) else key_or_list)]


@dataclass
class _FindQuery:
    """One find, as pymongo's arguments and a cursor's sort, skip and limit describe it."""

    filter: dict[str, Any]
    projection: Any
    sort: list[tuple[str, Any]]
    skip: int
    limit: int
    options: dict[str, Any]

    @classmethod
    def of(cls, filter: Any, projection: Any, options: dict[str, Any]) -> "_FindQuery":
        return cls(
            filter=filter or {},
            projection=projection,
            sort=_sort_keys(options.pop("sort")) if options.get("sort") else [],
            skip=options.pop("skip", 0) or 0,
            limit=options.pop("limit", 0) or 0,
            options={key: value for key, value in options.items() if value is not None},
        )


class _EmbeddedCursor:
    """A Motor-like cursor whose results are computed on the store's thread when first read."""

    def __init__(self, store: "EmbeddedStore", compute: Callable[[], list[dict[str, Any]]]) -> None:
        self._store = store
        self._compute = compute
        self._results: list[dict[str, Any]] | None = None

    async def _load(self) -> list[dict[str, Any]]:
        if self._results is None:
            self._results = await self._store.run(self._compute)
        return self._results

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        results = await self._load()
        taken = results if length is None else results[:length]
        self._results = results[len(taken) :]
        return taken

    def __aiter__(self) -> "_EmbeddedCursor":
        return self

    async def __anext__(self) -> dict[str, Any]:
        results = await self._load()
        if not results:
            raise StopAsyncIteration
        return results.pop(0)

    next = __anext__

    async def close(self) -> None:
        self._results = []


class _FindCursor(_EmbeddedCursor):
    """A find's cursor: sort, skip and limit are gathered until the results are first read."""

    def __init__(self, store: "EmbeddedStore", collection: mongomock.Collection, query: _FindQuery) -> None:
        super().__init__(store, lambda: store.find(collection, query))
        self._query = query

    def sort(self, key_or_list: Any, direction: Any = None) -> "_FindCursor":
        self._query.sort = _sort_keys(key_or_list, direction)
        return self

    def skip(self, skip: int) -> "_FindCursor":
        self._query.skip = skip
        return self

    def limit(self, limit: int) -> "_FindCursor":
        self._query.limit = limit
        return self

    def batch_size(self, *args: Any, **kwargs: Any) -> "_FindCursor":
        return self


class EmbeddedCollection(AsyncMongoMockCollection):
    """A Motor collection over the embedded store: reads and writes run on the store's thread."""

    def __init__(self, database: "EmbeddedDatabase", collection: mongomock.Collection) -> None:
        super().__init__(database, collection)
        self._embedded = database.store
        self._mongo = collection

    def find(self, filter: Any = None, projection: Any = None, **options: Any) -> _FindCursor:
        return _FindCursor(self._embedded, self._mongo, _FindQuery.of(filter, projection, options))

    def aggregate(self, pipeline: list[dict[str, Any]], **options: Any) -> _EmbeddedCursor:
        return _EmbeddedCursor(self._embedded, lambda: list(self._mongo.aggregate(pipeline, **options)))

    async def create_index(self, keys: Any, **options: Any) -> str:
        return await self._embedded.run(self._embedded.create_index, self._mongo, _sort_keys(keys), options)

    async def create_indexes(self, indexes: list[IndexModel], **options: Any) -> list[str]:
        names = []
        for index in indexes:
            document = dict(index.document)
            keys = list(document.pop("key").items())
            names.append(await self.create_index(keys, **document))
        return names

    async def drop(self, *args: Any, **kwargs: Any) -> None:
        await self._embedded.run(self._embedded.drop, self._mongo)

    async def index_information(self, *args: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
        return await self._embedded.run(self._embedded.index_information, self._mongo)

    async def drop_index(self, index_or_name: Any, **kwargs: Any) -> None:
        name = index_or_name if isinstance(index_or_name, str) else helpers.gen_index_name(_sort_keys(index_or_name))
        await self._embedded.run(self._embedded.drop_index, self._mongo, name)

    async def drop_indexes(self, **kwargs: Any) -> None:
        for name in await self.index_information():
            if name != "_id_":
                await self.drop_index(name)


def _add_threaded_methods(cls: type) -> type:
    def threaded(name: str) -> Callable[..., Any]:
        async def method(self: EmbeddedCollection, *args: Any, **kwargs: Any) -> Any:
            return await self._embedded.run(getattr(self._mongo, name), *args, **kwargs)

        return method

    def journaled(name: str) -> Callable[..., Any]:
        async def method(self: EmbeddedCollection, *args: Any, **kwargs: Any) -> Any:
            return await self._embedded.run(self._embedded.write, self._mongo, name, args, kwargs)

        return method

    for name in _THREADED_METHODS:
        setattr(cls, name, threaded(name))
    for name in _WRITE_METHODS:
        setattr(cls, name, journaled(name))
    return cls


_add_threaded_methods(EmbeddedCollection)


class EmbeddedDatabase(AsyncMongoMockDatabase):
    def __init__(self, client: "EmbeddedClient", name: str) -> None:
        super().__init__(client, client.store.mongo[name])
        self.store = client.store
        self.name = name

    def get_collection(self, name: str, *args: Any, **kwargs: Any) -> EmbeddedCollection:
        if is_chunk_collection(name):
            raise NotImplementedError(f"{name}: GridFS chunks stay in the embedded store's file; use service.db.gridfs")
        return EmbeddedCollection(self, self.store.collection(self.name, name))


class EmbeddedClient(AsyncMongoMockClient):
    """The Motor-compatible client handed to Beanie and the services."""

    def __init__(self, store: EmbeddedStore) -> None:
        super().__init__(mock_mongo_client=store.mongo)
        self.store = store

    def get_database(self, name: str, *args: Any, **kwargs: Any) -> EmbeddedDatabase:
        return EmbeddedDatabase(self, name)

    def close(self) -> None:
        self.store.close()
