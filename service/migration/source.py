"""The SQLite service's database, read-only, in one snapshot, a batch at a time.

Everything here blocks: call it from a thread (`asyncio.to_thread`). The connection may be used
from whichever thread runs the next step, one step at a time.
"""

import sqlite3
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOCUMENTED_VIDEO_COLUMNS = ("id", "filename", "file_path", "transcription", "summary", "uploaded_at")
DEPLOYED_VIDEO_COLUMNS = (
    "processing_status",
    "error_message",
    "processed_at",
    "detected_language",
    "user_selected_language",
    "ui_language",
    "transcription_method",
)
DOCUMENTED_CHAT_COLUMNS = ("id", "video_id", "question", "answer", "timestamp")
DEPLOYED_CHAT_COLUMNS = ("language",)

DOCUMENTED_SCHEMA_SQL = """
CREATE TABLE videos (
    id INTEGER NOT NULL, filename VARCHAR, file_path VARCHAR, transcription TEXT, summary TEXT,
    uploaded_at DATETIME, PRIMARY KEY (id)
);
CREATE TABLE chat_history (
    id INTEGER NOT NULL, video_id INTEGER, question TEXT, answer TEXT, timestamp DATETIME,
    PRIMARY KEY (id), FOREIGN KEY(video_id) REFERENCES videos (id)
);
"""
"""The schema the SQLite service's database guide documents, as SQLAlchemy created it."""

DEPLOYED_SCHEMA_SQL = """
CREATE TABLE videos (
    id INTEGER NOT NULL, filename VARCHAR(255), file_path VARCHAR(512), transcription TEXT,
    summary TEXT, processing_status VARCHAR(50), error_message TEXT, uploaded_at DATETIME,
    processed_at DATETIME, detected_language VARCHAR(10), user_selected_language VARCHAR(10),
    ui_language VARCHAR(10), transcription_method VARCHAR(50), PRIMARY KEY (id)
);
CREATE INDEX ix_videos_filename ON videos (filename);
CREATE TABLE chat_history (
    id INTEGER NOT NULL, video_id INTEGER, question TEXT, answer TEXT, timestamp DATETIME,
    language VARCHAR(10), PRIMARY KEY (id), FOREIGN KEY(video_id) REFERENCES videos (id)
);
CREATE INDEX ix_chat_history_video_id ON chat_history (video_id);
"""
"""The schema deployed databases carry (the guide's plus the columns added later); for tests and
the benchmark, which build legacy databases of both forms."""


class MigrationError(Exception):
    """The source cannot be migrated as it is; the message says why and what to do."""


@dataclass(frozen=True)
class LegacySchema:
    video_columns: tuple[str, ...]
    chat_columns: tuple[str, ...]

    @property
    def form(self) -> str:
        deployed = set(DEPLOYED_VIDEO_COLUMNS + DEPLOYED_CHAT_COLUMNS)
        present = deployed & set(self.video_columns + self.chat_columns)
        return "deployed" if present == deployed else "documented" if not present else "documented, partly deployed"


@dataclass
class LegacyVideo:
    """One row of `videos` (column name to value, as SQLite holds it) and its chat rows."""

    row: dict[str, Any]
    chat: list[dict[str, Any]] = field(default_factory=list)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(connection: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in connection.execute(f"PRAGMA table_info({_quoted(table)})"))


def _require(table: str, columns: tuple[str, ...], required: tuple[str, ...]) -> None:
    if not columns:
        raise MigrationError(f"the database has no {table} table: it is not the SQLite service's database")
    missing = [column for column in required if column not in columns]
    if missing:
        raise MigrationError(
            f"the {table} table lacks the column(s) {', '.join(missing)}: it is not the SQLite service's schema"
        )


