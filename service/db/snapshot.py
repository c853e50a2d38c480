"""One read-only view of the configured store for commands that run beside the service (`export`,
`check`): documents, index definitions and what was found damaged, from one consistent state
wherever the store can give one.

- The embedded store: one SQLite read transaction (`durable.read_snapshot`), so every collection is
  read as of one moment while `video-analyzer serve` keeps writing. A store no process has open
  (stopped, or crashed) has its WAL checked as well.
- MongoDB 5.0+ on a replica set or a sharded cluster: one session with `snapshot=True`; its first
  read picks a majority-committed cluster time and every later read in it reads at that time
  (https://www.mongodb.com/docs/manual/reference/read-concern-snapshot/). The server keeps that
  history for `minSnapshotHistoryWindowInSeconds` (300 s by default); a read past it fails with
  SnapshotTooOld (code 239) instead of returning something else.
- A standalone MongoDB server has no snapshot reads: collections are read one after the other,
  each document whole, but writes made meanwhile may be seen in some collections and not others.

Reads use PyMongo's synchronous client: these commands are plain scripts, and the service's Motor
client stays what the running service uses.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.database import Database as MongoDatabase
from pymongo.errors import OperationFailure

from service.config import Settings
from service.db.durable import DATABASE_NAME, Damage, DirectReader, Snapshot, read_snapshot
from service.db.embedded import store_in_use
from service.db.gridfs import OfflineFiles, embedded_offline_files, mongodb_offline_files
from service.db.service import client_options

SNAPSHOT = "snapshot"
COLLECTION_BY_COLLECTION = "collection-by-collection"
SNAPSHOT_READS_WIRE_VERSION = 13
"""MongoDB 5.0, the first with snapshot reads outside transactions."""
SNAPSHOT_TOO_OLD = 239


class StoreSnapshot(Protocol):
    kind: str
    """`embedded` or `mongodb`."""
    consistency: str
    """`snapshot` (one point in time) or `collection-by-collection`."""
    description: str
    live: bool
    """Whether another process may be writing while this is read."""
    damage: Damage

    def collections(self) -> list[str]: ...

    def documents(self, collection: str) -> Iterator[dict[str, Any]]: ...

    def indexes(self, collection: str) -> list[dict[str, Any]]:
        """The collection's index definitions, as MongoDB's listIndexes gives them."""
        ...

    def chunk_files(self, collection: str) -> set[Any]:
        """The `files_id` of every chunk in a GridFS bucket's collection of chunks."""
        ...


