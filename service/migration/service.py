"""Moving the SQLite service's data into the Video documents, batch by batch, idempotently.

Each batch of legacy videos becomes one unordered bulk of upserts keyed on `legacy.id`, so a run
that is stopped anywhere and started again, or a second run, ends with the same documents and no
duplicates. Blocking work (SQLite, files, building documents) runs in threads.
"""

import asyncio
import base64
import json
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from beanie import PydanticObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from service.config import Settings
from service.db.service import connect, connect_scratch
from service.errors import UnsupportedMedia
from service.migration.mapping import FileOutcome, VideoPlan, plan_video, storage_key
from service.migration.schemas import MigrationSummary
from service.migration.source import LegacyDatabase, LegacyVideo, MigrationError
from service.processing.media import content_type_of, probe
from service.storage.service import FileStorage, open_storage
from service.users.models import User
from service.videos.models import FileInfo, Video

__all__ = ["MigrationError", "MigrationOptions", "run_migration", "migrate"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
DEFAULT_REPORT_NAME = "migration-report.jsonl"
T = TypeVar("T")


@dataclass(frozen=True)
class MigrationOptions:
    source: Path
    dry_run: bool = False
    copy_files: bool = False
    report: Path | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    files_root: Path | None = None
    """Where relative legacy file paths start; default: the SQLite file's folder."""
    owner: str | None = None
    """The username that owns the migrated videos (they stay private to it); None: no owner."""


async def run_migration(settings: Settings, options: MigrationOptions) -> MigrationSummary:
    """Open the SQLite file and the store named by the settings (a scratch one for a dry run), migrate, close."""
    if options.batch_size < 1:
        raise MigrationError("the batch size must be at least 1")
    legacy = await asyncio.to_thread(LegacyDatabase.open, options.source)
    try:
        report = options.report or (None if options.dry_run else settings.data_dir / DEFAULT_REPORT_NAME)
        database = await (connect_scratch() if options.dry_run else connect(settings))
        try:
            owner_id = None if options.dry_run else await _owner_id(options.owner)
            storage = None if options.dry_run else open_storage(settings, database).writer
            return await migrate(legacy, storage, settings.storage, options, report, owner_id)
        finally:
            database.close()
    finally:
        await asyncio.to_thread(legacy.close)


async def _owner_id(username: str | None) -> PydanticObjectId | None:
    if username is None:
        return None
    user = await User.find_one(User.username == username.lower())
    if user is None:
        raise MigrationError(f"no user {username!r} to own the videos: create it first (video-analyzer create-user)")
    return user.id


async def migrate(
    legacy: LegacyDatabase,
    storage: FileStorage | None,
    storage_kind: str,
    options: MigrationOptions,
    report: Path | None,
    owner_id: PydanticObjectId | None = None,
) -> MigrationSummary:
    """Migrate everything `legacy` holds into `storage` (of `storage_kind`; None for a dry run,
    which writes nothing); Beanie must be initialised (a scratch store for a dry run)."""
    return await _Migration(legacy, storage, storage_kind, options, _Report(report), owner_id).run()


async def _next(iterator: Iterator[T]) -> T | None:
    return await asyncio.to_thread(next, iterator, None)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class _Report:
    """The report file: JSON lines, one per row that went there instead of the store, or that
    needs an operator's eye; appended batch by batch from a thread."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    async def start(self) -> None:
        if self.path is not None:
            await asyncio.to_thread(self._write, [], "w")

    async def add(self, lines: list[dict[str, Any]]) -> None:
        if self.path is not None and lines:
            await asyncio.to_thread(self._write, lines, "a")

    def _write(self, lines: list[dict[str, Any]], mode: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, mode, encoding="utf-8") as file:
            file.writelines(json.dumps(line, ensure_ascii=False, default=_json_default) + "\n" for line in lines)


class _Migration:
    def __init__(
        self,
        legacy: LegacyDatabase,
        storage: FileStorage | None,
        storage_kind: str,
        options: MigrationOptions,
        report: _Report,
        owner_id: PydanticObjectId | None,
    ) -> None:
        self.owner_id = owner_id
        self.legacy = legacy
        self.storage = storage
        self.storage_kind = storage_kind
        self.options = options
        self.report = report
        self.summary = MigrationSummary(
            source=str(options.source),
            schema_form=legacy.schema.form,
            dry_run=options.dry_run,
            report=None if report.path is None else str(report.path),
        )

    async def run(self) -> MigrationSummary:
        videos_total, chat_total = await asyncio.to_thread(self.legacy.totals)
        await self.report.start()
        logger.info(
            "migrating %s: %d videos, %d chat rows (%s schema)",
            self.legacy.path,
            videos_total,
            chat_total,
            self.legacy.schema.form,
        )
        batches = self.legacy.videos(self.options.batch_size)
        number = 0
        while (batch := await _next(batches)) is not None:
            number += 1
            await self._migrate_batch(batch)
            logger.info(
                "batch %d: legacy ids %s..%s done, %d videos so far",
                number,
                batch[0].row["id"],
                batch[-1].row["id"],
                self.summary.videos.read,
            )
        orphans = self.legacy.orphan_chat(self.options.batch_size)
        while (rows := await _next(orphans)) is not None:
            await self._report_orphans(rows)
        if not self.options.dry_run:
            self.summary.migrated_videos_in_store = await Video.get_motor_collection().count_documents(
                {"legacy.id": {"$exists": True}}
            )
        self._check(videos_total, chat_total)
        await self.report.add([{"kind": "summary", **self.summary.model_dump(exclude={"report"})}])
        return self.summary

    # One batch

    async def _migrate_batch(self, batch: list[LegacyVideo]) -> None:
        outcomes = [await self._file_of(video) for video in batch]
        plans = await asyncio.to_thread(
            lambda: [
                plan_video(video, outcome, self.storage_kind) for video, outcome in zip(batch, outcomes, strict=True)
            ]
        )
        if self.storage is not None:
            for plan in plans:
                if plan.problem is None:
                    for spill in plan.spills:
                        await self.storage.put(spill.key, spill.data)
        failures = {} if self.options.dry_run else await self._write(plans)
        lines: list[dict[str, Any]] = []
        for video, outcome, plan in zip(batch, outcomes, plans, strict=True):
            lines.extend(self._tally(video, outcome, plan, failures.get(plan.legacy_id)))
        await self.report.add(lines)

    async def _write(self, plans: list[VideoPlan]) -> dict[Any, str]:
        """One unordered bulk of upserts; the legacy ids whose write was refused, with why."""
        writable = [plan for plan in plans if plan.problem is None]
        if not writable:
            return {}
        owner = {} if self.owner_id is None else {"owner_id": self.owner_id}
        operations = [
            UpdateOne(
                {"legacy.id": plan.legacy_id},
                {"$set": plan.set_fields, "$setOnInsert": {**plan.insert_fields, **owner}},
                upsert=True,
            )
            for plan in writable
        ]
        collection = Video.get_motor_collection()
        try:
            result = (await collection.bulk_write(operations, ordered=False)).bulk_api_result
        except BulkWriteError as error:
            result = error.details
        if owner:
            ids = [plan.legacy_id for plan in writable]
            await collection.update_many({"legacy.id": {"$in": ids}, "owner_id": None}, {"$set": owner})
        return {
            writable[error["index"]].legacy_id: error.get("errmsg", "refused")
            for error in result.get("writeErrors", [])
        }

    def _tally(
        self, video: LegacyVideo, outcome: FileOutcome, plan: VideoPlan, refused: str | None
    ) -> list[dict[str, Any]]:
        """Count one video's rows and return its report lines."""
        summary = self.summary
        legacy_id = plan.legacy_id
        lines = list(plan.notes)
        summary.unreadable_times += sum(note["kind"] == "unreadable_time" for note in plan.notes)
        summary.chat_values_not_migrated += sum(note["kind"] == "chat_values_not_migrated" for note in plan.notes)
        summary.videos.read += 1
        summary.chat_entries.read += len(video.chat)
        problem = plan.problem or refused
        if problem is None:
            summary.videos.written += 1
            summary.chat_entries.written += plan.chat_kept
            summary.texts_moved_to_storage += len(plan.spills)
            lines.extend(
                {
                    "kind": "text_moved_to_storage",
                    "legacy_id": legacy_id,
                    "column": s.column,
                    "key": s.key,
                    "bytes": len(s.data),
                }
                for s in plan.spills
            )
            overflow = plan.overflow
        else:
            lines.append({"kind": "video_not_written", "legacy_id": legacy_id, "error": problem, "video": video.row})
            overflow = video.chat
        summary.chat_entries.reported += len(overflow)
        lines.extend({"kind": "chat_not_in_document", "legacy_id": legacy_id, "chat": row} for row in overflow)
        if outcome.copied:
            summary.files_copied += 1
        if outcome.missing is not None:
            summary.missing_files.read += 1
            summary.missing_files.reported += 1
            lines.append(
                {
                    "kind": "missing_file",
                    "legacy_id": legacy_id,
                    "file_path": video.row.get("file_path"),
                    "reason": outcome.missing,
                }
            )
        return lines

    async def _report_orphans(self, rows: list[dict[str, Any]]) -> None:
        self.summary.orphan_chat_rows.read += len(rows)
        await self.report.add([{"kind": "orphan_chat", "chat": row} for row in rows])
        self.summary.orphan_chat_rows.reported += len(rows)

    # Files

    def _source_path(self, file_path: Any) -> Path | None:
        if not isinstance(file_path, str) or not file_path.strip():
            return None
        path = Path(file_path)
        return path if path.is_absolute() else (self.options.files_root or self.legacy.path.parent) / path

    async def _file_of(self, video: LegacyVideo) -> FileOutcome:
        """Copy the video's legacy file into storage (with --copy-files), or say why it could not be."""
        legacy_id = video.row.get("id")
        if not self.options.copy_files or not isinstance(legacy_id, int):
            return FileOutcome()
        source = self._source_path(video.row.get("file_path"))
        if source is None:
            return FileOutcome(missing="no file_path was recorded")
        key = storage_key(legacy_id)
        if self.storage is None:
            return await asyncio.to_thread(_preview, source, key, self.storage_kind)
        try:
            stored = await self.storage.copy_in(source, key)
        except OSError as error:
            return FileOutcome(missing=error.strerror or str(error))
        try:  # the source, whose bytes were just hashed into storage: GridFS has no path to probe
            metadata = await asyncio.to_thread(probe, source)
        except (UnsupportedMedia, OSError):
            metadata = None
        file = FileInfo(
            storage=self.storage_kind,
            key=key,
            size=stored.size,
            sha256=stored.sha256,
            content_type=None if metadata is None else content_type_of(metadata.format),
        )
        return FileOutcome(file=file, metadata=metadata, decodable=metadata is not None)

    # The end

    def _check(self, videos_total: int, chat_total: int) -> None:
        """Every row read must be written or reported, and every row in SQLite read."""
        summary = self.summary
        problems = summary.problems
        if summary.videos.read != videos_total:
            problems.append(f"SQLite holds {videos_total} videos but {summary.videos.read} were read")
        if summary.videos.written != summary.videos.read:
            problems.append(
                f"{summary.videos.read - summary.videos.written} of {summary.videos.read} videos were not written (see video_not_written in the report)"
            )
        chat = summary.chat_entries
        if chat.read + summary.orphan_chat_rows.read != chat_total:
            problems.append(
                f"SQLite holds {chat_total} chat rows but {chat.read} with a video and {summary.orphan_chat_rows.read} orphans were read"
            )
        if chat.written + chat.reported != chat.read:
            problems.append(f"{chat.read} chat rows were read but {chat.written} written and {chat.reported} reported")
        if summary.orphan_chat_rows.reported != summary.orphan_chat_rows.read:
            problems.append("not every orphan chat row reached the report")
        stored = summary.migrated_videos_in_store
        if stored is not None and stored < summary.videos.written:
            problems.append(
                f"the store holds {stored} migrated videos, fewer than the {summary.videos.written} written"
            )


def _preview(source: Path, key: str, storage_kind: str) -> FileOutcome:
    """What --copy-files would find, without copying (a dry run): whether the file is readable."""
    try:
        info = source.stat()
    except OSError as error:
        return FileOutcome(missing=error.strerror or str(error))
    if not stat.S_ISREG(info.st_mode):
        return FileOutcome(missing=f"{source} is not a regular file")
    if not os.access(source, os.R_OK):
        return FileOutcome(missing="Permission denied")
    return FileOutcome(
        file=FileInfo(storage=storage_kind, key=key, size=info.st_size, sha256="(dry run: not hashed)"), decodable=True
    )
