"""The SQLite service's routes over the new services: the same videos, the old shapes."""

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from functools import cache
from typing import Any

from babel import Locale
from babel.core import get_global

from service.ai.languages import known_ui_language
from service.chat import service as chat
from service.config import Settings
from service.context import AppContext
from service.errors import InvalidInput, NotFound
from service.legacy.schemas import (
    LegacyChatRow,
    LegacyId,
    LegacyLanguage,
    LegacyLanguages,
    LegacyQuestion,
    LegacyUpload,
    LegacyVideo,
    LegacyVideoListItem,
    LegacyVideoStatus,
)
from service.migration.mapping import LEGACY_MODEL
from service.processing.transcription import WHISPER_LANGUAGES, transcription_languages
from service.storage.service import Storage
from service.users.models import User
from service.videos import service as videos
from service.videos.models import ChatEntry, Video

logger = logging.getLogger(__name__)

LEGACY_STATUS = {
    "queued": "pending",
    "processing": "processing",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "failed",
}
DEFAULT_UI_LANGUAGE = "en"
"""The SQLite service's default for ui_language, shown for videos that never had one."""
REGIONAL_INDICATOR_A = 0x1F1E6
"""A flag emoji is its region's two letters as regional indicator symbols."""
LIST_PROJECTION = {**videos.LIST_PROJECTION, "transcript.text": 0}
_LEGACY_ID = re.compile(r"-?[0-9]{1,19}")
_INT64 = range(-(2**63), 2**63)
_LEGACY_CHAT_ID = re.compile(r"legacy-(-?[0-9]+)")


async def find_video(raw_id: str, viewer: User | None) -> Video:
    """A legacy integer id (a migrated video) or a new 24-hex id, if the viewer may see it; else 404."""
    if not _LEGACY_ID.fullmatch(raw_id):
        return await videos.get_video(raw_id, viewer)
    legacy_id = int(raw_id)
    visible = videos.visible_to(viewer)
    video = await Video.find_one({"legacy.id": legacy_id, **visible}) if legacy_id in _INT64 else None
    if video is None:
        raise NotFound(f"no video with id {raw_id!r}")
    return video


def legacy_id(video: Video) -> LegacyId:
    legacy = video.legacy or {}
    return legacy["id"] if "id" in legacy else str(video.id)


async def _full_text(video: Video, column: str, inline: str, storage: Storage) -> str:
    """A text the migration moved to storage (its document keeps the first MiB), read whole."""
    moved = (video.legacy or {}).get(f"{column}_file")
    if not moved:
        return inline
    try:
        opened = await storage.of(moved.get("storage")).open(moved["key"])
        return b"".join([piece async for piece in opened.chunks(0, opened.size)]).decode("utf-8")
    except OSError as error:
        logger.warning(
            "video %s: the %s file %s cannot be read (%s); showing its first part",
            video.id,
            column,
            moved["key"],
            error,
        )
        return inline


def _fields(video: Video) -> dict[str, Any]:
    """The legacy fields every shape draws from (texts as the document holds them)."""
    legacy = video.legacy or {}
    transcript, summary = video.transcript, video.summary
    if transcript is not None and transcript.model != LEGACY_MODEL:
        method = transcript.model
    else:
        method = legacy.get("transcription_method")
    if "user_selected_language" in legacy:
        selected = legacy["user_selected_language"]
    else:
        selected = None if video.requested_language == "auto" else video.requested_language
    return {
        "id": legacy_id(video),
        "video_id": legacy_id(video),
        "filename": video.filename,
        "file_path": legacy.get("file_path"),
        "transcription": None if transcript is None else transcript.text,
        "summary": None if summary is None else summary.text,
        "processing_status": LEGACY_STATUS[video.status],
        "error_message": video.job.error,
        "uploaded_at": video.uploaded_at,
        "processed_at": video.processed_at,
        "detected_language": transcript.language if transcript is not None else legacy.get("detected_language"),
        "user_selected_language": selected,
        "ui_language": video.ui_language
        or legacy.get("ui_language")
        or (summary.language if summary and summary.language else DEFAULT_UI_LANGUAGE),
        "transcription_method": method,
    }


async def _fields_with_full_texts(video: Video, storage: Storage) -> dict[str, Any]:
    fields = _fields(video)
    if fields["transcription"] is not None:
        fields["transcription"] = await _full_text(video, "transcription", fields["transcription"], storage)
    if fields["summary"] is not None:
        fields["summary"] = await _full_text(video, "summary", fields["summary"], storage)
    return fields


