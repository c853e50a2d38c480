"""One legacy video row, with its chat rows, as the Video document it becomes. No I/O here.

Decisions (README "Migrating from the SQLite service" explains them to operators):
- Status: completed stays completed; failed stays failed (job.error = error_message). pending
  and processing become queued only when this run copied a decodable file for them (no worker
  holds a legacy job, so processing is as good as pending); without a usable file they cannot be
  processed and are marked failed with a job.error that says why.
- Times: SQLAlchemy wrote naive UTC text; it is read as UTC. A NULL or unreadable uploaded_at
  falls back to processed_at, else the Unix epoch, and the raw value stays in `legacy`.
- Chat: by timestamp, ties by row id; a row without a usable timestamp keeps its place by id
  (right after the row written before it), since ids were handed out in the order rows were
  written. Its created_at is the video's uploaded_at.
- `updated_at` is the latest legacy time (uploaded, processed, last chat), never the time of the
  run, so that running the migration again writes the same document.
- A document over 16 MB: the transcription (then the summary) moves to a file in storage,
  referenced from `legacy` and cut to its first MiB inline; then chat entries that still do not
  fit are left out of the document and go to the report, oldest kept first.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bson
from pydantic import ValidationError

from service.ai.languages import known_ui_language
from service.clock import store_precision
from service.db.mongodb import MAX_DOCUMENT_BYTES
from service.errors import InvalidInput
from service.migration.source import DEPLOYED_CHAT_COLUMNS, DOCUMENTED_CHAT_COLUMNS, LegacyVideo
from service.storage.local import LocalStorage
from service.text import text_search_language
from service.videos.models import ChatEntry, FileInfo, Job, MediaMetadata, Summary, Transcript, Video, VideoStatus
from service.videos.service import requested_language

LEGACY_MODEL = "legacy"
UNKNOWN_UPLOAD_TIME = datetime(1970, 1, 1, tzinfo=UTC)
INLINE_TEXT_BYTES = 1024 * 1024
"""How much of a text moved to storage stays in the document (for search and the new API)."""

PLACED_COLUMNS = frozenset(
    {"id", "filename", "transcription", "summary", "uploaded_at", "processed_at", "detected_language", "error_message"}
)
"""Columns with an exact new place; every other column is kept in `legacy` as it was."""

SPILLABLE_TEXTS = (("transcription", "transcript"), ("summary", "summary"))
FILE_FIELDS = ("file", "metadata")
OWNED_BY_THE_SERVICE = ("owner_id", "is_public")
"""Fields the migration only fills in on insert: a later run must not undo what users changed."""

_PLACEHOLDER_ID = bson.ObjectId("000000000000000000000000")


@dataclass(frozen=True)
class FileOutcome:
    """What `--copy-files` did for one video: nothing tried, copied (maybe not decodable), or missing."""

    file: FileInfo | None = None
    metadata: MediaMetadata | None = None
    decodable: bool = False
    missing: str | None = None

    @property
    def copied(self) -> bool:
        return self.file is not None


@dataclass(frozen=True)
class Spill:
    """A text moved out of the document into a storage file."""

    column: str
    key: str
    data: bytes


@dataclass
class VideoPlan:
    """What to write for one legacy video, and what to report about it."""

    legacy_id: Any
    set_fields: dict[str, Any] = field(default_factory=dict)
    insert_fields: dict[str, Any] = field(default_factory=dict)
    chat_kept: int = 0
    overflow: list[dict[str, Any]] = field(default_factory=list)
    spills: list[Spill] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None


def storage_key(legacy_id: int, suffix: str = "") -> str:
    """The storage key for a legacy video's file (or a text moved out of its document): the same
    on every run, so a rerun overwrites instead of adding files; alphanumeric as keys must be."""
    sign = "n" if legacy_id < 0 else ""
    return f"legacy{sign}{abs(legacy_id)}{suffix}"


def parse_legacy_time(raw: Any) -> datetime | None:
    """SQLAlchemy's DATETIME text (`2024-03-01 09:37:00.123456`, UTC, no zone) as an aware UTC
    datetime at full precision; None for NULL; ValueError for anything unreadable."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError(f"not DATETIME text: {raw!r}")
    moment = datetime.fromisoformat(raw.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time(row: dict[str, Any], column: str, notes: list[dict[str, Any]], where: dict[str, Any]) -> datetime | None:
    try:
        return parse_legacy_time(row.get(column))
    except ValueError:
        notes.append({"kind": "unreadable_time", **where, "column": column, "raw": row.get(column)})
        return None


def order_chat(
    rows: list[dict[str, Any]], notes: list[dict[str, Any]], legacy_id: Any
) -> list[tuple[dict[str, Any], datetime | None]]:
    """Chat rows in conversation order, each with its timestamp (None when NULL or unreadable).

    By timestamp, ties by id. A row without a timestamp sorts with the row before it by id, just
    after it; rows before any timed one come first."""
    keyed = []
    carried: datetime | None = None
    for row in sorted(rows, key=lambda r: r["id"]):
        moment = _time(row, "timestamp", notes, {"legacy_id": legacy_id, "chat_id": row["id"]})
        if moment is not None:
            carried = moment
        place = moment or carried
        keyed.append(((place is not None, place or UNKNOWN_UPLOAD_TIME, row["id"]), row, moment))
    keyed.sort(key=lambda item: item[0])
    return [(row, moment) for _, row, moment in keyed]


def _legacy_status(row: dict[str, Any]) -> str:
    """processing_status, normalised; the documented schema has none: a transcription means done."""
    raw = row.get("processing_status")
    if isinstance(raw, str):
        return raw.strip().lower()
    return "completed" if row.get("transcription") is not None else "pending"


def _waits_for_processing(row: dict[str, Any]) -> bool:
    return _legacy_status(row) in ("pending", "processing")


def _status(row: dict[str, Any], file: FileOutcome) -> tuple[VideoStatus, str | None]:
    """The new status, and the job error the migration itself sets (None: keep the legacy one)."""
    status = _legacy_status(row)
    raw, file_path = row.get("processing_status"), row.get("file_path")
    if status in ("completed", "failed"):
        return status, None
    if status not in ("pending", "processing"):
        return "failed", f"the SQLite service left it in an unknown status {raw!r}"
    if file.copied and file.decodable:
        return "queued", None
    if file.copied:
        return "failed", f"migrated while {status}; its file {file_path!r} is not decodable audio or video"
    why = (
        f"could not be copied ({file.missing})"
        if file.missing
        else "was not copied (run the migration with --copy-files)"
    )
    return (
        "failed",
        f"migrated while {status} without its video file: {file_path!r} {why}; upload it again to process it",
    )


def _job(status: VideoStatus, error: str | None, uploaded_at: datetime, processed_at: datetime | None) -> Job:
    if status == "queued":
        return Job(stage="queued", queued_at=uploaded_at)
    if status == "completed":
        return Job(stage="done", progress=1.0, error=error, finished_at=processed_at)
    return Job(
        stage="failed", error=error or "failed in the SQLite service, which recorded no error", finished_at=processed_at
    )


def _requested_language(raw: Any) -> str:
    try:
        return requested_language(raw if isinstance(raw, str) else None)
    except InvalidInput:
        return "auto"


def _chat_entry(row: dict[str, Any], moment: datetime | None, uploaded_at: datetime) -> ChatEntry:
    return ChatEntry(
        id=f"legacy-{row['id']}",
        question=row.get("question") or "",
        answer=row.get("answer") or "",
        citations=[],
        language=row.get("language"),
        created_at=store_precision(moment or uploaded_at),
    )


def _unplaced_chat_values(rows: list[dict[str, Any]], legacy_id: Any) -> list[dict[str, Any]]:
    """Report lines for values in chat_history columns a ChatEntry has no field for."""
    known = DOCUMENTED_CHAT_COLUMNS + DEPLOYED_CHAT_COLUMNS
    lines = []
    for row in rows:
        values = {column: value for column, value in row.items() if column not in known and value is not None}
        if values:
            lines.append(
                {"kind": "chat_values_not_migrated", "legacy_id": legacy_id, "chat_id": row["id"], "values": values}
            )
    return lines


def _legacy_fields(row: dict[str, Any]) -> dict[str, Any]:
    legacy = {"id": row["id"], "file_path": row.get("file_path")}
    legacy.update({column: value for column, value in row.items() if column not in PLACED_COLUMNS})
    return legacy


def _document(
    video: LegacyVideo, file: FileOutcome, notes: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The whole Video document (without _id) and the chat rows in the order its chat holds them."""
    row = video.row
    legacy_id = row["id"]
    legacy = _legacy_fields(row)
    where = {"legacy_id": legacy_id}
    uploaded = _time(row, "uploaded_at", notes, where)
    processed = _time(row, "processed_at", notes, where)
    if uploaded is None:
        legacy["uploaded_at"] = row.get("uploaded_at")
    if processed is None and row.get("processed_at") is not None:
        legacy["processed_at"] = row.get("processed_at")
    uploaded_at = store_precision(uploaded or processed or UNKNOWN_UPLOAD_TIME)
    processed_at = None if processed is None else store_precision(processed)

    transcription, summary = row.get("transcription"), row.get("summary")
    language = row.get("detected_language")
    if transcription is None and language is not None:
        legacy["detected_language"] = language
    status, own_error = _status(row, file)
    error = own_error or row.get("error_message")
    if own_error and row.get("error_message") is not None:
        legacy["error_message"] = row.get("error_message")
    ui_language = known_ui_language(row.get("ui_language"))
    filename = row.get("filename")
    if not isinstance(filename, str) or not filename.strip():
        legacy["filename"] = filename
        filename = "untitled"

    ordered = order_chat(video.chat, notes, legacy_id)
    chat = [_chat_entry(chat_row, moment, uploaded_at) for chat_row, moment in ordered]
    updated_at = max([uploaded_at, *([processed_at] if processed_at else []), *(entry.created_at for entry in chat)])
    document = Video(
        filename=filename,
        file=file.file,
        metadata=file.metadata or MediaMetadata(),
        status=status,
        job=_job(status, error, uploaded_at, processed_at),
        transcript=None
        if transcription is None
        else Transcript(language=language, model=LEGACY_MODEL, text=transcription),
        summary=None if summary is None else Summary(text=summary, model=LEGACY_MODEL, language=ui_language),
        chat=chat,
        legacy=legacy,
        requested_language=_requested_language(row.get("user_selected_language")),
        ui_language=ui_language,
        summary_language=ui_language,
        search_language=text_search_language(language),
        uploaded_at=uploaded_at,
        processed_at=processed_at,
        updated_at=updated_at,
    ).model_dump(by_alias=True, exclude={"id", "revision_id"})
    return document, [chat_row for chat_row, _ in ordered]


def document_size(document: dict[str, Any]) -> int:
    """BSON size of the document as stored, `_id` included."""
    return len(bson.encode({"_id": _PLACEHOLDER_ID, **document}))


def _spill_texts(document: dict[str, Any], legacy_id: int, storage: str) -> list[Spill]:
    """Move the transcription, then the summary, to `storage` until the document fits."""
    spills = []
    for column, container in SPILLABLE_TEXTS:
        if document_size(document) <= MAX_DOCUMENT_BYTES:
            break
        text = (document.get(container) or {}).get("text", "")
        data = text.encode()
        if len(data) <= INLINE_TEXT_BYTES:
            continue
        key = storage_key(legacy_id, column)
        document[container]["text"] = data[:INLINE_TEXT_BYTES].decode("utf-8", "ignore")
        facts = {"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        document["legacy"][f"{column}_file"] = facts if storage == LocalStorage.kind else {"storage": storage, **facts}
        spills.append(Spill(column, key, data))
    return spills


def _chat_that_fits(document: dict[str, Any]) -> int:
    """How many chat entries, oldest first, fit in the document (each adds exactly its BSON array element)."""
    entries = document["chat"]
    size = document_size({**document, "chat": []})
    for index, entry in enumerate(entries):
        size += 1 + len(str(index)) + 1 + len(bson.encode(entry))
        if size > MAX_DOCUMENT_BYTES:
            return index
    return len(entries)


def _split(
    document: dict[str, Any], file: FileOutcome, status_depends_on_file: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """$set and $setOnInsert. File facts, and a status that follows from them, are only set on
    insert unless this run copied the file: a later run never undoes a copy made earlier."""
    insert_only = set(OWNED_BY_THE_SERVICE)
    if not file.copied:
        insert_only.update(FILE_FIELDS)
        if status_depends_on_file:
            insert_only.update({"status", "job"})
    set_fields = {name: value for name, value in document.items() if name not in insert_only}
    insert_fields = {name: value for name, value in document.items() if name in insert_only}
    return set_fields, insert_fields


def plan_video(video: LegacyVideo, file: FileOutcome, storage: str) -> VideoPlan:
    """The upsert for one legacy video, fitted under MongoDB's 16 MB document limit; texts moved out
    of it go to `storage` (STORAGE)."""
    legacy_id = video.row.get("id")
    plan = VideoPlan(legacy_id=legacy_id)
    if not isinstance(legacy_id, int) or isinstance(legacy_id, bool):
        plan.problem = f"videos.id {legacy_id!r} is not an integer"
        plan.overflow = list(video.chat)
        return plan
    try:
        document, chat_rows = _document(video, file, plan.notes)
    except ValidationError as error:
        plan.problem = f"its values do not fit the new document: {error}"
        plan.overflow = list(video.chat)
        return plan
    plan.notes.extend(_unplaced_chat_values(video.chat, legacy_id))
    plan.spills = _spill_texts(document, legacy_id, storage)
    if document_size(document) > MAX_DOCUMENT_BYTES:
        fits = _chat_that_fits(document)
        document["chat"] = document["chat"][:fits]
        plan.overflow = chat_rows[fits:]
    if document_size(document) > MAX_DOCUMENT_BYTES:
        plan.problem = "over 16 MB even with its texts in storage and no chat"
        plan.overflow = chat_rows
        plan.spills = []
        return plan
    plan.chat_kept = len(document["chat"])
    plan.set_fields, plan.insert_fields = _split(document, file, _waits_for_processing(video.row))
    return plan
