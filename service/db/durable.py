"""The embedded store's durable layer: one SQLite file under DATA_DIR/db.

mongomock answers queries in memory; this file is what survives the process. SQLite runs in WAL
mode with `synchronous=FULL`, so a committed transaction is on disk before the commit returns.
Each collection is a table with one row per document: its `_id` (as BSON), the document's BSON,
and a CRC-32 of that BSON, checked again whenever the row is read. The index definitions sit in a
table of their own. One write of the store is one SQLite transaction, committed before the write
is acknowledged; a commit that fails leaves nothing behind, and the caller undoes its change in
memory.

A GridFS bucket's chunks (a collection named `<bucket>.chunks`) are documents of this file too,
one row each, but they are never loaded into memory: each table of chunks also holds every chunk's
`files_id` and `n` in columns of their own, with a unique index on the pair, so that a file is
written and read here chunk by chunk (`add_chunks`, and `DirectReader` from any thread), and
memory stays flat in a file's size (service/db/gridfs.py).

Opening checks everything (SQLite's integrity check, then every row's checksum, BSON and `_id`)
and refuses a damaged store with a report of what is damaged; it never opens with fewer documents
than were stored. `read_snapshot` reads the same file from another process (`check`, `export`)
in one read transaction, so it sees one consistent state while the service writes.
"""

import logging
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson

from service.db.wal import verify_wal

logger = logging.getLogger(__name__)

DATABASE_NAME = "store.sqlite3"
APPLICATION_ID = 0x56414E31  # "VAN1": this file is a Video Analyzer store
FORMAT_VERSION = 1
CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024
WAL_LIMIT_BYTES = 32 * 1024 * 1024
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_NOTADB = 26
CHUNKS_SUFFIX = ".chunks"
FILES_SUFFIX = ".files"
"""The collection of a GridFS bucket's chunks is `<bucket>.chunks`, its files `<bucket>.files`."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    database TEXT NOT NULL,
    collection TEXT NOT NULL,
    table_name TEXT NOT NULL UNIQUE,
    PRIMARY KEY (database, collection)
);
CREATE TABLE IF NOT EXISTS indexes (
    database TEXT NOT NULL,
    collection TEXT NOT NULL,
    name TEXT NOT NULL,
    definition BLOB NOT NULL,
    crc INTEGER NOT NULL,
    PRIMARY KEY (database, collection, name)
);
"""


class StoreDamaged(RuntimeError):
    """The store's file is damaged; it was not opened, and nothing in it was changed."""


class DocumentDamaged(RuntimeError):
    """A row read directly (`DirectReader`) fails its checksum, or is not the document it is filed as."""


class StoreWriteFailed(RuntimeError):
    """A commit failed (a full disk, an I/O error); nothing of the write was kept."""

    def __init__(self, message: str, disk_full: bool) -> None:
        super().__init__(message)
        self.disk_full = disk_full


@dataclass(frozen=True)
class Change:
    """One document's new state after a write: its BSON, or None when it was deleted."""

    database: str
    collection: str
    key: Any
    body: bytes | None


@dataclass
class Damage:
    """What was found wrong in a store: problems (each naming its file), and damaged `_id`s."""

    path: Path
    problems: list[str] = field(default_factory=list)
    documents: dict[str, list[str]] = field(default_factory=dict)

    def add_problem(self, problem: str) -> None:
        self.problems.append(f"{self.path}: {problem}")

    def add_document(self, place: str, key: str) -> None:
        self.documents.setdefault(place, []).append(key)

    def __bool__(self) -> bool:
        return bool(self.problems or self.documents)

    def report(self) -> str:
        lines = list(self.problems)
        for place, keys in self.documents.items():
            shown = ", ".join(keys[:20]) + (f" and {len(keys) - 20} more" if len(keys) > 20 else "")
            lines.append(f"{self.path}: collection {place}: {len(keys)} damaged document(s): {shown}")
        return "\n".join(lines)


def is_chunk_collection(collection: str) -> bool:
    return collection.endswith(CHUNKS_SUFFIX)


def encode_key(key: Any) -> bytes:
    """A document's `_id` as the row key: equal ids give equal bytes."""
    return bson.encode({"_id": key})


def checksum(body: bytes) -> int:
    return zlib.crc32(body)


def _describe_key(raw_key: bytes, rowid: int) -> str:
    try:
        return str(bson.decode(raw_key)["_id"])
    except Exception:
        return f"(row {rowid}, unreadable _id)"


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    if read_only:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        # timeout 0: the one store thread never waits on another program's lock (503 at once) nor,
        # checkpointing, on a reader such as a long export
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA cell_size_check=ON")
    return connection


