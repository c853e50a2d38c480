"""Questions about a video: retrieve the passages, ask the model, store the entry atomically."""

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from fastapi.sse import format_sse_event

from service.ai.retrieval import TranscriptIndex
from service.ai.schemas import AnswerDraft, AnswerRequest, Excerpt, KeyPoint, Overview
from service.chat.schemas import ChatPage, ChatQuestion
from service.clock import utc_now
from service.context import AppContext
from service.db.mongodb import MAX_DOCUMENT_BYTES, document_size
from service.errors import DocumentFull, NotFound, ServiceError
from service.observability.correlation import internal_error_detail
from service.observability.metrics import language_model_call, measured_answer_stream
from service.pagination import MAX_ARRAY_OFFSET, decode_offset, encode_offset
from service.users.models import User
from service.videos.models import ChatEntry, Summary, Video
from service.videos.service import ensure_owner, get_completed_video, parse_video_id, visible_to

logger = logging.getLogger(__name__)


@dataclass
class PreparedQuestion:
    video: Video
    request: AnswerRequest


async def prepare(context: AppContext, raw_id: str, viewer: User | None, question: ChatQuestion) -> PreparedQuestion:
    """Everything that can refuse the question (404, 403, 409) happens here, before any answer starts.

    A video's chat is one history shared by all who may see it, so only its owner (or an admin)
    adds to it; others may read a public video's chat.
    """
    video = await get_completed_video(raw_id, viewer, "questions can be asked")
    ensure_owner(video, viewer)
    index = await asyncio.to_thread(context.transcript_indexes.index_for, video)
    turns = context.settings.chat_history_turns
    history = video.chat[-turns:] if turns else []
    earlier = history[-1].question if history else ""
    matches = index.search(question.question, context=earlier, limit=context.settings.chat_excerpts)
    best = matches[0].score if matches else 1.0
    request = AnswerRequest(
        title=video.filename,
        question=question.question,
        language=question.language or video.summary_language or video.transcript.language,
        transcript_language=video.transcript.language,
        excerpts=[Excerpt.of(n, m.passage, min(1.0, m.score / best)) for n, m in enumerate(matches, start=1)],
        history=history,
        overview=_overview(video.summary, index),
    )
    return PreparedQuestion(video, request)


def _overview(summary: Summary | None, index: TranscriptIndex) -> Overview | None:
    """The stored summary, each key point with its moment when the transcript says it word for word."""
    if summary is None or not (summary.text or summary.key_points or summary.chapters):
        return None
    moments = {passage.text: passage for passage in index.passages}
    key_points = []
    for point in summary.key_points:
        moment = moments.get(point)
        if moment is None:
            key_points.append(KeyPoint(text=point))
        else:
            key_points.append(
                KeyPoint(text=point, start=moment.start, end=moment.end, low_confidence=moment.low_confidence)
            )
    return Overview(text=summary.text, key_points=key_points, chapters=summary.chapters, language=summary.language)


def _entry(context: AppContext, prepared: PreparedQuestion, draft: AnswerDraft) -> ChatEntry:
    return ChatEntry(
        id=uuid.uuid4().hex,
        question=prepared.request.question,
        answer=draft.text,
        citations=draft.citations,
        model=context.language_model.model,
        language=draft.language or prepared.request.language,
        note=draft.note,
        created_at=utc_now(),
    )


async def _store(video: Video, entry: ChatEntry) -> None:
    """Append with one atomic $push, after checking the document stays under MongoDB's limit."""
    pushed = entry.model_dump()
    size = await asyncio.to_thread(lambda: document_size(video.model_dump(by_alias=True)) + document_size(pushed))
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentFull("this video's chat history has filled its document (MongoDB's 16 MB limit)")
    result = await Video.get_motor_collection().update_one({"_id": video.id}, {"$push": {"chat": pushed}})
    if result.matched_count == 0:
        raise NotFound(f"video {video.id} was deleted while the question was answered")


async def answer(context: AppContext, prepared: PreparedQuestion) -> ChatEntry:
    with language_model_call(context.language_model.name, "answer"):
        draft = await context.language_model.answer(prepared.request)
    entry = _entry(context, prepared, draft)
    await _store(prepared.video, entry)
    return entry


def _event(event: str, data: object) -> bytes:
    return format_sse_event(event=event, data_str=json.dumps(data, ensure_ascii=False))


async def answer_events(context: AppContext, prepared: PreparedQuestion) -> AsyncIterator[bytes]:
    """Server-sent `delta` events as the answer is written, then the stored `entry`, or one `error`."""
    try:
        async with (
            aclosing(context.language_model.answer_stream(prepared.request)) as stream,
            aclosing(measured_answer_stream(context.language_model.name, stream)) as items,
        ):
            async for item in items:
                if isinstance(item, AnswerDraft):
                    entry = _entry(context, prepared, item)
                    await _store(prepared.video, entry)
                    yield _event("entry", entry.model_dump(mode="json"))
                else:
                    yield _event("delta", {"text": item})
    except ServiceError as error:
        yield _event("error", {"status": error.status_code, "detail": error.detail})
    except Exception:
        logger.exception("streamed answer for video %s failed", prepared.video.id)
        yield _event("error", {"status": 500, "detail": internal_error_detail()})


async def history(raw_id: str, viewer: User | None, limit: int, cursor: str | None) -> ChatPage:
    """Chat entries oldest first; only the page's slice of the array leaves the store."""
    offset = decode_offset(cursor, MAX_ARRAY_OFFSET)
    document = await Video.get_motor_collection().find_one(
        {"_id": parse_video_id(raw_id), **visible_to(viewer)}, {"chat": {"$slice": [offset, limit + 1]}, "_id": 1}
    )
    if document is None:
        raise NotFound(f"no video with id {raw_id!r}")
    entries = [ChatEntry.model_validate(entry) for entry in document.get("chat", [])]
    more = len(entries) > limit
    next_cursor = encode_offset(offset + limit) if more else None
    return ChatPage(items=entries[:limit], next_cursor=next_cursor)
