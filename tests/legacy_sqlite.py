"""Legacy SQLite databases, built the way the SQLite service's SQLAlchemy models built them."""

import sqlite3
from pathlib import Path
from typing import Any

from service.migration.source import DEPLOYED_SCHEMA_SQL, DOCUMENTED_SCHEMA_SQL

FORMS = ("documented", "deployed")


def build_legacy_db(path: Path, form: str, videos: list[dict[str, Any]], chat: list[dict[str, Any]]) -> Path:
    """A database of the given schema form holding the rows; columns the form lacks are dropped."""
    connection = sqlite3.connect(path)
    connection.executescript(DEPLOYED_SCHEMA_SQL if form == "deployed" else DOCUMENTED_SCHEMA_SQL)
    for table, rows in (("videos", videos), ("chat_history", chat)):
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        for row in rows:
            kept = {name: value for name, value in row.items() if name in columns}
            marks = ", ".join("?" for _ in kept)
            connection.execute(f"INSERT INTO {table} ({', '.join(kept)}) VALUES ({marks})", list(kept.values()))
    connection.commit()
    connection.close()
    return path


# A small legacy history with what real ones hold: NULLs, unicode, id gaps, chat rows without
# (or with unreadable) timestamps, and chat rows whose video was deleted.
VIDEOS: list[dict[str, Any]] = [
    {
        "id": 1,
        "filename": "talk.mp4",
        "file_path": "uploads/talk.mp4",
        "transcription": "Hello wörld — 日本語のテキスト",
        "summary": "A short talk",
        "processing_status": "completed",
        "error_message": None,
        "uploaded_at": "2024-03-01 09:37:00.123456",
        "processed_at": "2024-03-01 09:40:00",
        "detected_language": "ja",
        "user_selected_language": "ja",
        "ui_language": "en",
        "transcription_method": "azure_speech",
    },
    {
        "id": 2,
        "filename": "vidéo ünïcødé <1> 日本.mp4",
        "file_path": "uploads/pending.mp4",
        "transcription": None,
        "summary": None,
        "processing_status": "pending",
        "uploaded_at": "2024-03-02 10:00:00",
        "ui_language": "ja",
    },
    {
        "id": 5,
        "filename": "broken.mov",
        "file_path": "/srv/old/uploads/broken.mov",
        "transcription": None,
        "summary": None,
        "processing_status": "failed",
        "error_message": "Azure quota exceeded",
        "uploaded_at": None,
        "processed_at": "2024-03-05 08:00:00",
    },
    {
        "id": 9,
        "filename": None,
        "file_path": None,
        "transcription": "",
        "summary": None,
        "processing_status": "processing",
        "uploaded_at": "2024-03-09T12:00:00+02:00",
        "ui_language": "Klingon",
    },
]
CHAT: list[dict[str, Any]] = [
    {
        "id": 1,
        "video_id": 1,
        "question": "What is it about?",
        "answer": "A talk.",
        "timestamp": "2024-03-01 10:00:00",
        "language": "en",
    },
    {"id": 2, "video_id": 1, "question": "Untimed?", "answer": "Yes.", "timestamp": None, "language": "en"},
    {"id": 3, "video_id": 2, "question": "前に?", "answer": "はい", "timestamp": None, "language": "ja"},
    {
        "id": 4,
        "video_id": 1,
        "question": "Earliest?",
        "answer": "First.",
        "timestamp": "2024-03-01 09:50:00.5",
        "language": None,
    },
    {"id": 6, "video_id": 2, "question": "Timed", "answer": "ok", "timestamp": "2024-03-02 11:00:00", "language": "ja"},
    {
        "id": 7,
        "video_id": 1,
        "question": "Same time",
        "answer": "tie",
        "timestamp": "2024-03-01 10:00:00",
        "language": "en",
    },
    {"id": 8, "video_id": 1, "question": "Garbled time", "answer": "?", "timestamp": "yesterday", "language": "en"},
    {
        "id": 11,
        "video_id": 3,
        "question": "Orphan",
        "answer": "video 3 was deleted",
        "timestamp": "2024-03-03 10:00:00",
        "language": "en",
    },
    {"id": 12, "video_id": None, "question": "No video", "answer": "-", "timestamp": None, "language": "en"},
]
ORPHAN_CHAT_IDS = [11, 12]
CHAT_ORDER = {1: [4, 1, 2, 7, 8], 2: [3, 6], 5: [], 9: []}