def read_schema(connection: sqlite3.Connection) -> LegacySchema:
    """The columns of both tables (PRAGMA table_info), checked against the documented schema."""
    schema = LegacySchema(_columns(connection, "videos"), _columns(connection, "chat_history"))
    _require("videos", schema.video_columns, DOCUMENTED_VIDEO_COLUMNS)
    _require("chat_history", schema.chat_columns, DOCUMENTED_CHAT_COLUMNS)
    return schema


class _ChatCursor:
    """Chat rows ordered by video id, handed out one video at a time (a merge join with `videos`)."""

    def __init__(self, cursor: sqlite3.Cursor, columns: tuple[str, ...], batch_size: int) -> None:
        self._cursor = cursor
        self._columns = columns
        self._batch_size = batch_size
        self._buffer: deque[dict[str, Any]] = deque()
        self._exhausted = False

    def _peek(self) -> dict[str, Any] | None:
        if not self._buffer and not self._exhausted:
            rows = self._cursor.fetchmany(self._batch_size)
            self._exhausted = not rows
            self._buffer.extend(dict(zip(self._columns, row, strict=True)) for row in rows)
        return self._buffer[0] if self._buffer else None

    def take(self, video_id: Any) -> list[dict[str, Any]]:
        taken = []
        while (row := self._peek()) is not None and row["video_id"] == video_id:
            taken.append(self._buffer.popleft())
        return taken


class LegacyDatabase:
    """A read-only connection holding one read transaction, so every count and batch comes from
    the same snapshot even if something still writes to the file."""

    def __init__(self, path: Path, connection: sqlite3.Connection, schema: LegacySchema) -> None:
        self.path = path
        self.schema = schema
        self._connection = connection

    @classmethod
    def open(cls, path: Path) -> "LegacyDatabase":
        if not path.is_file():
            raise MigrationError(f"{path}: no such file")
        uri = path.resolve().as_uri() + "?mode=ro"
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        try:
            connection.execute("BEGIN")
            schema = read_schema(connection)
        except sqlite3.DatabaseError as error:
            connection.close()
            raise MigrationError(f"{path} is not a readable SQLite database ({error})") from error
        except BaseException:
            connection.close()
            raise
        return cls(path, connection, schema)

    def close(self) -> None:
        self._connection.close()

    def totals(self) -> tuple[int, int]:
        """How many rows `videos` and `chat_history` hold."""
        videos = self._connection.execute("SELECT COUNT(*) FROM videos").fetchone()[0]
        chat = self._connection.execute("SELECT COUNT(*) FROM chat_history").fetchone()[0]
        return videos, chat

    def _select(self, table: str, columns: tuple[str, ...], where: str, order: str) -> sqlite3.Cursor:
        listed = ", ".join(_quoted(column) for column in columns)
        return self._connection.execute(f"SELECT {listed} FROM {table} {where} ORDER BY {order}")

    def videos(self, batch_size: int) -> Iterator[list[LegacyVideo]]:
        """Every video in id order, `batch_size` at a time, each with its chat rows (in id order)."""
        video_columns = self.schema.video_columns
        videos = self._select("videos", video_columns, "", "id")
        chat = _ChatCursor(
            self._select(
                "chat_history", self.schema.chat_columns, "WHERE video_id IN (SELECT id FROM videos)", "video_id, id"
            ),
            self.schema.chat_columns,
            batch_size,
        )
        while rows := videos.fetchmany(batch_size):
            batch = []
            for values in rows:
                row = dict(zip(video_columns, values, strict=True))
                batch.append(LegacyVideo(row, chat.take(row["id"])))
            yield batch

    def orphan_chat(self, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """Chat rows whose video is not in `videos` (or names none), in id order."""
        columns = self.schema.chat_columns
        cursor = self._select(
            "chat_history", columns, "WHERE video_id IS NULL OR video_id NOT IN (SELECT id FROM videos)", "id"
        )
        while rows := cursor.fetchmany(batch_size):
            yield [dict(zip(columns, row, strict=True)) for row in rows]