class EmbeddedSnapshot:
    """The configured database of the embedded store, in one read transaction. What SQLite cannot
    read (a damaged page) becomes damage, never an exception."""

    kind = "embedded"
    consistency = SNAPSHOT

    def __init__(self, snapshot: Snapshot | None, database: str, damage: Damage, live: bool) -> None:
        self._snapshot = snapshot
        self._database = database
        self.damage = damage
        self.live = live
        self._definitions: list[tuple[str, str, dict[str, Any]]] | None = None
        state = "served by another process: read in one SQLite read transaction" if live else "not in use"
        self.description = f"embedded store at {damage.path} ({state})"

    def collections(self) -> list[str]:
        if self._snapshot is None:
            return []
        try:
            return [name for database, name in self._snapshot.collections() if database == self._database]
        except sqlite3.DatabaseError as error:
            self.damage.add_problem(f"SQLite cannot read the list of collections: {error}")
            return []

    def documents(self, collection: str) -> Iterator[dict[str, Any]]:
        if self._snapshot is None:
            return
        read = 0
        try:
            for document in self._snapshot.documents(self._database, collection):
                read += 1
                yield document
        except sqlite3.DatabaseError as error:
            self.damage.add_problem(
                f"collection {collection}: SQLite cannot read past its first {read} sound documents: {error}"
            )

    def chunk_files(self, collection: str) -> set[Any]:
        """Every chunk is read and verified (its checksum and BSON), as the store's start-up does, so
        that damage the next start would refuse is found here first."""
        if self._snapshot is None:
            return set()
        try:
            return self._snapshot.chunk_files(self._database, collection)
        except sqlite3.DatabaseError as error:
            self.damage.add_problem(f"collection {collection}: SQLite cannot read its chunks: {error}")
            return set()

    def indexes(self, collection: str) -> list[dict[str, Any]]:
        return [
            _listed_index(definition)
            for database, name, definition in self._index_definitions()
            if (database, name) == (self._database, collection)
        ]

    def _index_definitions(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every index definition, read (and its damage noted) once for the whole snapshot."""
        if self._definitions is None:
            self._definitions = []
            if self._snapshot is not None:
                try:
                    self._definitions = self._snapshot.indexes()
                except sqlite3.DatabaseError as error:
                    self.damage.add_problem(f"SQLite cannot read the index definitions: {error}")
        return self._definitions


def _listed_index(definition: dict[str, Any]) -> dict[str, Any]:
    """An embedded index definition in the shape MongoDB's listIndexes gives: key, name, options."""
    return {
        "key": {field: kind for field, kind in definition["key"]},
        "name": definition["name"],
        **definition["options"],
    }


class MongoSnapshot:
    """The configured MongoDB database, read in a snapshot session when the server has them."""

    kind = "mongodb"
    live = True

    def __init__(self, database: MongoDatabase, names: list[str], session: ClientSession | None) -> None:
        self._database = database
        self._names = names
        self._session = session
        self.consistency = SNAPSHOT if session is not None else COLLECTION_BY_COLLECTION
        self.damage = Damage(Path(f"MongoDB database {database.name}"))
        how = "one snapshot session" if session is not None else "collection by collection (no snapshot reads)"
        self.description = f"MongoDB database {database.name} ({how})"

    def collections(self) -> list[str]:
        return list(self._names)

    def documents(self, collection: str) -> Iterator[dict[str, Any]]:
        yield from self._database[collection].find({}, session=self._session)

    def indexes(self, collection: str) -> list[dict[str, Any]]:
        return [dict(index) for index in self._database[collection].list_indexes()]

    def chunk_files(self, collection: str) -> set[Any]:
        """From GridFS's `files_id, n` index; the chunks themselves are not read."""
        return set(self._database[collection].distinct("files_id", session=self._session))


@contextmanager
def open_snapshot(settings: Settings) -> Iterator[StoreSnapshot]:
    """The configured store, read-only. FileNotFoundError when there is no embedded store;
    PyMongo's errors when MongoDB cannot be reached."""
    if settings.uses_embedded_store:
        with _embedded_snapshot(settings.embedded_dir, settings.mongodb_db) as snapshot:
            yield snapshot
    else:
        with _mongodb_snapshot(settings) as snapshot:
            yield snapshot


@contextmanager
def _embedded_snapshot(directory: Path, database: str) -> Iterator[EmbeddedSnapshot]:
    """The WAL is checked only when no process has the store open: a live writer's log may be mid-append."""
    live = store_in_use(directory)
    with ExitStack() as stack:
        try:
            opened: Snapshot | None = stack.enter_context(read_snapshot(directory, check_wal=not live))
            damage = opened.damage
        except sqlite3.DatabaseError as error:
            opened, damage = _without_integrity_check(stack, directory, live, error)
        yield EmbeddedSnapshot(opened, database, damage, live)


def _without_integrity_check(
    stack: ExitStack, directory: Path, live: bool, error: sqlite3.DatabaseError
) -> tuple[Snapshot | None, Damage]:
    """SQLite failed while checking the file (a damaged page): read what it still can, for salvage."""
    problem = f"SQLite cannot check it: {error}"
    try:
        opened = stack.enter_context(read_snapshot(directory, check_wal=not live, check_integrity=False))
    except sqlite3.DatabaseError as again:
        damage = Damage(directory / DATABASE_NAME)
        damage.add_problem(f"SQLite cannot read it: {again}")
        return None, damage
    opened.damage.add_problem(problem)
    return opened, opened.damage


@contextmanager
def _mongodb_snapshot(settings: Settings) -> Iterator[MongoSnapshot]:
    client: MongoClient = MongoClient(settings.mongodb_url, **client_options(settings))
    try:
        database = client[settings.mongodb_db]
        # Listed outside the session: listCollections takes no snapshot read concern.
        names = sorted(name for name in database.list_collection_names() if not name.startswith("system."))
        if not has_snapshot_reads(client):
            yield MongoSnapshot(database, names, None)
            return
        with client.start_session(snapshot=True) as session:
            yield MongoSnapshot(database, names, session)
    finally:
        client.close()


def has_snapshot_reads(client: MongoClient) -> bool:
    """MongoDB 5.0+ on a replica set (`setName`) or through mongos (`isdbgrid`); a standalone has none."""
    try:
        hello = client.admin.command("hello")
    except OperationFailure:
        return False
    replicated = "setName" in hello or hello.get("msg") == "isdbgrid"
    return replicated and hello.get("maxWireVersion", 0) >= SNAPSHOT_READS_WIRE_VERSION


@contextmanager
def open_offline_files(settings: Settings) -> Iterator[OfflineFiles]:
    """The configured store's GridFS files, read synchronously, each read a fresh one (files
    never change once stored): for commands beside the service, after their snapshot is closed."""
    if settings.uses_embedded_store:
        direct = DirectReader(settings.embedded_dir / DATABASE_NAME)
        with embedded_offline_files(direct, settings.mongodb_db) as files:
            yield files
    else:
        client: MongoClient = MongoClient(settings.mongodb_url, **client_options(settings))
        with mongodb_offline_files(client, settings.mongodb_db) as files:
            yield files