def _check_integrity(connection: sqlite3.Connection, damage: Damage) -> None:
    rows = connection.execute("PRAGMA integrity_check").fetchall()
    if rows != [("ok",)]:
        for (row,) in rows:
            damage.add_problem(f"SQLite integrity check: {row}")


class _Reader:
    """Reads and verifies rows of an open connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def tables(self) -> list[tuple[str, str, str]]:
        rows = self.connection.execute("SELECT database, collection, table_name FROM collections ORDER BY rowid")
        return list(rows)

    def documents(self, table: str, place: str, damage: Damage) -> Iterator[dict[str, Any]]:
        """Every sound document of a table; damaged rows are added to `damage` instead."""
        for rowid, raw_key, body, crc in self.connection.execute(f'SELECT rowid, id, body, crc FROM "{table}"'):
            document = self._verified(raw_key, body, crc)
            if document is None:
                damage.add_document(place, _describe_key(raw_key, rowid))
            else:
                yield document

    @staticmethod
    def _verified(raw_key: Any, body: Any, crc: Any) -> dict[str, Any] | None:
        document = _decoded(body, crc)
        if document is None or not isinstance(raw_key, bytes):
            return None
        return document if encode_key(document.get("_id")) == raw_key else None

    def chunk_files(self, table: str, place: str, damage: Damage) -> set[Any]:
        """The `files_id` of every sound chunk of a table of chunks, each chunk verified as it is read
        and let go (none is kept); damaged rows are added to `damage`."""
        files = set()
        rows = self.connection.execute(f'SELECT rowid, id, body, crc, files_id, n FROM "{table}"')
        for rowid, raw_key, body, crc, raw_files_id, n in rows:
            chunk = self._verified(raw_key, body, crc)
            if chunk is None or encode_key(chunk.get("files_id")) != raw_files_id or chunk.get("n") != n:
                damage.add_document(place, _describe_key(raw_key, rowid))
            else:
                files.add(chunk["files_id"])
        return files

    def index_definitions(self, damage: Damage) -> list[tuple[str, str, dict[str, Any]]]:
        """Every sound index definition; a damaged one is added to `damage` instead."""
        definitions = []
        rows = self.connection.execute("SELECT database, collection, name, definition, crc FROM indexes ORDER BY rowid")
        for database, collection, name, definition, crc in rows:
            decoded = _decoded(definition, crc)
            if decoded is None or decoded.get("name") != name:
                damage.add_problem(f"collection {database}.{collection}: the definition of index {name!r} is damaged")
            else:
                definitions.append((database, collection, decoded))
        return definitions


def _decoded(body: Any, crc: Any) -> dict[str, Any] | None:
    """The BSON document in a row, if its checksum holds and it decodes."""
    if not isinstance(body, bytes) or checksum(body) != crc:
        return None
    try:
        return bson.decode(body)
    except Exception:
        return None


@dataclass
class LoadedStore:
    """Everything a store held when it was opened: documents, index definitions, and for each
    collection of chunks the files it holds chunks of (the chunks stay in the file)."""

    documents: dict[tuple[str, str], list[dict[str, Any]]]
    indexes: list[tuple[str, str, dict[str, Any]]]
    chunk_files: dict[tuple[str, str], set[Any]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(documents) for documents in self.documents.values())


def _check_header(connection: sqlite3.Connection, damage: Damage, fresh: bool) -> None:
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if fresh and application_id == 0 and version == 0:
        return
    if application_id != APPLICATION_ID:
        damage.add_problem(f"not a Video Analyzer store (application id {application_id:#x})")
    elif version != FORMAT_VERSION:
        damage.add_problem(f"store format {version}, this version reads format {FORMAT_VERSION}")


def _load(reader: _Reader, damage: Damage) -> LoadedStore:
    documents = {}
    chunk_files = {}
    for database, collection, table in reader.tables():
        place = f"{database}.{collection}"
        if is_chunk_collection(collection):
            chunk_files[(database, collection)] = reader.chunk_files(table, place, damage)
        else:
            documents[(database, collection)] = list(reader.documents(table, place, damage))
    return LoadedStore(documents, reader.index_definitions(damage), chunk_files)


def damaged_message(damage: Damage) -> str:
    return (
        f"the embedded store is damaged; it was not opened and nothing in it was changed:\n{damage.report()}\n"
        "Run `video-analyzer check` for the whole report. To recover: restore your last export into an empty "
        "DATA_DIR with `video-analyzer import BACKUP.tar`, or keep every intact document with "
        "`video-analyzer export --salvage intact.tar`, move the damaged db folder aside, and import that archive."
    )


class _Checkpointer:
    """Copies the WAL into the database file on a thread and connection of its own (a PASSIVE
    checkpoint, which never blocks the writer), so that no write waits while pages are copied."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wal = path.with_name(path.name + "-wal")
        self._wake = threading.Event()
        self._copying = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="embedded-store-checkpoint", daemon=True)
        self._thread.start()

    def after_commit(self, connection: sqlite3.Connection) -> None:
        """Wake the checkpoint thread once the WAL is large; past WAL_LIMIT_BYTES (writes that never
        pause, so the thread never catches up) the writer checkpoints itself, keeping the WAL bounded.
        Only then does a write wait: for the thread's checkpoint to end, and for its own."""
        try:
            size = self.wal.stat().st_size
        except FileNotFoundError:
            return
        if size > WAL_LIMIT_BYTES:
            try:
                with self._copying:  # SQLite runs one checkpoint at a time: a second one would just fail
                    connection.execute("PRAGMA wal_checkpoint(RESTART)")
            except sqlite3.Error as error:  # the write is committed; the next one tries again
                logger.warning("store: a checkpoint failed and will be tried again: %s", error)
        elif size > CHECKPOINT_WAL_BYTES:
            self._wake.set()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    with self._copying:
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as error:
                    logger.warning("store: a checkpoint failed and will be tried again: %s", error)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()


