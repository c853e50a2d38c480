"""Videos: accepting uploads, listing, reading and deleting them."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from beanie import PydanticObjectId
from bson.errors import InvalidId
from faster_whisper.tokenizer import _LANGUAGE_CODES as WHISPER_LANGUAGES
from pydantic import ValidationError

from service.ai.languages import output_language
from service.clock import utc_now
from service.config import Settings
from service.context import AppContext
from service.errors import Conflict, Forbidden, InvalidInput, NotFound, describe_validation_errors
from service.pagination import INT64_MAX, decode_cursor, decode_int, encode_cursor
from service.processing.media import content_type_of, probe
from service.processing.transcription import transcription_languages
from service.users.models import User
from service.videos.models import FileInfo, Job, TranscriptionOptions, Video, VideoStatus
from service.videos.schemas import UploadOptions, VideoListItem, VideoPage
from service.videos.upload import MultipartUploadReceiver, ReceivedUpload, UploadLimits
from service.webhooks.delivery import relay
from service.webhooks.events import NO_PENDING_EVENTS

logger = logging.getLogger(__name__)

LIST_PROJECTION = {"chat": 0, "transcript.segments": 0}


def parse_video_id(raw: str) -> PydanticObjectId:
    """The ObjectId a client named; a malformed one is as unknown as a missing one (404)."""
    try:
        return PydanticObjectId(raw)
    except (InvalidId, TypeError):
        raise NotFound(f"no video with id {raw!r}") from None


def visible_to(viewer: User | None) -> dict[str, Any]:
    """The videos a viewer may see: all in single-user mode and for admins, else their own and public ones."""
    if viewer is None or viewer.is_admin:
        return {}
    return {"$or": [{"owner_id": viewer.id}, {"is_public": True}]}


async def get_video(raw_id: str, viewer: User | None) -> Video:
    """The video, if this viewer may see it; otherwise 404, as if it did not exist (a 403 would tell)."""
    video = await Video.find_one({"_id": parse_video_id(raw_id), **visible_to(viewer)})
    if video is None:
        raise NotFound(f"no video with id {raw_id!r}")
    return video


def ensure_owner(video: Video, viewer: User | None) -> None:
    """Changing a video is for its owner or an admin (403 for someone else's public video)."""
    if viewer is not None and not viewer.is_admin and video.owner_id != viewer.id:
        raise Forbidden("only the video's owner can do this")


async def get_own_video(raw_id: str, viewer: User | None) -> Video:
    video = await get_video(raw_id, viewer)
    ensure_owner(video, viewer)
    return video


async def get_completed_video(raw_id: str, viewer: User | None, waiting_for: str) -> Video:
    """The video, once processed; 409 with its status before that."""
    video = await get_video(raw_id, viewer)
    if video.status != "completed" or video.transcript is None:
        raise Conflict(f"the video is {video.status}; {waiting_for} once it is completed")
    return video


async def upload_video(
    context: AppContext,
    viewer: User | None,
    content_type: str,
    body: AsyncIterator[bytes],
    language: str | None = None,
    summary_language: str | None = None,
    ui_language: str | None = None,
    read_options: Callable[[ReceivedUpload], TranscriptionOptions] | None = None,
) -> Video:
    """Stream an upload to storage, check it is media, and queue it; leave nothing behind on failure.

    A body too large to be an upload never gets here (service/http/limits.py refuses it first).
    `language` and `summary_language` override the form fields of those names (the legacy route
    takes them from the query); `ui_language` is the legacy upload's, checked by its caller;
    `read_options` reads the transcription options from the form (by default its fields as
    UploadOptions names them)."""
    storage = context.storage.writer
    receiver = MultipartUploadReceiver(context.storage.local.new_incoming_path(), UploadLimits.of(context.settings))
    received = await receiver.receive(content_type, body)
    try:
        language = requested_language(language if language is not None else received.fields.get("language"))
        options = (read_options or upload_options)(received)
        await _check_model_can(context.settings, language, options)
        summary_language = output_language(
            summary_language if summary_language is not None else received.fields.get("summary_language"),
            "summary_language",
        )
        metadata = await asyncio.to_thread(probe, received.path)
        key = context.storage.new_key()
        await storage.keep(received.path, key)
    except BaseException:
        await asyncio.to_thread(received.path.unlink, missing_ok=True)
        raise
    now = utc_now()
    video = Video(
        filename=received.filename.strip() or "untitled",
        owner_id=None if viewer is None else viewer.id,
        file=FileInfo(
            storage=storage.kind,
            key=key,
            size=received.size,
            sha256=received.sha256,
            content_type=content_type_of(metadata.format),
        ),
        metadata=metadata,
        status="queued",
        job=Job(stage="queued", queued_at=now),
        uploaded_at=now,
        updated_at=now,
        requested_language=language,
        options=options,
        summary_language=summary_language,
        ui_language=ui_language,
    )
    try:
        await video.insert()
    except BaseException:
        await storage.delete(key)
        raise
    logger.info("video %s uploaded: %d bytes, %s", video.id, received.size, metadata.format)
    return video


def requested_language(raw: str | None) -> str:
    """`auto`, or a language code Whisper knows; anything else is the client's mistake (422)."""
    language = (raw or "auto").strip().lower()
    if language != "auto" and language not in WHISPER_LANGUAGES:
        raise InvalidInput("language must be 'auto' or a Whisper language code")
    return language


def upload_options(received: ReceivedUpload) -> TranscriptionOptions:
    """The transcription options of an upload's form fields; 422 for one that is not valid."""
    try:
        return UploadOptions.model_validate(received.fields).options()
    except ValidationError as error:
        raise InvalidInput(describe_validation_errors(error.errors())) from None


async def _check_model_can(settings: Settings, language: str, options: TranscriptionOptions) -> None:
    """Refuse what WHISPER_MODEL would not do: an English-only model translates nothing, and it
    would write speech in another language as English words."""
    if await asyncio.to_thread(transcription_languages, settings.whisper_model) != ("en",):
        return
    if options.task == "translate":
        raise InvalidInput(f"the model {settings.whisper_model} is English-only: it cannot translate")
    if language not in ("auto", "en"):
        raise InvalidInput(f"the model {settings.whisper_model} is English-only: it cannot transcribe {language!r}")


def _encode_cursor(video: Video) -> str:
    return encode_cursor(int(video.uploaded_at.timestamp() * 1000), video.id)


def _decode_cursor(cursor: str) -> tuple[datetime, PydanticObjectId]:
    raw_millis, raw_id = decode_cursor(cursor, 2)
    millis = decode_int(raw_millis, -INT64_MAX, INT64_MAX)
    try:
        return datetime.fromtimestamp(millis / 1000, UTC), PydanticObjectId(raw_id)
    except (ValueError, InvalidId, OverflowError, OSError):
        raise InvalidInput("cursor is not one this service returned") from None


def _after_cursor(cursor: str | None) -> dict[str, Any]:
    if cursor is None:
        return {}
    uploaded_at, video_id = _decode_cursor(cursor)
    return {
        "$or": [
            {"uploaded_at": {"$lt": uploaded_at}},
            {"uploaded_at": uploaded_at, "_id": {"$lt": video_id}},
        ]
    }


async def list_videos(viewer: User | None, limit: int, cursor: str | None, status: VideoStatus | None) -> VideoPage:
    """Newest first, one page; segments and chat stay in the store."""
    conditions = [condition for condition in (visible_to(viewer), _after_cursor(cursor)) if condition]
    query: dict[str, Any] = {"$and": conditions} if conditions else {}
    if status is not None:
        query["status"] = status
    raw = (
        await Video.get_motor_collection()
        .find(query, LIST_PROJECTION)
        .sort([("uploaded_at", -1), ("_id", -1)])
        .limit(limit + 1)
        .to_list(None)
    )
    videos = [Video.model_validate(document) for document in raw[:limit]]
    next_cursor = _encode_cursor(videos[-1]) if len(raw) > limit else None
    return VideoPage(items=[VideoListItem.of(video) for video in videos], next_cursor=next_cursor)


async def delete_video(context: AppContext, raw_id: str, viewer: User | None) -> None:
    """Remove the document, then its file: a crash between them leaves a stray file, never a
    document pointing at nothing."""
    video = await get_own_video(raw_id, viewer)
    if await _delete_document(context, video.id) and video.file is not None:
        await context.storage.delete(video.file.key)


async def _delete_document(context: AppContext, video_id: PydanticObjectId) -> bool:
    """Delete the document once the webhook events in its outbox are handed to their deliveries,
    so that an event raised just before the deletion is still sent. An event raised between the
    hand-over and the deletion keeps the document; the loop hands it over too (a video raises
    at most two at a time). False when the document was already gone."""
    collection = Video.get_motor_collection()
    while True:
        await relay(context.settings, {"_id": video_id})
        result = await collection.delete_one({"_id": video_id, **NO_PENDING_EVENTS})
        if result.deleted_count:
            return True
        if await collection.count_documents({"_id": video_id}, limit=1) == 0:
            return False


async def update_video(raw_id: str, viewer: User | None, changes: dict[str, Any]) -> Video:
    """Change what a client may change (privacy, display name); owner or admin only."""
    video = await get_own_video(raw_id, viewer)
    if changes:
        await Video.get_motor_collection().update_one({"_id": video.id}, {"$set": {**changes, "updated_at": utc_now()}})
    return await get_video(raw_id, viewer)