async def upload(
    context: AppContext,
    viewer: User | None,
    content_type: str,
    body: AsyncIterator[bytes],
    language: str | None,
    ui_language: str | None,
) -> LegacyUpload:
    """POST /upload-video/: the new upload (the `language` query parameter as its language), with
    the `ui_language` kept with the video, as its summary language too: summaries and answers follow it."""
    chosen_ui_language = _ui_language_code(ui_language)
    video = await videos.upload_video(
        context,
        viewer,
        content_type,
        body,
        language=language,
        summary_language=chosen_ui_language,
        ui_language=chosen_ui_language,
    )
    return LegacyUpload(
        message="Video uploaded successfully. Processing started in background.",
        video_id=legacy_id(video),
        filename=video.filename,
        processing_status=LEGACY_STATUS[video.status],
        language=video.requested_language,
        ui_language=chosen_ui_language or DEFAULT_UI_LANGUAGE,
    )


def _ui_language_code(raw: str | None) -> str | None:
    """A language code `GET /supported-languages/` lists, or None when none was given; anything
    else is the client's mistake (422), refused before the upload is read."""
    if raw is None or not raw.strip():
        return None
    code = known_ui_language(raw)
    if code is None:
        raise InvalidInput("ui_language must be a language code GET /supported-languages/ lists")
    return code


async def supported_languages(settings: Settings) -> LegacyLanguages:
    return await asyncio.to_thread(_languages, settings.whisper_model)


@cache
def _languages(whisper_model: str) -> LegacyLanguages:
    """Every Whisper language, enabled where the configured model transcribes it. Blocking (the
    model's vocabulary, the locale data): made once per model, on a thread."""
    transcribed = set(transcription_languages(whisper_model))
    return LegacyLanguages(
        languages={code: _language(code, code in transcribed) for code in WHISPER_LANGUAGES},
        default=DEFAULT_UI_LANGUAGE,
    )


def _language(code: str, enabled: bool) -> LegacyLanguage:
    """Names and region from the Unicode CLDR (Babel); `jw`, Whisper's code for Javanese, is read as `jv`."""
    locale = Locale.parse(code)
    native = locale.get_language_name(locale)
    region = get_global("likely_subtags").get(code, "").rpartition("_")[2]
    return LegacyLanguage(
        name=locale.get_language_name("en"),
        native_name=native[:1].upper() + native[1:],
        flag=_flag(region),
        enabled=enabled,
    )


def _flag(region: str) -> str:
    if len(region) != 2 or not region.isalpha():
        return ""
    return "".join(chr(REGIONAL_INDICATOR_A + ord(letter) - ord("A")) for letter in region.upper())


async def list_videos(viewer: User | None) -> list[LegacyVideoListItem]:
    """Every video the viewer may see, newest first, as the SQLite service listed them (no paging, no transcripts)."""
    raw = (
        await Video.get_motor_collection()
        .find(videos.visible_to(viewer), LIST_PROJECTION)
        .sort([("uploaded_at", -1), ("_id", -1)])
        .to_list(None)
    )
    return [LegacyVideoListItem(**_fields(Video.model_validate(document))) for document in raw]


async def video(raw_id: str, viewer: User | None, storage: Storage) -> LegacyVideo:
    return LegacyVideo(**await _fields_with_full_texts(await find_video(raw_id, viewer), storage))


async def video_status(raw_id: str, viewer: User | None, storage: Storage) -> LegacyVideoStatus:
    return LegacyVideoStatus(**await _fields_with_full_texts(await find_video(raw_id, viewer), storage))


def _chat_row(entry: ChatEntry, video_id: LegacyId) -> LegacyChatRow:
    match = _LEGACY_CHAT_ID.fullmatch(entry.id)
    return LegacyChatRow(
        id=int(match.group(1)) if match else entry.id,
        video_id=video_id,
        question=entry.question,
        answer=entry.answer,
        timestamp=entry.created_at,
        language=entry.language,
    )


async def chat_history(raw_id: str, viewer: User | None) -> list[LegacyChatRow]:
    """The video's questions and answers, oldest first."""
    found = await find_video(raw_id, viewer)
    return [_chat_row(entry, legacy_id(found)) for entry in found.chat]


async def ask_question(context: AppContext, viewer: User | None, question: LegacyQuestion) -> LegacyChatRow:
    """POST /ask-question/: the new chat service, answered as a chat_history row."""
    found = await find_video(str(question.video_id), viewer)
    entry = await chat.answer(context, await chat.prepare(context, str(found.id), viewer, question))
    return _chat_row(entry, legacy_id(found))