class DurableFile:
    """The SQLite file one serving process writes; use it from one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        self._tables: dict[tuple[str, str], str] = {}

    def open(self) -> LoadedStore:
        """Verify and load the file (a new one when there is none); StoreDamaged if anything is wrong."""
        fresh = not self.path.exists()
        damage = Damage(self.path, verify_wal(self.path))
        connection: sqlite3.Connection | None = None
        loaded: LoadedStore | None = None
        try:
            if not damage:
                connection = _connect(self.path, read_only=False)
                loaded = self._verified_load(connection, damage, fresh)
        except sqlite3.DatabaseError as error:
            if not is_corruption(error):
                raise
            damage.add_problem(f"SQLite cannot read it: {error}")
        if damage or loaded is None or connection is None:
            if connection is not None:
                connection.close()
            raise StoreDamaged(damaged_message(damage))
        connection.execute("PRAGMA wal_autocheckpoint=0")
        self._connection = connection
        self._checkpointer = _Checkpointer(self.path)
        self._tables = {(database, collection): table for database, collection, table in _Reader(connection).tables()}
        return loaded

    @staticmethod
    def _verified_load(connection: sqlite3.Connection, damage: Damage, fresh: bool) -> LoadedStore | None:
        _check_header(connection, damage, fresh)
        if not damage:
            _check_integrity(connection, damage)
        if damage:
            return None
        if fresh:
            connection.executescript(
                f"PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={FORMAT_VERSION};" + _SCHEMA
            )
        return _load(_Reader(connection), damage)

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close: a cleanly stopped store is one file."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._connection is not None:
            try:
                self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._connection.close()
            self._connection = None

    def commit(self, changes: Iterable[Change]) -> None:
        """Write every change in one transaction; StoreWriteFailed, with nothing kept, if it fails."""
        changes = list(changes)
        if changes:
            self._transaction(lambda connection: self._apply(connection, changes))

    def check_writable(self) -> None:
        """Take the write lock and let it go, writing nothing: StoreWriteFailed when a write could
        not be committed now (another program holds the lock, the file cannot be written)."""
        self._transaction(lambda connection: None)

    def save_index(self, database: str, collection: str, name: str, definition: dict[str, Any]) -> None:
        body = bson.encode(definition)
        self._transaction(
            lambda connection: connection.execute(
                "INSERT OR REPLACE INTO indexes VALUES (?, ?, ?, ?, ?)",
                (database, collection, name, body, checksum(body)),
            )
        )

    def forget_index(self, database: str, collection: str, name: str) -> None:
        self._transaction(
            lambda connection: connection.execute(
                "DELETE FROM indexes WHERE database = ? AND collection = ? AND name = ?", (database, collection, name)
            )
        )

    def drop_collection(self, database: str, collection: str) -> None:
        table = self._tables.get((database, collection))

        def drop(connection: sqlite3.Connection) -> None:
            if table is not None:
                connection.execute(f'DROP TABLE "{table}"')
                connection.execute(
                    "DELETE FROM collections WHERE database = ? AND collection = ?", (database, collection)
                )
            connection.execute("DELETE FROM indexes WHERE database = ? AND collection = ?", (database, collection))

        self._transaction(drop)
        self._tables.pop((database, collection), None)

    def add_chunks(self, database: str, collection: str, chunks: list[dict[str, Any]]) -> None:
        """Insert GridFS chunks (`{_id, files_id, n, data}`) in one transaction; StoreWriteFailed, with
        none kept, when it fails (a chunk `n` the file already has among them)."""

        def rows() -> Iterator[tuple[bytes, bytes, int, bytes, int]]:
            """Encoded one at a time, as SQLite takes them: one chunk's BSON is held at once."""
            for chunk in chunks:
                body = bson.encode(chunk)
                yield encode_key(chunk["_id"]), body, checksum(body), encode_key(chunk["files_id"]), chunk["n"]

        def insert(connection: sqlite3.Connection) -> None:
            table = self._table(connection, database, collection)
            connection.executemany(f'INSERT INTO "{table}" VALUES (?, ?, ?, ?, ?)', rows())

        self._transaction(insert)

    def delete_chunks(self, database: str, collection: str, files_ids: Iterable[Any]) -> None:
        """Delete every chunk of these files, in one transaction."""
        keys = [(encode_key(files_id),) for files_id in files_ids]
        table = self._tables.get((database, collection))
        if table is None or not keys:
            return
        self._transaction(lambda connection: connection.executemany(f'DELETE FROM "{table}" WHERE files_id = ?', keys))

    def _apply(self, connection: sqlite3.Connection, changes: list[Change]) -> None:
        for change in changes:
            table = self._table(connection, change.database, change.collection)
            key = encode_key(change.key)
            if change.body is None:
                connection.execute(f'DELETE FROM "{table}" WHERE id = ?', (key,))
            else:
                connection.execute(
                    f'INSERT INTO "{table}" (id, body, crc) VALUES (?, ?, ?) '
                    "ON CONFLICT (id) DO UPDATE SET body = excluded.body, crc = excluded.crc",
                    (key, change.body, checksum(change.body)),
                )

    def _table(self, connection: sqlite3.Connection, database: str, collection: str) -> str:
        """The collection's table, created inside the current transaction the first time."""
        table = self._tables.get((database, collection))
        if table is None:
            number = connection.execute("SELECT count(*) + 1 FROM collections").fetchone()[0]
            table = f"documents_{number}"
            while connection.execute("SELECT 1 FROM collections WHERE table_name = ?", (table,)).fetchone():
                number += 1
                table = f"documents_{number}"
            if is_chunk_collection(collection):
                connection.execute(
                    f'CREATE TABLE "{table}" (id BLOB PRIMARY KEY, body BLOB NOT NULL, crc INTEGER NOT NULL, '
                    "files_id BLOB NOT NULL, n INTEGER NOT NULL)"
                )
                connection.execute(f'CREATE UNIQUE INDEX "{table}_files_id_n" ON "{table}" (files_id, n)')
            else:
                connection.execute(
                    f'CREATE TABLE "{table}" (id BLOB PRIMARY KEY, body BLOB NOT NULL, crc INTEGER NOT NULL)'
                )
            connection.execute("INSERT INTO collections VALUES (?, ?, ?)", (database, collection, table))
            self._tables[(database, collection)] = table
        return table

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> None:
        connection = self._connection
        if connection is None:
            raise RuntimeError("the embedded store is not open")
        tables_before = dict(self._tables)
        try:
            connection.execute("BEGIN IMMEDIATE")
            work(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._abandon(connection, tables_before)
            raise _write_failure(error) from error
        if self._checkpointer is not None:
            self._checkpointer.after_commit(connection)

    def _abandon(self, connection: sqlite3.Connection, tables_before: dict[tuple[str, str], str]) -> None:
        self._tables = tables_before
        if connection.in_transaction:
            try:
                connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass


def _primary_code(error: sqlite3.Error) -> int:
    return getattr(error, "sqlite_errorcode", 0) & 0xFF


def is_corruption(error: sqlite3.Error) -> bool:
    """SQLite found the file damaged (as opposed to unreadable for another reason, like permissions)."""
    return _primary_code(error) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def _write_failure(error: sqlite3.Error) -> StoreWriteFailed:
    if _primary_code(error) == SQLITE_FULL:
        return StoreWriteFailed("the disk holding the store is full; nothing of this write was kept", disk_full=True)
    return StoreWriteFailed(f"the store could not write ({error}); nothing of this write was kept", disk_full=False)


class DirectReader:
    """Reads one document, or one GridFS chunk, straight from the file on any thread, beside its
    one writer (a WAL reader waits on no writer), each read its own read transaction. Rows are
    verified as they are read (DocumentDamaged). Read-only connections are kept for reuse, one
    per read at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def document(self, database: str, collection: str, key: Any) -> dict[str, Any] | None:
        key_bytes = encode_key(key)
        row = self._row(database, collection, "id, body, crc", "id = ?", (key_bytes,))
        if row is None:
            return None
        document = _Reader._verified(*row)
        if document is None:
            raise DocumentDamaged(f"{self.path}: collection {database}.{collection}: document {key} is damaged")
        return document

    def chunk(self, database: str, collection: str, files_id: Any, n: int) -> bytes | None:
        """The data of chunk `n` of a file; None when there is no such chunk."""
        row = self._row(database, collection, "id, body, crc", "files_id = ? AND n = ?", (encode_key(files_id), n))
        if row is None:
            return None
        chunk = _Reader._verified(*row)
        if chunk is None or chunk.get("files_id") != files_id or chunk.get("n") != n or "data" not in chunk:
            raise DocumentDamaged(
                f"{self.path}: collection {database}.{collection}: chunk {n} of {files_id} is damaged"
            )
        return bytes(chunk["data"])

    def _row(self, database: str, collection: str, columns: str, where: str, values: tuple) -> tuple | None:
        """One row, the table's name and the row read in one read transaction; None when there is
        no store yet."""
        if not self.path.exists():
            return None
        with self._connection() as connection:
            connection.execute("BEGIN")
            try:
                table = self._table(connection, database, collection)
                if table is None:
                    return None
                return connection.execute(f'SELECT {columns} FROM "{table}" WHERE {where}', values).fetchone()
            finally:
                connection.execute("COMMIT")

    @staticmethod
    def _table(connection: sqlite3.Connection, database: str, collection: str) -> str | None:
        row = connection.execute(
            "SELECT table_name FROM collections WHERE database = ? AND collection = ?", (database, collection)
        ).fetchone()
        return None if row is None else row[0]

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = _connect(self.path, read_only=True)
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        with self._lock:
            self._idle.append(connection)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


@dataclass
class Snapshot:
    """A consistent, read-only view of a store, taken by another process while the service runs."""

    reader: _Reader
    damage: Damage

    def collections(self) -> list[tuple[str, str]]:
        return [(database, collection) for database, collection, _ in self.reader.tables()]

    def documents(self, database: str, collection: str) -> Iterator[dict[str, Any]]:
        """Every sound document of the collection; damaged rows are added to `damage`."""
        for table in self._tables_of(database, collection):
            yield from self.reader.documents(table, f"{database}.{collection}", self.damage)

    def indexes(self) -> list[tuple[str, str, dict[str, Any]]]:
        return self.reader.index_definitions(self.damage)

    def chunk_files(self, database: str, collection: str) -> set[Any]:
        """The `files_id` of every sound chunk of a collection of chunks, each chunk verified as it is
        read; damaged ones are added to `damage`."""
        files: set[Any] = set()
        for table in self._tables_of(database, collection):
            files |= self.reader.chunk_files(table, f"{database}.{collection}", self.damage)
        return files

    def _tables_of(self, database: str, collection: str) -> list[str]:
        return [table for known, name, table in self.reader.tables() if (known, name) == (database, collection)]


@contextmanager
def read_snapshot(directory: Path, check_wal: bool, check_integrity: bool = True) -> Iterator[Snapshot]:
    """Open the store read-only in one read transaction: one consistent state, however long it is read.

    `check_wal` only when no process has the store open: a live writer's log may be mid-append.
    Problems found go to the snapshot's `damage`; rows are checked as they are read."""
    path = directory / DATABASE_NAME
    if not path.exists():
        raise FileNotFoundError(f"no embedded store at {path}")
    damage = Damage(path, verify_wal(path) if check_wal else [])
    connection = _connect(path, read_only=True)
    try:
        connection.execute("BEGIN")
        _check_header(connection, damage, fresh=False)
        if check_integrity and not damage:
            _check_integrity(connection, damage)
        yield Snapshot(_Reader(connection), damage)
    finally:
        connection.close()
